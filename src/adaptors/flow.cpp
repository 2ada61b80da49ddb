#include "adaptors/flow.hpp"

#include <algorithm>

#include "adaptors/stream_codec.hpp"
#include "core/assert.hpp"
#include "core/log.hpp"
#include "forwarding/copies.hpp"

namespace vane::adaptors {

namespace {
// Room left in a transfer frame for its performative (delivery id, tag,
// flags: well under this).
constexpr std::size_t kFrameOverhead = 256;
}  // namespace

FlowTable::FlowTable(core::EventLoop& loop, forwarding::ForwardingTable& table,
                     std::string router_id, std::size_t loop_index, std::int64_t window,
                     std::size_t max_frame_size, std::atomic<std::uint64_t>& token_mismatches)
    : loop(loop),
      table(table),
      router_id(std::move(router_id)),
      loop_index(loop_index),
      window(window),
      read_size(std::max<std::size_t>(max_frame_size, 2 * kFrameOverhead) - kFrameOverhead -
                kDataHeaderSize),
      token_mismatches(token_mismatches) {}

std::uint64_t FlowTable::add(std::shared_ptr<Flow> flow) {
  VANE_ASSERT_THREAD(loop);
  const std::uint64_t id = next_id_++;
  flow->init(id);
  flows_.emplace(id, std::move(flow));
  return id;
}

void FlowTable::remove(std::uint64_t id) {
  VANE_ASSERT_THREAD(loop);
  // Destroyed after this call returns: the flow may be on its own stack.
  auto it = flows_.find(id);
  if (it == flows_.end()) return;
  auto keep = std::move(it->second);
  flows_.erase(it);
  loop.post([keep = std::move(keep)] {});
}

std::size_t FlowTable::size() const {
  VANE_ASSERT_THREAD(loop);
  return flows_.size();
}

std::vector<FlowRecord> FlowTable::records() const {
  VANE_ASSERT_THREAD(loop);
  std::vector<FlowRecord> out;
  out.reserve(flows_.size() + recent_.size());
  for (const auto& [id, f] : flows_) out.push_back(f->record());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  out.insert(out.end(), recent_.begin(), recent_.end());
  return out;
}

void FlowTable::ended(FlowRecord r) {
  if (recent_.size() == kRecent) recent_.pop_front();
  recent_.push_back(std::move(r));
}

void FlowTable::closeAll() {
  std::vector<std::shared_ptr<Flow>> all;
  all.reserve(flows_.size());
  for (auto& [id, f] : flows_) all.push_back(f);
  for (auto& f : all) f->close();
  auto kept = std::move(kept_);
  kept_.clear();
  for (auto& w : kept) {
    if (auto r = w.lock()) r->release();
  }
}

void FlowTable::keep(std::weak_ptr<LoopResource> r) {
  VANE_ASSERT_THREAD(loop);
  std::erase_if(kept_, [](const auto& w) { return w.expired(); });
  kept_.push_back(std::move(r));
}

void FlowTable::enqueue(std::shared_ptr<forwarding::Transfer> t) {
  auto it = flows_.find(t->flow);
  if (it == flows_.end()) {
    forwarding::dropTransfer(t);
    return;
  }
  if (!(it->second->token() == t->flow_token)) {
    if (token_mismatches.fetch_add(1, std::memory_order_relaxed) == 0) {
      VANE_LOG_WARN(
          "a delivery for flow {} carried the wrong token (a guessed or forged flow address): "
          "dropped (logged once; counted in vane_flow_token_mismatches_total)",
          t->flow);
    }
    forwarding::dropTransfer(t);
    return;
  }
  t->via = it->second;
  it->second->enqueue(std::move(t));
}

void FlowTable::append(const std::shared_ptr<forwarding::Transfer>& t, forwarding::Chunk chunk,
                       bool last) {
  forwarding::appendVia(t, std::move(chunk), last);
}

void FlowTable::abort(const std::shared_ptr<forwarding::Transfer>& t) {
  forwarding::abortVia(t);
}

}  // namespace vane::adaptors

#include "adaptors/stream_flow.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

#include "amqp/inter_router.hpp"
#include "amqp/message_scan.hpp"
#include "core/log.hpp"
#include "forwarding/copies.hpp"

namespace vane::adaptors {

using forwarding::Chunk;
using forwarding::IngressDelivery;
using forwarding::Outcome;
using forwarding::Transfer;

namespace {
std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

StreamFlow::StreamFlow(FlowTable& flows, bool client_side, std::shared_ptr<FlowCounters> counters,
                       std::string name, std::string address)
    : flows_(flows), counters_(std::move(counters)), name_(std::move(name)) {
  rec_.loop = flows.loop_index;
  rec_.client_side = client_side;
  rec_.name = name_;
  rec_.address = std::move(address);
  rec_.start_ms = nowMs();
  rec_.outcome = "open";
  budget_ = std::make_shared<forwarding::FlowBudget>(flows.loop, flows.window);
  counters_->flows_opened.fetch_add(1, std::memory_order_relaxed);
  counters_->flows_active.fetch_add(1, std::memory_order_relaxed);
}

StreamFlow::~StreamFlow() {
  counters_->flows_active.fetch_sub(1, std::memory_order_relaxed);
}

void StreamFlow::init(std::uint64_t id) {
  id_ = id;
  token_ = forwarding::FlowToken::random();
  rec_.id = id;
  budget_->sink = weak_from_this();
}

// -- outgoing ---------------------------------------------------------------

bool StreamFlow::openOut(const std::string& to, const std::string& reply_to) {
  forwarding::RouteRequest rq;
  rq.address = to;
  rq.arrival = forwarding::Arrival::kClient;
  rq.origin = flows_.router_id;
  std::vector<forwarding::Target> targets;
  const auto result = flows_.table.route(rq, targets);
  if (result.status != forwarding::RouteStatus::kRouted || targets.empty()) return false;
  auto& target = targets.front();
  out_d_ = std::make_shared<IngressDelivery>(weak_from_this());
  out_d_->routed = true;
  out_d_->copies_in_router = 1;
  out_ = forwarding::makeCopy(out_d_, target, budget_, /*presettled=*/false, /*streaming=*/true);
  std::string prefix;
  if (target.remote) prefix = amqp::encodeRouteHeader(target.header);
  prefix += encodeStreamPrefix(to, reply_to, flows_.router_id);
  forwarding::addFirstBytes(*out_, std::make_shared<const std::string>(std::move(prefix)));
  forwarding::postStart(out_);
  return true;
}

std::shared_ptr<std::string> StreamFlow::readBuffer() const {
  return std::make_shared<std::string>(kDataHeaderSize + flows_.read_size, '\0');
}

void StreamFlow::sendRead(std::shared_ptr<std::string> buf, std::size_t n) {
  writeDataHeader(buf->data(), static_cast<std::uint32_t>(n));
  buf->resize(kDataHeaderSize + n);
  if (n < flows_.read_size / 4) buf->shrink_to_fit();
  forwarding::postBytes(out_, std::move(buf), false);
}

void StreamFlow::sendBytes(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t n = std::min(bytes.size(), flows_.read_size);
    auto buf = std::make_shared<std::string>(kDataHeaderSize + n, '\0');
    writeDataHeader(buf->data(), static_cast<std::uint32_t>(n));
    std::copy_n(bytes.data(), n, buf->data() + kDataHeaderSize);
    forwarding::postBytes(out_, std::move(buf), false);
    bytes.remove_prefix(n);
  }
}

void StreamFlow::endOut() {
  if (!out_ || out_finished_) return;
  out_finished_ = true;
  forwarding::postBytes(out_, std::make_shared<const std::string>(), true);
}

void StreamFlow::abortOut() {
  if (!out_ || out_finished_) return;
  out_finished_ = true;
  forwarding::postAbort(out_);
}

void StreamFlow::onOutcome(const std::shared_ptr<IngressDelivery>&, const Outcome& o) {
  if (finished_) return;
  out_settled_ = true;
  if (o.kind != Outcome::Kind::kAccepted) {
    if (!o.error_description.empty()) {
      VANE_LOG_DEBUG("flow {} ({}): the other end failed: {}", id_, name_, o.error_description);
    }
    onOutFailed(o);
    return;
  }
  maybeFinish();
}

void StreamFlow::onOutFailed(const Outcome&) {
  fail(true);
}

// -- incoming ---------------------------------------------------------------

void StreamFlow::enqueue(std::shared_ptr<Transfer> t) {
  if (finished_ || in_) {
    forwarding::dropTransfer(t);
    return;
  }
  in_ = std::move(t);
  std::deque<Chunk> first;
  first.swap(in_->pending);
  in_->front_offset = 0;
  const bool last = in_->complete;
  for (auto& c : first) {
    if (!consume(c)) return;
  }
  if (last) in_last_ = true;
  onInData();
}

void StreamFlow::append(const std::shared_ptr<Transfer>& t, Chunk chunk, bool last) {
  if (t != in_ || finished_ || in_done_) {
    t->budget->release(static_cast<std::int64_t>(chunk->size()));
    return;
  }
  if (!chunk->empty() && !consume(chunk)) return;
  if (last) in_last_ = true;
  onInData();
}

void StreamFlow::abort(const std::shared_ptr<Transfer>& t) {
  if (t != in_ || finished_) return;
  // The other end was reset (or a router on the way went down).
  t->aborted = true;
  t->outcome_reported = true;  // nobody waits for an outcome
  onInAborted();
}

// Takes one chunk of the incoming stream: the message's start is parsed
// once; after it, payload ranges are queued. The chunk's bytes are released
// from the sender's budget when its last range is consumed. Returns false if
// the flow failed.
bool StreamFlow::consume(const Chunk& c) {
  if (prefix_done_) return consumeBody(c);
  prefix_.append(*c);
  in_->budget->release(static_cast<std::int64_t>(c->size()));
  const amqp::ScanResult r = amqp::scanTo(prefix_.data(), prefix_.size());
  if (r.status == amqp::ScanStatus::kNeedMore) return true;
  if (r.status == amqp::ScanStatus::kMalformed || r.properties_end == 0) {
    malformed();
    return false;
  }
  prefix_done_ = true;
  reply_to_ = r.reply_to;
  rec_.peer_router = r.subject;
  const std::size_t end = r.properties_end;
  if (end < prefix_.size()) {
    // The rest is body: one copy, once per stream.
    auto rest = std::make_shared<const std::string>(prefix_, end);
    prefix_.clear();
    prefix_.shrink_to_fit();
    in_->budget->take(static_cast<std::int64_t>(rest->size()));
    if (!consumeBody(rest)) return false;
  } else {
    prefix_.clear();
    prefix_.shrink_to_fit();
  }
  onInStarted();
  return !finished_;
}

bool StreamFlow::consumeBody(const Chunk& c) {
  const std::size_t before = inq_.size();
  bool refused = false;
  const auto st = decoder_.feed(c->data(), c->size(), [&](const char* p, std::size_t n) {
    if (refused || !checkIn({p, n})) {
      refused = true;
      return;
    }
    inq_.push_back(Slice{c, p, n, 0});
  });
  if (st != BodyDecoder::Status::kOk || refused) {
    in_->budget->release(static_cast<std::int64_t>(c->size()));
    malformed();
    return false;
  }
  if (inq_.size() > before) {
    inq_.back().release = c->size();
  } else {
    in_->budget->release(static_cast<std::int64_t>(c->size()));
  }
  return true;
}

void StreamFlow::consumedIn(std::size_t n) {
  if (n > 0 && in_) in_->started = true;
  std::int64_t release = 0;
  while (n > 0 && !inq_.empty()) {
    Slice& s = inq_.front();
    const std::size_t k = std::min(n, s.size);
    s.data += k;
    s.size -= k;
    n -= k;
    if (s.size == 0) {
      release += static_cast<std::int64_t>(s.release);
      inq_.pop_front();
    }
  }
  if (release > 0) in_->budget->release(release);
}

void StreamFlow::reportIn(const Outcome& o) {
  if (!in_ || in_done_) return;
  in_done_ = true;
  std::int64_t bytes = 0;
  for (auto& s : inq_) bytes += static_cast<std::int64_t>(s.release);
  inq_.clear();
  if (bytes > 0) in_->budget->release(bytes);
  forwarding::uncount(*in_);
  if (!in_->aborted) forwarding::postOutcome(in_, o);
  forwarding::postCopyDone(in_);
}

void StreamFlow::malformed() {
  counters_->malformed.fetch_add(1, std::memory_order_relaxed);
  VANE_LOG_WARN("flow {} ({}): the incoming stream is not a valid stream message: reset", id_,
                name_);
  reportIn(Outcome::rejected("amqp:decode-error", "not a valid stream message"));
  fail(true);
}

// -- the end ----------------------------------------------------------------

void StreamFlow::maybeFinish() {
  if (finished_ || !out_settled_ || !in_done_) return;
  finish(false);
}

void StreamFlow::fail(bool reset) {
  if (finished_) return;
  counters_->flows_failed.fetch_add(1, std::memory_order_relaxed);
  abortOut();
  reportIn(in_ && in_->started ? Outcome::modifiedFailed() : Outcome::released());
  finish(reset);
}

void StreamFlow::finish(bool reset) {
  if (finished_) return;
  finished_ = true;
  rec_.end_ms = nowMs();
  rec_.outcome = reset ? "reset" : "closed";
  flows_.ended(rec_);
  closeEndpoint(reset);
  if (out_d_) out_d_->settled = true;
  flows_.remove(id_);  // may destroy this: last
}

}  // namespace vane::adaptors

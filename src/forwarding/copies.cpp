#include "forwarding/copies.hpp"

namespace vane::forwarding {

std::shared_ptr<Transfer> makeCopy(std::shared_ptr<IngressDelivery> in, Target& target,
                                   std::shared_ptr<FlowBudget> budget, bool presettled,
                                   bool streaming) {
  if (target.load) target.load->fetch_add(1, std::memory_order_relaxed);
  auto t = std::make_shared<Transfer>(std::move(in), std::move(target.to), std::move(budget),
                                      presettled, std::move(target.load));
  t->streaming = streaming;
  t->flow = target.flow;
  t->flow_token = target.flow_token;
  return t;
}

void postStart(std::shared_ptr<Transfer> t) {
  core::EventLoop& loop = t->consumer->loop;
  loop.post([t = std::move(t)] {
    if (auto sink = t->consumer->sink.lock()) {
      sink->enqueue(t);
    } else {
      dropTransfer(t);
    }
  });
}

void postBytes(const std::shared_ptr<Transfer>& t, Chunk c, bool last) {
  t->budget->take(static_cast<std::int64_t>(c->size()));
  t->consumer->loop.post([t, c = std::move(c), last] {
    if (auto sink = t->consumer->sink.lock()) {
      sink->append(t, c, last);
    } else {
      t->budget->release(static_cast<std::int64_t>(c->size()));
      if (!t->slot_reported) dropTransfer(t);
    }
  });
}

void postAbort(const std::shared_ptr<Transfer>& t) {
  t->consumer->loop.post([t] {
    if (auto sink = t->consumer->sink.lock()) {
      sink->abort(t);
    } else if (!t->slot_reported) {
      dropTransfer(t);
    }
  });
}

}  // namespace vane::forwarding

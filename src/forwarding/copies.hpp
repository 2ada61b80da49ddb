// The step every ingress takes after routing: turn the route's targets into
// copies (Transfers) and hand them, and their bytes, to the consumers'
// loops. Used by AMQP links (amqp/in_link.cpp) and by adaptor flows
// (adaptors/tcp/tcp_flow.cpp) alike. Ingress loop.
#pragma once

#include <memory>

#include "forwarding/forwarder.hpp"
#include "forwarding/transfer.hpp"

namespace vane::forwarding {

// One copy of `in` for `target` (which it empties): counted on the target's
// outstanding load, its bytes on `budget`.
std::shared_ptr<Transfer> makeCopy(std::shared_ptr<IngressDelivery> in, Target& target,
                                   std::shared_ptr<FlowBudget> budget, bool presettled,
                                   bool streaming);

// Bytes a copy starts with, queued before postStart (counted on its budget).
inline void addFirstBytes(Transfer& t, Chunk c) {
  t.budget->take(static_cast<std::int64_t>(c->size()));
  t.pending.push_back(std::move(c));
}

// Hands a new copy to its consumer's loop (EgressSink::enqueue); a consumer
// that is gone meanwhile drops it.
void postStart(std::shared_ptr<Transfer> t);

// More bytes of a copy (`last`: the end of it), counted on its budget until
// the egress hands them on.
void postBytes(const std::shared_ptr<Transfer>& t, Chunk c, bool last);

// The sender aborted: so does the copy.
void postAbort(const std::shared_ptr<Transfer>& t);

}  // namespace vane::forwarding

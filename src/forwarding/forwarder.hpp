// Per-loop forwarding table and the per-distribution forwarders.
//
// Each event loop holds its own ForwardingTable, a replica of the routing
// core's address table that the core updates by posting deltas. Forwarding a
// delivery reads only the local replica: no lock, no shared map.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "forwarding/transfer.hpp"

namespace vane::forwarding {

// An ingress link waiting for its address to have consumers (credit is
// withheld while there are none). Lives on the table's loop.
class CreditListener {
 public:
  virtual ~CreditListener() = default;
  virtual void onConsumersChanged(bool available) = 0;
};

struct AddressEntry {
  config::Distribution distribution = config::Distribution::kBalanced;
  std::vector<std::shared_ptr<Consumer>> consumers;
  std::vector<CreditListener*> listeners;
  std::uint32_t next = 0;  // round-robin position
};

// Chooses the consumers for one delivery; `out` is cleared first.
// Index by distribution: a table, not an if-chain.
using ForwardFn = void (*)(AddressEntry& entry, std::vector<std::shared_ptr<Consumer>>& out);
ForwardFn forwarderFor(config::Distribution d);

bool isAnycast(config::Distribution d);

class ForwardingTable {
 public:
  AddressEntry* find(std::string_view address);

  // Delta application (from the routing core).
  void addConsumer(const std::string& address, config::Distribution d,
                   std::shared_ptr<Consumer> consumer);
  void removeConsumer(const std::string& address, std::uint64_t consumer_id);

  // Ingress links bound to an address register to learn when consumers come
  // and go. `d` is used if the entry does not exist yet.
  AddressEntry& addListener(const std::string& address, config::Distribution d, CreditListener* l);
  void removeListener(const std::string& address, CreditListener* l);

  std::size_t size() const { return entries_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void eraseIfUnused(
      std::unordered_map<std::string, AddressEntry, Hash, std::equal_to<>>::iterator it);
  std::unordered_map<std::string, AddressEntry, Hash, std::equal_to<>> entries_;
};

}  // namespace vane::forwarding

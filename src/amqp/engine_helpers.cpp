#include "amqp/engine_helpers.hpp"

#include <chrono>
#include <cstring>

#include "amqp/inter_router.hpp"

namespace vane::amqp::detail {

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string str(const char* s) {
  return s ? std::string(s) : std::string();
}

std::string terminusAddress(pn_terminus_t* t) {
  return str(pn_terminus_get_address(t));
}

// The router's own namespace ("_vane/...") carries TCP flows, router links
// and reply addresses. A client may send to a dynamic reply address
// ("_vane/temp/<router>/<token>": request/response) and nothing else in it;
// it receives from one only through the dynamic receiver that created it.
constexpr std::string_view kReservedPrefix = "_vane/";
bool reserved(std::string_view address) {
  return address.substr(0, 6) == kReservedPrefix;
}
bool clientMaySendTo(std::string_view address) {
  if (!reserved(address)) return true;
  if (address.substr(0, forwarding::kTempPrefix.size()) != forwarding::kTempPrefix) return false;
  address.remove_prefix(forwarding::kTempPrefix.size());
  const auto slash = address.find('/');
  // Exactly <router>/<token>: flow addresses have more segments.
  return slash != std::string_view::npos && slash > 0 && slash + 1 < address.size() &&
         address.find('/', slash + 1) == std::string_view::npos;
}

// Copies an Outcome onto a delivery's local disposition and settles it.
// Sets the delivery's local state to the outcome (and counts it) without
// settling it.
void updateWith(pn_delivery_t* d, const Outcome& o, Stats& stats) {
  pn_disposition_t* local = pn_delivery_local(d);
  std::uint64_t type = PN_RELEASED;
  switch (o.kind) {
    case Outcome::Kind::kAccepted:
      type = PN_ACCEPTED;
      break;
    case Outcome::Kind::kRejected:
      type = PN_REJECTED;
      stats.deliveries_rejected.fetch_add(1, std::memory_order_relaxed);
      if (!o.error_name.empty()) {
        pn_condition_t* c = pn_disposition_condition(local);
        pn_condition_set_name(c, o.error_name.c_str());
        if (!o.error_description.empty())
          pn_condition_set_description(c, o.error_description.c_str());
      }
      break;
    case Outcome::Kind::kReleased:
      type = PN_RELEASED;
      stats.deliveries_released.fetch_add(1, std::memory_order_relaxed);
      break;
    case Outcome::Kind::kModified:
      type = PN_MODIFIED;
      stats.deliveries_modified.fetch_add(1, std::memory_order_relaxed);
      pn_disposition_set_failed(local, o.delivery_failed);
      pn_disposition_set_undeliverable(local, o.undeliverable_here);
      break;
  }
  pn_delivery_update(d, type);
}

void settleWith(pn_delivery_t* d, const Outcome& o, Stats& stats) {
  updateWith(d, o, stats);
  pn_delivery_settle(d);
}

// Reads the consumer's outcome from a delivery's remote disposition.
bool remoteOutcome(pn_delivery_t* d, Outcome& out) {
  switch (pn_delivery_remote_state(d)) {
    case PN_ACCEPTED:
      out = Outcome::accepted();
      return true;
    case PN_REJECTED: {
      pn_condition_t* c = pn_disposition_condition(pn_delivery_remote(d));
      out = Outcome::rejected(str(pn_condition_get_name(c)), str(pn_condition_get_description(c)));
      return true;
    }
    case PN_RELEASED:
      out = Outcome::released();
      return true;
    case PN_MODIFIED: {
      pn_disposition_t* r = pn_delivery_remote(d);
      out = Outcome(Outcome::Kind::kModified);
      out.delivery_failed = pn_disposition_is_failed(r);
      out.undeliverable_here = pn_disposition_is_undeliverable(r);
      return true;
    }
    default:
      return false;
  }
}

// Encodes an AMQP close frame carrying an error, for the one case where
// Proton cannot send it itself (see Connection::scheduleIo). Uses Proton's
// codec for the performative; the 8-byte frame header is AMQP's fixed layout.
std::string encodeCloseFrame(const char* condition, const char* description) {
  pn_data_t* data = pn_data(0);
  pn_data_put_described(data);
  pn_data_enter(data);
  pn_data_put_ulong(data, 0x18);  // close
  pn_data_put_list(data);
  pn_data_enter(data);
  pn_data_put_described(data);
  pn_data_enter(data);
  pn_data_put_ulong(data, 0x1d);  // error
  pn_data_put_list(data);
  pn_data_enter(data);
  pn_data_put_symbol(data, pn_bytes(std::strlen(condition), condition));
  pn_data_put_string(data, pn_bytes(std::strlen(description), description));
  pn_data_exit(data);
  pn_data_exit(data);
  pn_data_exit(data);
  pn_data_exit(data);
  char body[512];
  const ssize_t n = pn_data_encode(data, body, sizeof body);
  pn_data_free(data);
  if (n <= 0) return {};
  const std::uint32_t size = 8 + static_cast<std::uint32_t>(n);
  std::string frame = {static_cast<char>(size >> 24),
                       static_cast<char>(size >> 16),
                       static_cast<char>(size >> 8),
                       static_cast<char>(size),
                       2,
                       0,
                       0,
                       0};
  frame.append(body, static_cast<std::size_t>(n));
  return frame;
}

// The peer router's instance from its open's properties, 0 if absent.
std::uint64_t remoteInstance(pn_connection_t* c) {
  pn_data_t* props = pn_connection_remote_properties(c);
  if (props == nullptr) return 0;
  pn_data_rewind(props);
  if (!pn_data_next(props) || pn_data_type(props) != PN_MAP) return 0;
  const std::size_t n = pn_data_get_map(props);
  pn_data_enter(props);
  for (std::size_t i = 0; i + 1 < n; i += 2) {
    if (!pn_data_next(props)) break;
    const bool key = pn_data_type(props) == PN_SYMBOL &&
                     std::string_view(pn_data_get_symbol(props).start,
                                      pn_data_get_symbol(props).size) == kInstanceProperty;
    if (!pn_data_next(props)) break;
    if (key && pn_data_type(props) == PN_ULONG) return pn_data_get_ulong(props);
  }
  return 0;
}

}  // namespace vane::amqp::detail

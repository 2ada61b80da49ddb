#include "amqp/inter_router.hpp"

#include <proton/codec.h>
#include <proton/error.h>

#include <cstring>
#include <memory>

namespace vane::amqp {

namespace {

constexpr std::uint64_t kAmqpValue = 0x77;
constexpr std::uint64_t kData = 0x75;
constexpr std::size_t kMaxId = 255;
constexpr std::size_t kMaxAddress = 65536;

struct DataDeleter {
  void operator()(pn_data_t* d) const { pn_data_free(d); }
};

// One codec object per thread, cleared per use: no allocation per message.
pn_data_t* scratch() {
  thread_local std::unique_ptr<pn_data_t, DataDeleter> data(pn_data(16));
  pn_data_clear(data.get());
  return data.get();
}

void putString(pn_data_t* d, std::string_view s) {
  pn_data_put_string(d, pn_bytes(s.size(), s.data()));
}

std::string encoded(pn_data_t* d) {
  std::string out(256, '\0');
  while (true) {
    const ssize_t n = pn_data_encode(d, out.data(), out.size());
    if (n >= 0) {
      out.resize(static_cast<std::size_t>(n));
      return out;
    }
    if (n != PN_OVERFLOW) return {};
    out.resize(out.size() * 2);
  }
}

// Reads the current node as a string within `max` bytes.
bool readString(pn_data_t* d, std::size_t max, std::string& out) {
  if (pn_data_type(d) != PN_STRING) return false;
  pn_bytes_t b = pn_data_get_string(d);
  if (b.size > max) return false;
  out.assign(b.start, b.size);
  return true;
}

}  // namespace

std::string encodeRouteHeader(const forwarding::RouteHeader& h) {
  pn_data_t* d = scratch();
  pn_data_put_described(d);
  pn_data_enter(d);
  pn_data_put_symbol(d, pn_bytes(std::strlen(kRouteHeaderDescriptor), kRouteHeaderDescriptor));
  pn_data_put_list(d);
  pn_data_enter(d);
  putString(d, h.address);
  if (h.dest.empty()) {
    pn_data_put_null(d);
  } else {
    putString(d, h.dest);
  }
  if (h.has_dests) {
    pn_data_put_list(d);
    pn_data_enter(d);
    for (const auto& r : h.dests) putString(d, r);
    pn_data_exit(d);
  } else {
    pn_data_put_null(d);
  }
  pn_data_put_uint(d, h.hops);
  putString(d, h.origin);
  pn_data_put_bool(d, h.presettled);
  pn_data_exit(d);
  pn_data_exit(d);
  return encoded(d);
}

DecodeStatus decodeRouteHeader(const char* data, std::size_t size, forwarding::RouteHeader& out,
                               std::size_t* consumed, std::string* error) {
  auto bad = [&](const char* why) {
    if (error) *error = why;
    return DecodeStatus::kMalformed;
  };
  if (size == 0) return DecodeStatus::kNeedMore;
  pn_data_t* d = scratch();
  const ssize_t n = pn_data_decode(d, data, size);
  if (n == PN_UNDERFLOW || n == PN_EOS) return DecodeStatus::kNeedMore;
  if (n < 0) return bad("route header does not decode");
  pn_data_rewind(d);
  if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED)
    return bad("route header is not described");
  pn_data_enter(d);
  if (!pn_data_next(d) || pn_data_type(d) != PN_SYMBOL) return bad("route header descriptor");
  pn_bytes_t desc = pn_data_get_symbol(d);
  if (std::string_view(desc.start, desc.size) != kRouteHeaderDescriptor)
    return bad("unknown route header descriptor");
  if (!pn_data_next(d) || pn_data_type(d) != PN_LIST) return bad("route header is not a list");
  pn_data_enter(d);
  forwarding::RouteHeader h;
  if (!pn_data_next(d) || !readString(d, kMaxAddress, h.address))
    return bad("route header address");
  if (!pn_data_next(d)) return bad("route header dest missing");
  if (pn_data_type(d) != PN_NULL && !readString(d, kMaxId, h.dest)) return bad("route header dest");
  if (!pn_data_next(d)) return bad("route header dests missing");
  if (pn_data_type(d) == PN_LIST) {
    h.has_dests = true;
    const std::size_t count = pn_data_get_list(d);
    pn_data_enter(d);
    h.dests.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      std::string r;
      if (!pn_data_next(d) || !readString(d, kMaxId, r)) return bad("route header dests entry");
      h.dests.push_back(std::move(r));
    }
    pn_data_exit(d);
  } else if (pn_data_type(d) != PN_NULL) {
    return bad("route header dests");
  }
  if (!pn_data_next(d) || pn_data_type(d) != PN_UINT) return bad("route header hops");
  h.hops = pn_data_get_uint(d);
  if (!pn_data_next(d) || !readString(d, kMaxId, h.origin)) return bad("route header origin");
  // Optional (absent: false).
  if (pn_data_next(d)) {
    if (pn_data_type(d) == PN_BOOL) {
      h.presettled = pn_data_get_bool(d);
    } else if (pn_data_type(d) != PN_NULL) {
      return bad("route header presettled");
    }
  }
  // Later versions may append fields: ignored.
  out = std::move(h);
  *consumed = static_cast<std::size_t>(n);
  return DecodeStatus::kOk;
}

std::string encodeControlMessage(std::string_view json) {
  pn_data_t* d = scratch();
  pn_data_put_described(d);
  pn_data_enter(d);
  pn_data_put_ulong(d, kAmqpValue);
  putString(d, json);
  pn_data_exit(d);
  return encoded(d);
}

bool decodeControlMessage(const char* data, std::size_t size, std::string& json,
                          std::string* error) {
  auto bad = [&](const char* why) {
    if (error) *error = why;
    return false;
  };
  if (size > kMaxControlMessage) return bad("control message too large");
  pn_data_t* d = scratch();
  const ssize_t n = pn_data_decode(d, data, size);
  if (n < 0) return bad("control message does not decode");
  if (static_cast<std::size_t>(n) != size) return bad("control message has trailing bytes");
  pn_data_rewind(d);
  if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED) return bad("not an AMQP section");
  pn_data_enter(d);
  if (!pn_data_next(d) || pn_data_type(d) != PN_ULONG) return bad("section descriptor");
  const std::uint64_t code = pn_data_get_ulong(d);
  if (!pn_data_next(d)) return bad("empty section");
  if (code == kAmqpValue && pn_data_type(d) == PN_STRING) {
    pn_bytes_t b = pn_data_get_string(d);
    json.assign(b.start, b.size);
    return true;
  }
  if (code == kData && pn_data_type(d) == PN_BINARY) {
    pn_bytes_t b = pn_data_get_binary(d);
    json.assign(b.start, b.size);
    return true;
  }
  return bad("control message body is not a string");
}

}  // namespace vane::amqp

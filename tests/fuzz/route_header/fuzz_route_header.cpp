// Fuzz target for the inter-router decoders (src/amqp/inter_router.hpp):
// decodeRouteHeader and decodeControlMessage take bytes from other routers.
//
// Besides "no crash, no sanitizer report", it checks:
//  - a decoded header re-encodes to bytes that decode to the same header;
//  - kOk never consumes more than the input, and is stable under more input
//    (appending bytes after a decoded header changes nothing);
//  - a prefix of a decodable header never decodes as kOk with a different
//    length (it needs more, or is malformed);
//  - decodeControlMessage on the input and on encodeControlMessage(output)
//    agree.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "amqp/inter_router.hpp"

namespace {

using vane::amqp::decodeControlMessage;
using vane::amqp::decodeRouteHeader;
using vane::amqp::DecodeStatus;
using vane::amqp::encodeControlMessage;
using vane::amqp::encodeRouteHeader;
using vane::forwarding::RouteHeader;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

bool same(const RouteHeader& a, const RouteHeader& b) {
  return a.address == b.address && a.dest == b.dest && a.has_dests == b.has_dests &&
         a.dests == b.dests && a.hops == b.hops && a.origin == b.origin &&
         a.presettled == b.presettled;
}

// Decodes from an exact-size copy so ASan sees any overread.
DecodeStatus decodeCopy(const char* data, std::size_t n, RouteHeader& h, std::size_t* used) {
  std::unique_ptr<char[]> copy(new char[n + 1]);
  std::memcpy(copy.get(), data, n);
  std::string error;
  return decodeRouteHeader(copy.get(), n, h, used, &error);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const char* data = reinterpret_cast<const char*>(bytes);
  RouteHeader h;
  std::size_t used = 0;
  const DecodeStatus st = decodeCopy(data, size, h, &used);
  if (st == DecodeStatus::kOk) {
    if (used == 0 || used > size) fail("kOk with a bad length");
    const std::string again = encodeRouteHeader(h);
    RouteHeader h2;
    std::size_t used2 = 0;
    if (decodeCopy(again.data(), again.size(), h2, &used2) != DecodeStatus::kOk)
      fail("re-encoded header does not decode");
    if (used2 != again.size() || !same(h, h2)) fail("re-encoded header differs");
    // More bytes after it change nothing.
    std::string longer(data, used);
    longer.append("\x00\x53\x70trailing", 11);
    RouteHeader h3;
    std::size_t used3 = 0;
    if (decodeCopy(longer.data(), longer.size(), h3, &used3) != DecodeStatus::kOk ||
        used3 != used || !same(h, h3))
      fail("trailing bytes changed the header");
    // A strict prefix never decodes.
    if (used > 1) {
      RouteHeader h4;
      std::size_t used4 = 0;
      if (decodeCopy(data, used - 1, h4, &used4) == DecodeStatus::kOk) fail("prefix decoded");
    }
  }

  std::string json, error;
  if (decodeControlMessage(data, size, json, &error)) {
    const std::string wrapped = encodeControlMessage(json);
    std::string json2;
    if (!decodeControlMessage(wrapped.data(), wrapped.size(), json2, &error) || json2 != json)
      fail("control message does not round-trip");
  }
  return 0;
}

// Fuzz target for the TCP adaptor's stream decoding: the start of a stream
// message (amqp::scanTo, which finds reply-to and the end of the properties
// section) and the body that follows (adaptors::BodyDecoder).
//
// The first input byte chooses how the rest is split into pieces (1..256
// bytes). Besides "no crash, no sanitizer report": the payload ranges lie
// inside the piece that was fed, decoding the same bytes in one piece gives
// the same payload and the same status, and re-encoding the payload as data
// sections decodes to the same payload.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "adaptors/stream_codec.hpp"
#include "amqp/message_scan.hpp"

namespace {

using vane::adaptors::BodyDecoder;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

struct Decoded {
  std::string payload;
  bool ok = true;
  bool boundary = true;
};

Decoded decode(const char* data, std::size_t size, std::size_t step) {
  BodyDecoder d;
  Decoded r;
  for (std::size_t i = 0; i < size && r.ok; i += step) {
    const std::size_t n = step < size - i ? step : size - i;
    const char* piece = data + i;
    r.ok = d.feed(piece, n, [&](const char* p, std::size_t k) {
      if (p < piece || p + k > piece + n || k == 0) fail("range outside the piece");
      r.payload.append(p, k);
    }) == BodyDecoder::Status::kOk;
  }
  r.boundary = r.ok && d.atBoundary();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t step = std::size_t{data[0]} + 1;
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  const std::size_t n = size - 1;

  // The message start: where the body begins, if anywhere.
  const auto scan = vane::amqp::scanTo(bytes, n);
  if (scan.properties_end > n) fail("properties end past the input");
  const std::size_t body = scan.properties_end;

  const Decoded split = decode(bytes + body, n - body, step);
  const Decoded whole = decode(bytes + body, n - body, n - body + 1);
  if (split.ok != whole.ok || split.boundary != whole.boundary) fail("status depends on splits");
  if (split.ok && split.payload != whole.payload) fail("payload depends on splits");

  if (split.ok) {
    std::string again(vane::adaptors::kDataHeaderSize, '\0');
    vane::adaptors::writeDataHeader(again.data(), static_cast<std::uint32_t>(split.payload.size()));
    again += split.payload;
    const Decoded round = decode(again.data(), again.size(), step);
    if (!round.ok || !round.boundary || round.payload != split.payload) fail("round trip");
  }
  return 0;
}

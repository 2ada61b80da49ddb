// Fuzz target for the HTTP/1.1 adaptor's message handling (http_codec), the
// way its data path uses it: a request read by a listener, or a response
// read by a connector, arriving in pieces.
//
// Byte 0: bit 0 chooses request (0) or response (1); the other bits the
// piece size (1..128). The rest is what the peer sent.
//
// Besides "no crash, no sanitizer report": the head never takes more than
// it was given; a head the adaptor accepts is rewritten into one that
// Beast parses back whole, with the same method, target or status and the
// same framing; the body takes no byte past the message's end; and reading
// the same bytes in one piece gives the same outcome and the same length.
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

#include "adaptors/http/http_codec.hpp"

namespace {

namespace http = vane::adaptors::http;
namespace bhttp = boost::beast::http;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

struct Outcome {
  int stage = 0;  // 0 no head, 1 head refused, 2 head ok, 3 body error, 4 done
  std::size_t head_bytes = 0;
  std::size_t body_bytes = 0;
};

// The rewritten head parses back whole, as the same message.
template <bool isRequest>
void checkRewritten(const http::MessageReader<isRequest>& r, const std::string& out) {
  bhttp::parser<isRequest, bhttp::empty_body> p;
  p.eager(false);
  p.header_limit(1u << 20);
  p.body_limit(std::numeric_limits<std::uint64_t>::max());
  boost::beast::error_code ec;
  const std::size_t n = p.put(boost::asio::buffer(out.data(), out.size()), ec);
  if (ec && ec != bhttp::error::need_more) fail("the rewritten head does not parse");
  if (!p.is_header_done() || n != out.size()) fail("the rewritten head is not whole");
  const auto& a = r.get();
  const auto& b = p.get().base();
  if constexpr (isRequest) {
    if (a.method_string() != b.method_string() || a.target() != b.target()) {
      fail("the rewritten request line differs");
    }
  } else {
    if (a.result_int() != b.result_int()) fail("the rewritten status differs");
  }
  if (r.chunked() != p.chunked()) fail("the rewritten framing differs (chunked)");
  if (!r.chunked() && r.contentLength() != p.content_length()) {
    fail("the rewritten framing differs (length)");
  }
}

template <bool isRequest>
Outcome run(const char* data, std::size_t size, std::size_t step) {
  Outcome o;
  http::MessageReader<isRequest> r(4096);
  std::string buf;
  std::size_t pos = 0;
  std::size_t used = 0;
  auto st = http::MessageReader<isRequest>::Status::kNeedMore;
  using S = typename http::MessageReader<isRequest>::Status;
  while (pos < size) {
    const std::size_t k = step < size - pos ? step : size - pos;
    buf.append(data + pos, k);
    pos += k;
    st = r.head(buf, used);
    if (st == S::kError) return o;
    if (st != S::kNeedMore) break;
  }
  if (st != S::kHead && st != S::kDone) return o;
  if (used > buf.size()) fail("the head took more than it was given");
  o.head_bytes = used;
  o.stage = 1;
  if constexpr (isRequest) {
    if (http::checkRequest(r)) return o;
    const std::string host = http::hostOf(r);
    for (char c : host) {
      if (c >= 'A' && c <= 'Z') fail("hostOf is not lower-case");
    }
    const auto target = r.get().target();
    const auto path = http::pathOf(std::string_view(target.data(), target.size()));
    if (path.empty()) fail("an empty path");
    const std::string out = http::forwardRequestHead(r, {"192.0.2.1", "http", "1.1 fuzz"});
    checkRewritten(r, out);
    // The next hop sees the same request as to switching protocols.
    http::RequestReader again(1u << 20);
    std::size_t again_used = 0;
    const auto again_st = again.head(out, again_used);
    if (again_st != S::kHead && again_st != S::kDone) fail("the rewritten head does not read");
    if (http::tunnelOf(again) != http::tunnelOf(r)) fail("the rewritten request switches otherwise");
  } else {
    checkRewritten(r, http::forwardResponseHead(r, "1.1 fuzz"));
    const std::string head = http::forwardResponseHead(r, "1.1 fuzz");
    const std::string with = http::withConnection(head, "close");
    if (with.size() <= head.size() || with.substr(with.size() - 4) != "\r\n\r\n") {
      fail("withConnection broke the head");
    }
  }
  o.stage = 2;
  // The body, as the exchanges feed it: what a call leaves is given again
  // with the next bytes.
  std::string pending = buf.substr(used);
  std::size_t body = 0;
  if (st == S::kDone) {
    o.stage = 4;
    return o;
  }
  for (;;) {
    std::size_t took = 0;
    const auto bs = r.body(pending, took);
    if (took > pending.size()) fail("the body took more than it was given");
    body += took;
    pending.erase(0, took);
    if (bs == S::kError) {
      o.stage = 3;
      break;
    }
    if (bs == S::kDone) {
      o.stage = 4;
      break;
    }
    if (pos >= size) break;
    const std::size_t k = step < size - pos ? step : size - pos;
    pending.append(data + pos, k);
    pos += k;
  }
  o.body_bytes = body;
  return o;
}

template <bool isRequest>
void both(const char* data, std::size_t size, std::size_t step) {
  const Outcome split = run<isRequest>(data, size, step);
  const Outcome whole = run<isRequest>(data, size, size == 0 ? 1 : size);
  if (split.stage != whole.stage) fail("pieces change the outcome");
  if (split.head_bytes != whole.head_bytes) fail("pieces change the head's length");
  if (split.stage == 4 && split.body_bytes != whole.body_bytes) {
    fail("pieces change the body's length");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool response = (data[0] & 1) != 0;
  const std::size_t step = static_cast<std::size_t>(data[0] >> 1) + 1;
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  if (response) {
    both<false>(bytes, size - 1, step);
  } else {
    both<true>(bytes, size - 1, step);
  }
  return 0;
}

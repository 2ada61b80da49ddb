// The HTTP/1.1 adaptor's message handling, without I/O (unit tested and
// fuzzed alone): Boost.Beast parses every request and response head and
// tracks where each body ends; bodies themselves are passed on as the bytes
// that arrived (Content-Length or chunked framing, trailers included), so
// that a body of any size streams through with bounded memory.
//
// Across the network a request travels as one stream: its head as
// forwardRequestHead() rewrites it, then its body bytes, then the end of the
// stream. Its answer travels back the same way (any 1xx heads first).
#pragma once

#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace vane::adaptors::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// A Beast body that keeps nothing: the parser checks the framing and finds
// the end; the adaptor forwards the raw bytes it consumed.
struct DiscardBody {
  struct value_type {};
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(bhttp::header<isRequest, Fields>&, value_type&) {}
    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }
    template <class Buffers>
    std::size_t put(const Buffers& buffers, beast::error_code& ec) {
      ec = {};
      return beast::buffer_bytes(buffers);
    }
    void finish(beast::error_code& ec) { ec = {}; }
  };
};

// One message being read: its head from a contiguous buffer, then its body
// in pieces of any size.
template <bool isRequest>
class MessageReader {
 public:
  using Parser = bhttp::parser<isRequest, DiscardBody>;
  enum class Status { kNeedMore, kHead, kDone, kError };

  explicit MessageReader(std::uint32_t header_limit = 65536) { reset(header_limit); }

  void reset(std::uint32_t header_limit = 65536) {
    parser_ = std::make_unique<Parser>();
    parser_->header_limit(header_limit);
    // Unlimited: the body streams through. (boost::none would not do: in
    // Boost 1.74 a Content-Length is compared against the optional, and
    // every length is greater than none.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_->eager(true);
    header_limit_ = header_limit;
    taken_ = 0;
    error_.clear();
  }
  // The answer to a HEAD request (or one that must not have a body).
  void skipBody() { parser_->skip(true); }

  // Parses the head from `buf`: everything read since the message began,
  // given again, longer, after each kNeedMore (Beast takes the start line
  // as soon as it is whole; what it took is not given to it twice). kHead:
  // the head is complete and was the first `used` bytes of buf (nothing of
  // the body is taken). kNeedMore: more bytes are needed. kError: see
  // error(); a head longer than the limit is one, as is a status outside
  // 100..599.
  Status head(std::string_view buf, std::size_t& used) {
    used = 0;
    if (buf.size() < taken_) return fail(bhttp::error::header_limit);  // misuse: shorter
    parser_->eager(false);
    beast::error_code ec;
    const std::size_t n =
        parser_->put(boost::asio::buffer(buf.data() + taken_, buf.size() - taken_), ec);
    parser_->eager(true);
    taken_ += n;
    if (ec && ec != bhttp::error::need_more) return fail(ec);
    if (!parser_->is_header_done()) {
      if (buf.size() > header_limit_) return fail(bhttp::error::header_limit);
      return Status::kNeedMore;
    }
    if (taken_ > header_limit_) return fail(bhttp::error::header_limit);
    // Both framings (RFC 9112 6.3: a message to refuse, as it may be read
    // either way by the next hop): Beast lets some through.
    const auto& fields = parser_->get().base();
    if (fields.count(bhttp::field::transfer_encoding) > 0 &&
        fields.count(bhttp::field::content_length) > 0) {
      return fail(bhttp::error::bad_transfer_encoding);
    }
    if constexpr (!isRequest) {
      // Beast takes any three digits; HTTP has 100..599 (RFC 9110 15).
      const unsigned status = parser_->get().result_int();
      if (status < 100 || status > 599) return fail(bhttp::error::bad_status);
    }
    used = taken_;
    return parser_->is_done() ? Status::kDone : Status::kHead;
  }

  // Feeds body bytes: `used` of them belong to this message (the rest is
  // either the start of the next message or, with kNeedMore, an incomplete
  // chunk header to be given again with more bytes after it).
  Status body(std::string_view buf, std::size_t& used) {
    used = 0;
    while (used < buf.size() && !parser_->is_done()) {
      beast::error_code ec;
      const std::size_t n =
          parser_->put(boost::asio::buffer(buf.data() + used, buf.size() - used), ec);
      used += n;
      if (ec == bhttp::error::need_more) return Status::kNeedMore;
      if (ec) return fail(ec);
      if (n == 0) break;
    }
    return parser_->is_done() ? Status::kDone : Status::kNeedMore;
  }

  // The connection ended: a message whose body runs to the end is done.
  Status eof() {
    beast::error_code ec;
    parser_->put_eof(ec);
    if (ec) return fail(ec);
    return parser_->is_done() ? Status::kDone : Status::kError;
  }

  bool done() const { return parser_->is_done(); }
  bool chunked() const { return parser_->chunked(); }
  bool needEof() const { return parser_->need_eof(); }
  bool keepAlive() const { return parser_->keep_alive(); }
  boost::optional<std::uint64_t> contentLength() const { return parser_->content_length(); }
  const bhttp::header<isRequest, bhttp::fields>& get() const { return parser_->get().base(); }
  const std::string& error() const { return error_; }

 private:
  Status fail(const beast::error_code& ec) {
    error_ = ec.message();
    return Status::kError;
  }
  std::unique_ptr<Parser> parser_;  // Beast's parser does not move
  std::uint32_t header_limit_ = 0;
  std::size_t taken_ = 0;  // bytes of the head the parser has taken
  std::string error_;
};

using RequestReader = MessageReader<true>;
using ResponseReader = MessageReader<false>;

// Why a request may not be forwarded, or nothing. 400: a Transfer-Encoding
// other than a final "chunked" (RFC 9112 6.1: the length could not be
// determined), given twice, or in an HTTP/1.0 request; more than one Host,
// none in HTTP/1.1, a target or Host that is not ASCII; a CONNECT whose
// target is not host:port or that has a body. 501: a method Beast does not
// know.
struct Refusal {
  unsigned status;
  std::string text;
};
std::optional<Refusal> checkRequest(const RequestReader& r);

// A request that may turn its connection into a byte stream: an HTTP/1.1
// Upgrade (Upgrade named in Connection; not h2c, which would take every
// later request of the connection off per-request routing) once the server
// answers 101, or a CONNECT once it answers 2xx.
enum class Tunnel { kNone, kUpgrade, kConnect };
Tunnel tunnelOf(const RequestReader& r);
// A 101 answer to `req` is a real switch: it names (in Upgrade, with
// Connection: upgrade) one of the protocols the request offered.
bool grantsUpgrade(const RequestReader& req, const ResponseReader& res);
// Whether `status` switches a request of kind `t` to a byte stream.
inline bool switches(Tunnel t, unsigned status) {
  return (t == Tunnel::kUpgrade && status == 101) ||
         (t == Tunnel::kConnect && status >= 200 && status < 300);
}

// What a proxy adds about the client and itself.
struct ForwardInfo {
  std::string_view client_ip;  // appended to X-Forwarded-For
  std::string_view proto;      // X-Forwarded-Proto: "http" or "https"
  std::string_view via;        // "1.1 <router id>", appended to Via
};

// The request head sent on: HTTP/1.1 (1.0 for a 1.0 request, with
// Connection: keep-alive), hop-by-hop fields removed (Connection
// and the fields it names, except Host and Transfer-Encoding; Keep-Alive,
// Proxy-Connection, TE, Upgrade; an Upgrade request keeps Upgrade, with
// Connection: upgrade), the framing given once (Transfer-Encoding
// as it came, else Content-Length: N),
// Host kept, X-Forwarded-For appended to, X-Forwarded-Proto and
// X-Forwarded-Host set (whatever the client sent in them), Via appended to.
std::string forwardRequestHead(const RequestReader& r, const ForwardInfo& info);

// The response head sent back: hop-by-hop fields removed (a 101 keeps
// Upgrade, with Connection: upgrade), the framing given once, Via appended
// to. A body that runs to the end of the connection is
// left so (no length: the client's connection closes after it).
std::string forwardResponseHead(const ResponseReader& r, std::string_view via);

// Host without its port, lower-case ("" when absent); for CONNECT, the
// target's host (what the tunnel goes to, whatever Host says).
std::string hostOf(const RequestReader& r);
// The request target's path, without the query ("/" for "*" and absolute
// targets without a path).
std::string_view pathOf(std::string_view target);

// A short answer made by the router: `status` with a text body.
std::string errorResponse(unsigned status, std::string_view text, bool close);

// The same head with "Connection: <value>" added (before its final CRLF).
std::string withConnection(std::string_view head, std::string_view value);

}  // namespace vane::adaptors::http

// The HTTP/1.1 adaptor's message handling (src/adaptors/http/http_codec.hpp).
#include "adaptors/http/http_codec.hpp"

#include <gtest/gtest.h>

#include <string>

namespace vane::adaptors::http {
namespace {

// Reads a request head from `text`; EXPECTs it to be complete.
RequestReader head(const std::string& text, std::size_t* used = nullptr) {
  RequestReader r;
  std::size_t n = 0;
  const auto st = r.head(text, n);
  EXPECT_TRUE(st == RequestReader::Status::kHead || st == RequestReader::Status::kDone)
      << r.error();
  if (used) *used = n;
  return r;
}

TEST(HttpCodec, HeadTakesOnlyTheHead) {
  const std::string text = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
  std::size_t used = 0;
  RequestReader r = head(text, &used);
  EXPECT_EQ(used, text.size() - 5);
  std::size_t took = 0;
  EXPECT_EQ(r.body("hel", took), RequestReader::Status::kNeedMore);
  EXPECT_EQ(took, 3u);
  EXPECT_EQ(r.body("loGET", took), RequestReader::Status::kDone);
  EXPECT_EQ(took, 2u);  // the next request is not taken
}

TEST(HttpCodec, IncompleteHeadNeedsMore) {
  RequestReader r;
  std::size_t used = 7;
  EXPECT_EQ(r.head("GET / HTTP/1.1\r\nHost:", used), RequestReader::Status::kNeedMore);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(r.head("GET / HTTP/1.1\r\nHost: h\r\n\r\n", used), RequestReader::Status::kDone);
}

TEST(HttpCodec, LargeContentLengthIsNotALimit) {
  // Bodies stream: no body limit (Beast's default would refuse 8 MB).
  ResponseReader r;
  std::size_t used = 0;
  EXPECT_EQ(r.head("HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n", used),
            ResponseReader::Status::kHead)
      << r.error();
}

TEST(HttpCodec, HeaderLimit) {
  RequestReader r(1024);
  std::size_t used = 0;
  const std::string big = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(2000, 'a') + "\r\n\r\n";
  EXPECT_EQ(r.head(big, used), RequestReader::Status::kError);
}

TEST(HttpCodec, ChunkedBodyWithTrailers) {
  RequestReader r = head("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_TRUE(r.chunked());
  const std::string body = "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nNEXT";
  std::size_t total = 0;
  RequestReader::Status st = RequestReader::Status::kNeedMore;
  std::string pending;
  for (char c : body) {  // one byte at a time, as slowly as a peer can
    pending += c;
    std::size_t took = 0;
    st = r.body(pending, took);
    pending.erase(0, took);
    total += took;
    if (st != RequestReader::Status::kNeedMore) break;
  }
  EXPECT_EQ(st, RequestReader::Status::kDone);
  EXPECT_EQ(total, body.size() - 4);
}

TEST(HttpCodec, SmugglingIsRefused) {
  // Both framings: Beast refuses them itself.
  RequestReader r;
  std::size_t used = 0;
  EXPECT_EQ(r.head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n",
                   used),
            RequestReader::Status::kError);
  RequestReader two;
  EXPECT_EQ(two.head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                     used),
            RequestReader::Status::kError);
  // The others: checkRequest.
  const char* refused[] = {
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
      "chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n",
  };
  for (const char* text : refused) {
    RequestReader q;
    if (q.head(text, used) == RequestReader::Status::kError) continue;  // Beast refused it
    const auto why = checkRequest(q);
    ASSERT_TRUE(why.has_value()) << text;
    EXPECT_EQ(why->status, 400u) << text;
  }
  EXPECT_FALSE(checkRequest(head("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n")));
  EXPECT_FALSE(checkRequest(head("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n")));
  for (const char* bad :
       {"CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n", "CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n",
        "CONNECT h:44x HTTP/1.1\r\nHost: h\r\n\r\n", "CONNECT u@h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        "CONNECT h:0 HTTP/1.1\r\nHost: h\r\n\r\n", "CONNECT h:99999 HTTP/1.1\r\nHost: h\r\n\r\n",
        "CONNECT h:443 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"}) {
    const auto why = checkRequest(head(bad));
    ASSERT_TRUE(why.has_value()) << bad;
    EXPECT_EQ(why->status, 400u) << bad;
  }
  const auto unknown = checkRequest(head("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n"));
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status, 501u);
  EXPECT_FALSE(checkRequest(head("GET / HTTP/1.0\r\n\r\n")).has_value());  // 1.0: Host optional
}

TEST(HttpCodec, ForwardedRequestHead) {
  const RequestReader r = head(
      "GET /p?q HTTP/1.1\r\nHost: Web.Example:81\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n"
      "Keep-Alive: 5\r\nUpgrade: h2c\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\n"
      "x-forwarded-proto: https\r\nX-Forwarded-Host: other\r\nVia: 1.0 p\r\nAccept: */*\r\n\r\n");
  const std::string out = forwardRequestHead(r, {"192.0.2.7", "http", "1.1 vane-a"});
  EXPECT_EQ(out,
            "GET /p?q HTTP/1.1\r\n"
            "Host: Web.Example:81\r\n"
            "Accept: */*\r\n"
            "X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"
            "X-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: Web.Example:81\r\n"
            "Via: 1.0 p, 1.1 vane-a\r\n\r\n");
  EXPECT_EQ(hostOf(r), "web.example");
}

TEST(HttpCodec, UpgradeGoesOn) {
  const RequestReader ws = head(
      "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
      "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_EQ(tunnelOf(ws), Tunnel::kUpgrade);
  EXPECT_EQ(forwardRequestHead(ws, {"c", "http", "1.1 v"}),
            "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n"
            "Sec-WebSocket-Version: 13\r\nConnection: upgrade\r\nX-Forwarded-For: c\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nVia: 1.1 v\r\n\r\n");
  // Not named in Connection, in HTTP/1.0, or h2c: no switch, Upgrade dropped.
  for (const char* text : {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
                           "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                           "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                           "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"}) {
    const RequestReader r = head(text);
    EXPECT_EQ(tunnelOf(r), Tunnel::kNone) << text;
    const std::string out = forwardRequestHead(r, {"c", "http", "1.1 v"});
    EXPECT_EQ(out.find("pgrade"), std::string::npos) << out;
    EXPECT_EQ(out.find("HTTP2-Settings"), std::string::npos) << out;
  }
  EXPECT_EQ(tunnelOf(head("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
                          "Upgrade: websocket, h2c\r\n\r\n")),
            Tunnel::kNone);
  const RequestReader connect =
      head("CONNECT Inner.Example:22 HTTP/1.1\r\nHost: public.example\r\n\r\n");
  EXPECT_EQ(tunnelOf(connect), Tunnel::kConnect);
  EXPECT_EQ(hostOf(connect), "inner.example");  // routed by where it goes
  EXPECT_TRUE(switches(Tunnel::kUpgrade, 101));
  EXPECT_FALSE(switches(Tunnel::kUpgrade, 200));
  EXPECT_TRUE(switches(Tunnel::kConnect, 200));
  EXPECT_FALSE(switches(Tunnel::kConnect, 407));
  EXPECT_FALSE(switches(Tunnel::kNone, 101));

  ResponseReader res;
  std::size_t used = 0;
  ASSERT_EQ(res.head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\n",
                     used),
            ResponseReader::Status::kDone)
      << res.error();
  EXPECT_TRUE(grantsUpgrade(ws, res));
  for (const char* other : {"HTTP/1.1 101 S\r\nUpgrade: other\r\nConnection: upgrade\r\n\r\n",
                            "HTTP/1.1 101 S\r\nUpgrade: websocket\r\n\r\n",
                            "HTTP/1.1 101 S\r\nConnection: upgrade\r\n\r\n"}) {
    ResponseReader o;
    ASSERT_EQ(o.head(other, used), ResponseReader::Status::kDone) << other;
    EXPECT_FALSE(grantsUpgrade(ws, o)) << other;
  }
  EXPECT_EQ(forwardResponseHead(res, "1.1 v"),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: "
            "a\r\nConnection: upgrade\r\nVia: 1.1 v\r\n\r\n");
}

TEST(HttpCodec, Http10StaysHttp10) {
  const RequestReader r = head("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(forwardRequestHead(r, {"c", "http", "1.1 v"}),
            "GET /x HTTP/1.0\r\nConnection: keep-alive\r\nX-Forwarded-For: c\r\n"
            "X-Forwarded-Proto: http\r\nVia: 1.1 v\r\n\r\n");
}

TEST(HttpCodec, ForwardedFraming) {
  const RequestReader chunked =
      head("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  // A request with gzip then chunked is refused by checkRequest? No: only the
  // final coding must be chunked; the codings stay as they are for the server.
  EXPECT_FALSE(checkRequest(chunked).has_value());
  // Its codings go on as they came: the body is passed on as it is.
  EXPECT_NE(
      forwardRequestHead(chunked, {"c", "http", "v"}).find("Transfer-Encoding: gzip, chunked\r\n"),
      std::string::npos);
  // Naming the framing or Host in Connection does not remove them.
  const RequestReader named = head(
      "POST / HTTP/1.1\r\nHost: h\r\nConnection: transfer-encoding, host, x\r\nX: 1\r\n"
      "Transfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(forwardRequestHead(named, {"c", "http", "v"}),
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: c\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nVia: v\r\n\r\n");
  const auto v10 = checkRequest(head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"));
  ASSERT_TRUE(v10.has_value());
  EXPECT_EQ(v10->status, 400u);
  const RequestReader len = head("PUT / HTTP/1.1\r\nHost: h\r\ncontent-length: 12\r\n\r\n");
  const std::string out = forwardRequestHead(len, {"c", "http", "v"});
  EXPECT_NE(out.find("Content-Length: 12\r\n"), std::string::npos);
  EXPECT_EQ(out.find("content-length"), std::string::npos);
}

TEST(HttpCodec, ForwardedResponseHead) {
  ResponseReader r;
  std::size_t used = 0;
  ASSERT_EQ(r.head("HTTP/1.1 404 Not Here\r\nConnection: keep-alive\r\nContent-Length: 3\r\n"
                   "Server: s\r\n\r\nabc",
                   used),
            ResponseReader::Status::kHead);
  EXPECT_EQ(forwardResponseHead(r, "1.1 b"),
            "HTTP/1.1 404 Not Here\r\nServer: s\r\nContent-Length: 3\r\nVia: 1.1 b\r\n\r\n");
  EXPECT_EQ(withConnection("HTTP/1.1 200 OK\r\nA: b\r\n\r\n", "close"),
            "HTTP/1.1 200 OK\r\nA: b\r\nConnection: close\r\n\r\n");
}

TEST(HttpCodec, HeadAnswerHasNoBody) {
  ResponseReader r;
  r.skipBody();
  std::size_t used = 0;
  EXPECT_EQ(r.head("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", used),
            ResponseReader::Status::kDone);
}

TEST(HttpCodec, BodyToTheEnd) {
  ResponseReader r;
  std::size_t used = 0;
  ASSERT_EQ(r.head("HTTP/1.0 200 OK\r\n\r\n", used), ResponseReader::Status::kHead);
  EXPECT_TRUE(r.needEof());
  std::size_t took = 0;
  EXPECT_EQ(r.body("some bytes", took), ResponseReader::Status::kNeedMore);
  EXPECT_EQ(took, 10u);
  EXPECT_EQ(r.eof(), ResponseReader::Status::kDone);
}

TEST(HttpCodec, PathOf) {
  EXPECT_EQ(pathOf("/a/b?x=1"), "/a/b");
  EXPECT_EQ(pathOf("/a#frag"), "/a");
  EXPECT_EQ(pathOf("http://h:1/p/q?z"), "/p/q");
  EXPECT_EQ(pathOf("http://h:1"), "/");
  EXPECT_EQ(pathOf("*"), "/");
}

TEST(HttpCodec, ErrorResponse) {
  EXPECT_EQ(errorResponse(503, "no way", true),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 7\r\nConnection: close\r\n\r\nno way\n");
}

}  // namespace
}  // namespace vane::adaptors::http

// What the HTTP fuzz targets (claims, management) share: turning an input
// into the requests an HttpServer would hand its handler, and the checks on
// every answer.
//
// Input: one or more requests, separated by a line "###":
//
//   METHOD SP TARGET LF
//   NAME: VALUE LF          (any number of header lines)
//   LF
//   BODY                    (up to the next "\n###\n", or the end)
//
// A CR before each LF is dropped. Each request is written out as HTTP/1.1
// with a Content-Length for its body (Content-Length and Transfer-Encoding
// lines of the input are left out) and read back with Beast's request
// parser, with the server's limits: what the parser refuses never reaches a
// handler (HttpServer answers 400 or 413 itself), so it is skipped. The
// method, target and header bytes a handler sees are therefore those a real
// client can send.
//
// VANE_FUZZ_TRACE=1 makes traceAnswer() print each request and its answer's
// status on stderr, to see how far the inputs of a corpus get.
#pragma once

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "management/http_server.hpp"

namespace vane::fuzz {

namespace http = boost::beast::http;

[[noreturn]] inline void httpFail(const char* target, const char* what) {
  std::fprintf(stderr, "%s fuzz target: invariant violated: %s\n", target, what);
  std::abort();
}

// Splits `input` at "\n###\n" lines into at most `max` pieces.
inline std::vector<std::string_view> splitRequests(std::string_view input, std::size_t max) {
  std::vector<std::string_view> out;
  constexpr std::string_view kSeparator = "\n###\n";
  while (out.size() < max) {
    const std::size_t at = input.find(kSeparator);
    out.push_back(input.substr(0, at));
    if (at == std::string_view::npos) break;
    input.remove_prefix(at + kSeparator.size());
  }
  return out;
}

inline bool equalsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// One piece of input as the request a handler would get, or nothing when
// HttpServer would not pass it on.
inline std::optional<management::Request> parseRequest(std::string_view piece) {
  std::string head;
  std::string_view rest = piece;
  auto nextLine = [&rest](std::string_view& line) {
    if (rest.empty()) return false;
    const std::size_t eol = rest.find('\n');
    line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return true;
  };
  std::string_view line;
  if (!nextLine(line)) return std::nullopt;
  const std::size_t space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  head.append(line.substr(0, space)).append(" ").append(line.substr(space + 1));
  head.append(" HTTP/1.1\r\n");
  while (nextLine(line) && !line.empty()) {
    const std::size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    if (equalsNoCase(name, "content-length") || equalsNoCase(name, "transfer-encoding")) continue;
    head.append(line).append("\r\n");
  }
  head.append("Content-Length: ").append(std::to_string(rest.size())).append("\r\n\r\n");
  head.append(rest);

  http::request_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(management::HttpServer::kMaxBody);
  parser.header_limit(management::HttpServer::kMaxHeader);
  boost::beast::error_code ec;
  const std::size_t used = parser.put(boost::asio::buffer(head), ec);
  if (ec || !parser.is_done() || used != head.size()) return std::nullopt;
  return parser.release();
}

inline void traceAnswer(const management::Request& req, const management::Response* res) {
  static const bool on = std::getenv("VANE_FUZZ_TRACE") != nullptr;
  if (!on) return;
  std::fprintf(stderr, "  %.*s %.*s -> ", static_cast<int>(req.method_string().size()),
               req.method_string().data(), static_cast<int>(req.target().size()),
               req.target().data());
  if (res == nullptr) {
    std::fprintf(stderr, "no answer\n");
  } else {
    std::fprintf(stderr, "%u %.*s\n", res->result_int(),
                 static_cast<int>(res->body().size() > 160 ? 160 : res->body().size()),
                 res->body().data());
  }
}

inline void traceSkipped(const management::Request& req) {
  static const bool on = std::getenv("VANE_FUZZ_TRACE") != nullptr;
  if (!on) return;
  std::fprintf(stderr, "  %.*s %.*s -> skipped\n", static_cast<int>(req.method_string().size()),
               req.method_string().data(), static_cast<int>(req.target().size()),
               req.target().data());
}

// Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF.
inline bool validUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Checks an answer as any client of the two APIs relies on it: a known
// status; a JSON content type only with a body that is valid UTF-8 and JSON
// (an object with an "error" string for refusals, but for the 503 "not
// ready" of /readyz, which has a "reason"); no content with 204; an
// Allow header with 405. Returns the parsed body (null when it is not JSON).
inline nlohmann::json checkAnswer(const char* target, const management::Response& res) {
  const unsigned status = res.result_int();
  if (status < 200 || status > 599 || http::obsolete_reason(res.result()) == "<unknown-status>")
    httpFail(target, "answer with an unknown status");
  if (res.result() == http::status::no_content) {
    if (!res.body().empty()) httpFail(target, "204 with a body");
    return nullptr;
  }
  if (res.result() == http::status::method_not_allowed && res[http::field::allow].empty())
    httpFail(target, "405 without Allow");
  const auto type = res[http::field::content_type];
  if (type != "application/json") return nullptr;
  if (!validUtf8(res.body())) httpFail(target, "JSON answer that is not valid UTF-8");
  nlohmann::json body = nlohmann::json::parse(res.body(), nullptr, false);
  if (body.is_discarded()) httpFail(target, "JSON answer that does not parse");
  // The readiness probe's 503 says why in "reason" (docs/management.md).
  const bool not_ready = res.result() == http::status::service_unavailable && body.is_object() &&
                         body.value("status", "") == "not ready" && body.contains("reason") &&
                         body["reason"].is_string();
  if (status >= 400 && !not_ready) {
    if (!body.is_object() || !body.contains("error") || !body["error"].is_string())
      httpFail(target, "refusal without an error message");
    if (body.contains("field") && !body["field"].is_string())
      httpFail(target, "refusal with a field that is not a string");
  }
  return body;
}

// Log arguments come from the peer: format every message, into a null sink.
inline void logIntoNullSink() {
  auto logger = std::make_shared<spdlog::logger>("vane-fuzz",
                                                 std::make_shared<spdlog::sinks::null_sink_mt>());
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace vane::fuzz

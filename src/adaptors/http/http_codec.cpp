#include "adaptors/http/http_codec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <vector>

namespace vane::adaptors::http {

namespace {

using bhttp::field;

bool isHopByHop(field f) {
  switch (f) {
    case field::connection:
    case field::keep_alive:
    case field::proxy_connection:
    case field::te:
    case field::content_length:  // written once, normalised
    case field::upgrade:
      return true;
    default:
      return false;
  }
}

// The field names a Connection header lists (lower-case).
std::vector<std::string> connectionTokens(const bhttp::fields& fields) {
  std::vector<std::string> out;
  for (auto it = fields.find(field::connection);
       it != fields.end() && it->name() == field::connection; ++it) {
    for (auto token : bhttp::token_list(it->value())) {
      std::string t(token);
      for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.push_back(std::move(t));
    }
  }
  return out;
}

bool listed(const std::vector<std::string>& tokens, beast::string_view name) {
  for (const auto& t : tokens) {
    if (beast::iequals(t, name)) return true;
  }
  return false;
}

// Appends the fields of `h` that go on, and the framing.
// `upgrade`: Upgrade goes on (the message asks for, or grants, a switch).
template <bool isRequest>
void appendFields(std::string& out, const MessageReader<isRequest>& r,
                  std::initializer_list<std::string_view> replaced, bool upgrade = false) {
  const auto& h = r.get();
  const auto tokens = connectionTokens(h);
  bool coded = false;  // a Transfer-Encoding went on
  for (const auto& f : h) {
    const bool up = upgrade && f.name() == field::upgrade;
    if (isHopByHop(f.name()) && !up) continue;
    if (std::any_of(replaced.begin(), replaced.end(), [&f](std::string_view n) {
          return beast::iequals(beast::string_view(n.data(), n.size()), f.name_string());
        }))
      continue;
    // The body's bytes go on as they came, so its Transfer-Encoding does
    // too (all its codings, not only chunked); neither it nor Host can be
    // dropped by naming it in Connection.
    const bool kept = f.name() == field::transfer_encoding || f.name() == field::host || up;
    if (!kept && !tokens.empty() && listed(tokens, f.name_string())) continue;
    coded = coded || f.name() == field::transfer_encoding;
    out.append(f.name_string().data(), f.name_string().size());
    out += ": ";
    out.append(f.value().data(), f.value().size());
    out += "\r\n";
  }
  if (!coded) {
    if (const auto len = r.contentLength()) out += fmt::format("Content-Length: {}\r\n", *len);
  }
  if (upgrade) out += "Connection: upgrade\r\n";
}

// The values of every `f` in `h`, joined by ", " (an empty string if none).
std::string joined(const bhttp::fields& h, std::string_view name) {
  std::string out;
  for (const auto& f : h) {
    if (!beast::iequals(f.name_string(), beast::string_view(name.data(), name.size()))) continue;
    if (!out.empty()) out += ", ";
    out.append(f.value().data(), f.value().size());
  }
  return out;
}

}  // namespace

std::optional<Refusal> checkRequest(const RequestReader& r) {
  const auto& h = r.get();
  const std::size_t te = h.count(field::transfer_encoding);
  if (te > 0 && !r.chunked()) {
    return Refusal{400, "Transfer-Encoding must end in 'chunked'"};
  }
  if (te > 1) return Refusal{400, "Transfer-Encoding is given more than once"};
  // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
  // framing (a 1.0 server may not read it so: a smuggled request).
  if (te > 0 && h.version() < 11) return Refusal{400, "Transfer-Encoding in an HTTP/1.0 request"};
  const std::size_t hosts = h.count(field::host);
  if (hosts > 1) return Refusal{400, "Host is given more than once"};
  if (hosts == 0 && h.version() >= 11) return Refusal{400, "an HTTP/1.1 request needs Host"};
  // RFC 9112 3.2 and RFC 3986: a target and a Host are ASCII (anything
  // else is percent-encoded), with no controls or spaces.
  const auto visible = [](beast::string_view v) {
    return std::all_of(v.begin(), v.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return u > 0x20 && u < 0x7f;
    });
  };
  if (!visible(h.target())) return Refusal{400, "the request target is not ASCII"};
  if (const auto host = h.find(field::host); host != h.end() && !visible(host->value())) {
    return Refusal{400, "Host is not ASCII"};
  }
  if (h.method() == bhttp::verb::unknown) return Refusal{501, "method not supported"};
  if (h.method() == bhttp::verb::connect) {
    // RFC 9110 9.3.6: the target is host:port; a body has no meaning.
    const std::string_view t(h.target().data(), h.target().size());
    const auto colon = t.rfind(':');
    bool port = colon != std::string_view::npos && colon + 1 < t.size() &&
                t.size() - colon - 1 <= 5 &&
                std::all_of(t.begin() + static_cast<std::ptrdiff_t>(colon) + 1, t.end(),
                            [](char c) { return c >= '0' && c <= '9'; });
    if (port) {
      const int p = std::stoi(std::string(t.substr(colon + 1)));
      port = p >= 1 && p <= 65535;
    }
    if (colon == 0 || !port || t.find_first_of("/?#@") != std::string_view::npos) {
      return Refusal{400, "a CONNECT target is host:port"};
    }
    if (te > 0 || r.contentLength().value_or(0) > 0) {
      return Refusal{400, "a CONNECT request has no body"};
    }
  }
  return std::nullopt;
}

Tunnel tunnelOf(const RequestReader& r) {
  const auto& h = r.get();
  if (h.method() == bhttp::verb::connect) return Tunnel::kConnect;
  if (h.version() < 11) return Tunnel::kNone;  // RFC 9110 7.8: ignored in 1.0
  const auto up = h.find(field::upgrade);
  if (up == h.end() || !listed(connectionTokens(h), "upgrade")) return Tunnel::kNone;
  // h2c: HTTP/2 would carry every later request of the connection to the
  // one server; the request goes on as HTTP/1.1 instead.
  // Offered with anything else, it is not passed on at all.
  bool any = false;
  for (auto token : bhttp::token_list(up->value())) {
    const std::string_view name(token.data(), token.size());
    const auto slash = std::min(name.find('/'), name.size());
    if (beast::iequals(beast::string_view(name.data(), slash), "h2c")) return Tunnel::kNone;
    any = true;
  }
  return any ? Tunnel::kUpgrade : Tunnel::kNone;
}

bool grantsUpgrade(const RequestReader& req, const ResponseReader& res) {
  if (tunnelOf(req) != Tunnel::kUpgrade) return false;
  const auto& h = res.get();
  const auto chosen = h.find(field::upgrade);
  if (chosen == h.end() || !listed(connectionTokens(h), "upgrade")) return false;
  const auto offered = req.get().find(field::upgrade);
  for (auto token : bhttp::token_list(offered->value())) {
    if (beast::iequals(token, chosen->value())) return true;
  }
  return false;
}

std::string hostOf(const RequestReader& r) {
  std::string_view v;
  if (r.get().method() == bhttp::verb::connect) {
    v = std::string_view(r.get().target().data(), r.get().target().size());  // host:port
  } else {
    const auto it = r.get().find(field::host);
    if (it == r.get().end()) return {};
    v = std::string_view(it->value().data(), it->value().size());
  }
  if (!v.empty() && v.front() == '[') {
    const auto close = v.find(']');
    v = close == std::string_view::npos ? v : v.substr(0, close + 1);
  } else if (const auto colon = v.rfind(':'); colon != std::string_view::npos) {
    v = v.substr(0, colon);
  }
  std::string out(v);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view pathOf(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    // absolute-form: scheme://authority/path?query
    const auto scheme = target.find("://");
    if (scheme == std::string_view::npos) return "/";
    const auto slash = target.find('/', scheme + 3);
    if (slash == std::string_view::npos) return "/";
    target.remove_prefix(slash);
  }
  const auto q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::string forwardRequestHead(const RequestReader& r, const ForwardInfo& info) {
  const auto& h = r.get();
  std::string out;
  out.reserve(512);
  out.append(h.method_string().data(), h.method_string().size());
  out += ' ';
  out.append(h.target().data(), h.target().size());
  // An HTTP/1.0 client's request goes on as 1.0, so that the server
  // answers in a framing the client reads (never chunked); kept alive, to
  // keep the server connection for the next request.
  const bool http10 = h.version() < 11;
  out += http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n";
  appendFields(out, r, {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Via"},
               tunnelOf(r) == Tunnel::kUpgrade);
  if (http10) out += "Connection: keep-alive\r\n";
  std::string xff = joined(h, "X-Forwarded-For");
  if (!xff.empty()) xff += ", ";
  xff.append(info.client_ip);
  out += "X-Forwarded-For: " + xff + "\r\n";
  out += "X-Forwarded-Proto: ";
  out.append(info.proto);
  out += "\r\n";
  if (const auto host = h.find(field::host); host != h.end()) {
    out += "X-Forwarded-Host: ";
    out.append(host->value().data(), host->value().size());
    out += "\r\n";
  }
  std::string via = joined(h, "Via");
  if (!via.empty()) via += ", ";
  via.append(info.via);
  out += "Via: " + via + "\r\n\r\n";
  return out;
}

std::string forwardResponseHead(const ResponseReader& r, std::string_view via_self) {
  const auto& h = r.get();
  std::string out;
  out.reserve(512);
  const unsigned status = h.result_int();
  out += fmt::format("HTTP/1.1 {} ", status);
  out.append(h.reason().data(), h.reason().size());
  out += "\r\n";
  appendFields(out, r, {"Via"}, status == 101);
  std::string via = joined(h, "Via");
  if (!via.empty()) via += ", ";
  via.append(via_self);
  out += "Via: " + via + "\r\n\r\n";
  return out;
}

std::string errorResponse(unsigned status, std::string_view text, bool close) {
  const auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n"
      "{}\r\n{}\n",
      status, std::string_view(reason.data(), reason.size()), text.size() + 1,
      close ? "Connection: close\r\n" : "", text);
}

std::string withConnection(std::string_view head, std::string_view value) {
  std::string out;
  out.reserve(head.size() + value.size() + 16);
  // A head ends in an empty line: insert before it.
  const std::size_t body = head.size() >= 2 ? head.size() - 2 : head.size();
  out.append(head.substr(0, body));
  out += "Connection: ";
  out.append(value);
  out += "\r\n";
  out.append(head.substr(body));
  return out;
}

}  // namespace vane::adaptors::http

// JSON answers for the HTTP servers (the management API, the claims
// endpoint): `{"error": "...", "field": "..."}` for refusals.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "management/http_server.hpp"

namespace vane::management {

// Text from peers (paths, container ids, link names, addresses) need not be
// UTF-8: invalid bytes are replaced with U+FFFD instead of throwing.
inline std::string dumpJson(const nlohmann::json& body, int indent = 2) {
  return body.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline Response jsonReply(boost::beast::http::status status, const nlohmann::json& body) {
  Response res{status, 11};
  res.set(boost::beast::http::field::content_type, "application/json");
  res.body() = dumpJson(body);
  res.body().push_back('\n');
  return res;
}

// `field` names the request field at fault, if any.
inline Response jsonError(boost::beast::http::status status, const std::string& message,
                          const std::string& field = {}) {
  nlohmann::json body = {{"error", message}};
  if (!field.empty()) body["field"] = field;
  return jsonReply(status, body);
}

}  // namespace vane::management

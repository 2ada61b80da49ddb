// The SASL PLAIN initial response (RFC 4616): [authzid] NUL authcid NUL passwd.
// Bytes from an unauthenticated peer: parsed strictly, with bounded sizes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vane::amqp {

struct PlainResponse {
  std::string authzid;   // may be empty
  std::string user;      // 1..255 bytes
  std::string password;  // 1..255 bytes
};

// The three fields, or nothing when the response is not a valid PLAIN
// message (not exactly two NULs, an empty or over-long field).
std::optional<PlainResponse> parsePlainResponse(std::string_view response);

}  // namespace vane::amqp

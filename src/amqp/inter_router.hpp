// Encoding of what inter-router links carry besides application messages
// (docs/design/router-protocol.md, "Transport over AMQP"):
//  - the route header that precedes every message on a data link;
//  - control messages (routing protocol JSON) as AMQP messages.
// Decoders take untrusted bytes: they never throw and bound what they accept.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "forwarding/forwarder.hpp"

namespace vane::amqp {

// Link names / target addresses of the two links each side of an
// inter-router or edge connection opens.
inline constexpr const char* kControlAddress = "_vane/control";
inline constexpr const char* kDataAddress = "_vane/data";
// Links that carry one stream (a TCP connection's direction) at a time, each
// on its own session so that one stalled stream never holds up another.
inline constexpr const char* kStreamAddress = "_vane/stream";
// Descriptor of the route header.
inline constexpr const char* kRouteHeaderDescriptor = "vane:route:v1";
// The largest route header accepted (a multicast set names routers).
inline constexpr std::size_t kMaxRouteHeader = 1u << 20;
// The largest control message accepted.
inline constexpr std::size_t kMaxControlMessage = 16u << 20;

std::string encodeRouteHeader(const forwarding::RouteHeader& h);

enum class DecodeStatus { kOk, kNeedMore, kMalformed };

// Decodes a route header at the start of `data`. On kOk `*consumed` is its
// encoded size; the message follows it. kNeedMore: the header is not
// complete yet (callers stop waiting at kMaxRouteHeader bytes). On
// kMalformed `*error` says why.
DecodeStatus decodeRouteHeader(const char* data, std::size_t size, forwarding::RouteHeader& out,
                               std::size_t* consumed, std::string* error);

// A control message as an AMQP message: one amqp-value section holding the
// JSON text as a string.
std::string encodeControlMessage(std::string_view json);
// Extracts the JSON text from an encoded control message (amqp-value string,
// or a data section). Returns false with `*error` set otherwise.
bool decodeControlMessage(const char* data, std::size_t size, std::string& json,
                          std::string* error);

}  // namespace vane::amqp

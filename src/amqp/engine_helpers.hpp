// Proton helpers and constants shared by the files of the AMQP connection
// (connection.cpp, dispatch.cpp, router_links.cpp, in_link.cpp,
// out_link.cpp, control_link.cpp). Internal to the amqp module.
#pragma once

#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/connection.hpp"
#include "forwarding/transfer.hpp"

namespace vane::amqp {

using forwarding::Chunk;
using forwarding::Consumer;
using forwarding::dropTransfer;
using forwarding::IngressDelivery;
using forwarding::Outcome;
using forwarding::Transfer;

namespace detail {

constexpr std::size_t kReadChunk = 64 * 1024;
// The most bytes an outgoing delivery holds in Proton before they are framed
// (see OutLink::pump).
constexpr std::size_t kMaxUnframed = 64 * 1024;
// Channels (sessions) of a router connection, and the stream links each side
// may open on it (each on its own session), leaving room for the control
// and data sessions of both sides.
constexpr std::uint16_t kRouterChannelMax = 32767;
// Links a client may leave refused (or attached on a refused session)
// without answering before its connection is closed.
constexpr std::size_t kMaxPendingRefusals = 256;

std::int64_t nowMs();

std::string str(const char* s);

std::string terminusAddress(pn_terminus_t* t);

// The router's own namespace ("_vane/...") carries TCP flows, router links
// and reply addresses. A client may send to a dynamic reply address
// ("_vane/temp/<router>/<token>": request/response) and nothing else in it;
// it receives from one only through the dynamic receiver that created it.
bool reserved(std::string_view address);

bool clientMaySendTo(std::string_view address);

// Copies an Outcome onto a delivery's local disposition and settles it.
// Sets the delivery's local state to the outcome (and counts it) without
// settling it.
void updateWith(pn_delivery_t* d, const Outcome& o, Stats& stats);

void settleWith(pn_delivery_t* d, const Outcome& o, Stats& stats);

// Reads the consumer's outcome from a delivery's remote disposition.
bool remoteOutcome(pn_delivery_t* d, Outcome& out);

// Encodes an AMQP close frame carrying an error, for the one case where
// Proton cannot send it itself (see Connection::scheduleIo). Uses Proton's
// codec for the performative; the 8-byte frame header is AMQP's fixed layout.
std::string encodeCloseFrame(const char* condition, const char* description);

// The open property that carries a router's instance (see remoteInstance).
constexpr const char* kInstanceProperty = "vane-instance";

// The peer router's instance from its open's properties, 0 if absent.
std::uint64_t remoteInstance(pn_connection_t* c);

}  // namespace detail
}  // namespace vane::amqp

// The TCP adaptor: tcp_listeners and tcp_connectors (docs/design/tcp-adaptor.md).
#pragma once

#include "adaptors/adaptor.hpp"

namespace vane::adaptors::tcp {

const Adaptor& adaptor();

}  // namespace vane::adaptors::tcp

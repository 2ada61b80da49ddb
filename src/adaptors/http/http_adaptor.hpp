// The HTTP/1.1 adaptor: http_listeners and http_connectors
// (docs/design/http-adaptor.md).
#pragma once

#include "adaptors/adaptor.hpp"

namespace vane::adaptors::http {

const Adaptor& adaptor();

}  // namespace vane::adaptors::http

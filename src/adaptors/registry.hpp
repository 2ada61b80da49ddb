// The adaptors this router has, in a fixed order (registry.cpp: one line
// per adaptor).
#pragma once

#include <string_view>
#include <vector>

#include "adaptors/adaptor.hpp"

namespace vane::adaptors {

const std::vector<const Adaptor*>& all();
// Every entity kind of every adaptor, in registry order.
const std::vector<const EntityKind*>& kinds();
// The kind whose management API path is `path` ("tcp-listeners"), or null.
const EntityKind* kindByPath(std::string_view path);
// The adaptor whose service addresses `address` starts with, or null.
const Adaptor* adaptorOf(std::string_view address);

}  // namespace vane::adaptors

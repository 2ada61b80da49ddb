// The configuration sections of every adaptor (tcp_listeners,
// http_connectors, ...), in a light library of their own (vane_adaptor_config:
// the entries, their parsers and writers; none of the adaptors' I/O) so that
// the `vane` CLI builds and checks entries with the same schema as vaned.
#pragma once

namespace vane::adaptors {

// Adds every adaptor's sections to the configuration schema
// (config::addSection; sections.cpp: one line per adaptor). Call it before
// the first parse, on one thread; calling it again does nothing.
void addConfigSections();

}  // namespace vane::adaptors

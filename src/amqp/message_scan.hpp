// Finds the `to` field of an AMQP 1.0 message from the first bytes of its
// encoding, without decoding or copying the whole message. Used to route
// messages from anonymous senders while the rest of a large message is still
// arriving. Input is untrusted: every byte sequence yields a status, never a
// crash or an unbounded allocation.
#pragma once

#include <cstddef>
#include <string>

namespace vane::amqp {

enum class ScanStatus {
  kNeedMore,   // the bytes so far end before the properties section is complete
  kFound,      // properties.to present; `to` holds it
  kAbsent,     // the message has no properties section, or properties.to is null
  kMalformed,  // the bytes are not a valid sequence of message sections
};

struct ScanResult {
  ScanStatus status = ScanStatus::kNeedMore;
  std::string to;
  // Also read from the properties section when present (kFound, or kAbsent
  // with a properties section): reply-to, and the offset just past the
  // section (0 when there is none).
  std::string reply_to;
  std::string subject;  // if a string or symbol
  std::size_t properties_end = 0;
};

// `data`/`size` are the message bytes received so far (the start of the
// delivery payload). Sections before properties (header, delivery-annotations,
// message-annotations) are skipped. A `to` longer than kMaxAddressLength is
// reported as kMalformed.
ScanResult scanTo(const char* data, std::size_t size);

inline constexpr std::size_t kMaxAddressLength = 4096;

}  // namespace vane::amqp

// The encoding of a stream (one direction of an adaptor's flow, e.g. of a
// TCP connection) as one AMQP message that lasts as long as the stream:
//
//   properties section (to, reply-to)   written once, at the start
//   data section, data section, ...     one per chunk read from the socket
//
// Each chunk read from a socket is stored behind a reserved 8-byte data
// section header (0x00 0x53 0x75 0xb0 <length:4>), so forwarding it adds no
// copy. The receiving end finds the payload ranges with BodyDecoder, which
// accepts bytes split anywhere. Input is untrusted (any AMQP client could
// send to a service address): every byte sequence yields ranges or
// kMalformed, never a crash or an allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vane::adaptors {

// Size of the data section header written ahead of each chunk.
inline constexpr std::size_t kDataHeaderSize = 8;

// Writes the header of a data section of `length` payload bytes at p[0..8).
void writeDataHeader(char* p, std::uint32_t length);

// The properties section that starts a stream message: `subject` is the id
// of the router the stream starts at.
std::string encodeStreamPrefix(std::string_view to, std::string_view reply_to,
                               std::string_view subject);

// Splits the body of a stream message (data sections only, after the
// properties section) into payload ranges.
class BodyDecoder {
 public:
  enum class Status { kOk, kMalformed };

  // Calls out(const char* p, std::size_t n) for every payload range in
  // [data, data + size), in order. After kMalformed, every later call
  // returns kMalformed.
  template <typename Out>
  Status feed(const char* data, std::size_t size, Out&& out) {
    std::size_t pos = 0;
    while (pos < size) {
      if (malformed_) return Status::kMalformed;
      if (remaining_ > 0) {
        const std::size_t n = remaining_ < size - pos ? remaining_ : size - pos;
        out(data + pos, n);
        pos += n;
        remaining_ -= n;
        continue;
      }
      const std::size_t used = header(data + pos, size - pos);
      if (malformed_) return Status::kMalformed;
      pos += used;
    }
    return malformed_ ? Status::kMalformed : Status::kOk;
  }

  // Whether the bytes so far end between sections (a clean end of stream).
  bool atBoundary() const { return !malformed_ && remaining_ == 0 && have_ == 0; }

 private:
  // Consumes header bytes; returns how many of [p, p+n) it used.
  std::size_t header(const char* p, std::size_t n);

  unsigned char hdr_[kDataHeaderSize] = {};
  std::size_t have_ = 0;       // header bytes collected
  std::size_t remaining_ = 0;  // payload bytes left in the current section
  bool malformed_ = false;
};

}  // namespace vane::adaptors

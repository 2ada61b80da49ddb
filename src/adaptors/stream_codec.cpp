#include "adaptors/stream_codec.hpp"

#include <proton/codec.h>

#include <memory>
#include <new>

namespace vane::adaptors {

namespace {
constexpr unsigned char kDescribed = 0x00;
constexpr unsigned char kSmallUlong = 0x53;
constexpr unsigned char kDataCode = 0x75;  // amqp:data:binary
constexpr unsigned char kVbin8 = 0xa0;
constexpr unsigned char kVbin32 = 0xb0;
constexpr std::uint64_t kPropertiesCode = 0x73;
}  // namespace

void writeDataHeader(char* p, std::uint32_t length) {
  p[0] = static_cast<char>(kDescribed);
  p[1] = static_cast<char>(kSmallUlong);
  p[2] = static_cast<char>(kDataCode);
  p[3] = static_cast<char>(kVbin32);
  p[4] = static_cast<char>((length >> 24) & 0xff);
  p[5] = static_cast<char>((length >> 16) & 0xff);
  p[6] = static_cast<char>((length >> 8) & 0xff);
  p[7] = static_cast<char>(length & 0xff);
}

std::string encodeStreamPrefix(std::string_view to, std::string_view reply_to,
                               std::string_view subject) {
  std::unique_ptr<pn_data_t, void (*)(pn_data_t*)> d(pn_data(16), pn_data_free);
  if (!d) throw std::bad_alloc();
  pn_data_t* data = d.get();
  pn_data_put_described(data);
  pn_data_enter(data);
  pn_data_put_ulong(data, kPropertiesCode);
  pn_data_put_list(data);
  pn_data_enter(data);
  pn_data_put_null(data);  // message-id
  pn_data_put_null(data);  // user-id
  pn_data_put_string(data, pn_bytes(to.size(), to.data()));
  pn_data_put_string(data, pn_bytes(subject.size(), subject.data()));
  if (reply_to.empty()) {
    pn_data_put_null(data);
  } else {
    pn_data_put_string(data, pn_bytes(reply_to.size(), reply_to.data()));
  }
  pn_data_exit(data);
  pn_data_exit(data);
  std::string out(static_cast<std::size_t>(pn_data_encoded_size(data)), '\0');
  const ssize_t n = pn_data_encode(data, out.data(), out.size());
  if (n < 0) throw std::bad_alloc();
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::size_t BodyDecoder::header(const char* p, std::size_t n) {
  std::size_t used = 0;
  while (used < n) {
    hdr_[have_++] = static_cast<unsigned char>(p[used++]);
    // Checked byte by byte so that garbage is refused at its first byte.
    if (have_ <= 3) {
      static constexpr unsigned char kExpect[] = {kDescribed, kSmallUlong, kDataCode};
      if (hdr_[have_ - 1] != kExpect[have_ - 1]) {
        malformed_ = true;
        return used;
      }
      continue;
    }
    if (have_ == 4) {
      if (hdr_[3] != kVbin8 && hdr_[3] != kVbin32) {
        malformed_ = true;
        return used;
      }
      continue;
    }
    if (hdr_[3] == kVbin8 && have_ == 5) {
      remaining_ = hdr_[4];
      have_ = 0;
      return used;
    }
    if (hdr_[3] == kVbin32 && have_ == kDataHeaderSize) {
      remaining_ = std::size_t{hdr_[4]} << 24 | std::size_t{hdr_[5]} << 16 |
                   std::size_t{hdr_[6]} << 8 | std::size_t{hdr_[7]};
      have_ = 0;
      return used;
    }
  }
  return used;
}

}  // namespace vane::adaptors

// Finds properties.to in the first bytes of an AMQP 1.0 message.
//
// A message is a sequence of described sections (AMQP 1.0 part 3, §3.2):
//
//   0x00 <descriptor> <value>
//
// where the descriptor is a ulong (0x53 smallulong or 0x80 ulong; codes
// 0x70..0x78) or a symbol ("amqp:properties:list" ...). The sections that may
// precede properties (header, delivery-annotations, message-annotations) are
// skipped by reading the size from their list/map constructor, without
// decoding their contents. The properties section, once all of its bytes are
// present, is checked element by element (bounds and type codes only) and then
// decoded with Proton's codec (pn_data_decode) to read `to`.
//
// Every decision depends only on bytes that are present, so a result other
// than kNeedMore never changes when more bytes of the same message arrive.
// Everything scanTo needs lies within the first kScanLimit bytes: an input at
// least that long always gets a final status, so a caller never has to buffer
// more than kScanLimit bytes to route a message.
//
// Behaviour of pn_data_decode (Proton-C 0.37), established by experiment:
//  - input that ends inside the value (including empty input) -> PN_UNDERFLOW
//    (never PN_EOS);
//  - an unknown type code -> PN_ARG_ERR;
//  - lists and maps are decoded by their element count; the encoded size is
//    only checked against the remaining input, so a size larger than the
//    elements decodes with fewer bytes consumed than the size says, and a count
//    larger than the elements is indistinguishable from truncation;
//  - decoding recurses once per nesting level (about 22000 nested lists
//    overflow a 256 KiB stack) and allocates ~80 bytes per node.
// That is why nothing is handed to Proton before its full extent is known and
// present, and why compound property values are rejected up front: Proton's
// recursion depth stays at two and its node count at kMaxPropertiesFields + 3.
#include "amqp/message_scan.hpp"

#include <proton/codec.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

namespace vane::amqp {
namespace {

// Every byte scanTo reads lies below this offset; a message whose properties
// section does not end within it is reported as kMalformed.
constexpr std::size_t kScanLimit = 64 * 1024;

// The properties list has 13 fields (AMQP 1.0 §3.2.4); a few extra trailing
// elements are tolerated, a long list is not.
constexpr std::uint32_t kMaxPropertiesFields = 64;

// Longest section descriptor symbol ("amqp:delivery-annotations:map").
constexpr std::size_t kMaxDescriptorSymbol = 32;

// Internal outcome of a step: kOk continues the scan.
enum class Step { kOk, kNeedMore, kMalformed };

enum class Section {
  kHeader,
  kDeliveryAnnotations,
  kMessageAnnotations,
  kProperties,
  kApplicationProperties,
  kData,
  kAmqpSequence,
  kAmqpValue,
  kFooter,
};

constexpr std::uint64_t kFirstSectionCode = 0x70;
constexpr std::uint64_t kLastSectionCode = 0x78;

constexpr std::string_view kSectionSymbols[] = {
    "amqp:header:list",
    "amqp:delivery-annotations:map",
    "amqp:message-annotations:map",
    "amqp:properties:list",
    "amqp:application-properties:map",
    "amqp:data:binary",
    "amqp:amqp-sequence:list",
    "amqp:amqp-value:*",
    "amqp:footer:map",
};

// AMQP type codes used here (AMQP 1.0 part 1, §1.6).
enum : std::uint8_t {
  kDescribed = 0x00,
  kNull = 0x40,
  kList0 = 0x45,
  kSmallUlong = 0x53,
  kUlong = 0x80,
  kSym8 = 0xa3,
  kSym32 = 0xb3,
  kList8 = 0xc0,
  kMap8 = 0xc1,
  kList32 = 0xd0,
  kMap32 = 0xd1,
};

class Input {
 public:
  Input(const char* data, std::size_t size)
      : data_(reinterpret_cast<const unsigned char*>(data)), size_(size) {}

  // Whether the n bytes at pos can be read: kNeedMore if they have not all
  // arrived yet, kMalformed if they reach past the scan limit (which no amount
  // of further input changes).
  Step require(std::size_t pos, std::uint64_t n) const {
    if (pos > kScanLimit || n > kScanLimit - pos) return Step::kMalformed;
    if (pos + n > size_) return Step::kNeedMore;
    return Step::kOk;
  }

  std::uint8_t u8(std::size_t pos) const { return data_[pos]; }
  std::uint32_t u32(std::size_t pos) const {
    return std::uint32_t{data_[pos]} << 24 | std::uint32_t{data_[pos + 1]} << 16 |
           std::uint32_t{data_[pos + 2]} << 8 | std::uint32_t{data_[pos + 3]};
  }
  std::string_view bytes(std::size_t pos, std::size_t n) const {
    return {reinterpret_cast<const char*>(data_ + pos), n};
  }
  const char* at(std::size_t pos) const { return reinterpret_cast<const char*>(data_ + pos); }

 private:
  const unsigned char* data_;
  std::size_t size_;
};

#define VANE_SCAN_TRY(expr)                                    \
  do {                                                         \
    if (Step step_ = (expr); step_ != Step::kOk) return step_; \
  } while (false)

// Reads the descriptor of the section whose 0x00 byte is at pos - 1.
Step readDescriptor(const Input& in, std::size_t pos, Section* section, std::size_t* next) {
  VANE_SCAN_TRY(in.require(pos, 1));
  std::uint64_t code = 0;
  switch (in.u8(pos)) {
    case kSmallUlong:
      VANE_SCAN_TRY(in.require(pos, 2));
      code = in.u8(pos + 1);
      *next = pos + 2;
      break;
    case kUlong:
      VANE_SCAN_TRY(in.require(pos, 9));
      code = std::uint64_t{in.u32(pos + 1)} << 32 | in.u32(pos + 5);
      *next = pos + 9;
      break;
    case kSym8:
    case kSym32: {
      const bool small = in.u8(pos) == kSym8;
      const std::size_t header = small ? 2 : 5;
      VANE_SCAN_TRY(in.require(pos, header));
      const std::uint32_t length = small ? in.u8(pos + 1) : in.u32(pos + 1);
      if (length > kMaxDescriptorSymbol) return Step::kMalformed;
      VANE_SCAN_TRY(in.require(pos + header, length));
      const std::string_view name = in.bytes(pos + header, length);
      *next = pos + header + length;
      for (std::size_t i = 0; i < std::size(kSectionSymbols); ++i) {
        if (name == kSectionSymbols[i]) {
          *section = static_cast<Section>(i);
          return Step::kOk;
        }
      }
      return Step::kMalformed;
    }
    default:
      return Step::kMalformed;  // descriptors are ulongs or symbols
  }
  if (code < kFirstSectionCode || code > kLastSectionCode) return Step::kMalformed;
  *section = static_cast<Section>(code - kFirstSectionCode);
  return Step::kOk;
}

// Extent of a list or map whose constructor is at pos.
struct Compound {
  std::uint8_t code = 0;
  std::uint32_t count = 0;
  std::size_t elements = 0;  // offset of the first element
  std::size_t end = 0;       // offset just past the value
};

Step readCompound(const Input& in, std::size_t pos, bool map, Compound* out) {
  VANE_SCAN_TRY(in.require(pos, 1));
  const std::uint8_t code = in.u8(pos);
  out->code = code;
  std::uint64_t size = 0;
  std::size_t width = 0;  // of the size and count fields
  if (!map && code == kList0) {
    out->count = 0;
    out->elements = out->end = pos + 1;
    return Step::kOk;
  } else if (code == (map ? kMap8 : kList8)) {
    width = 1;
    VANE_SCAN_TRY(in.require(pos, 3));
    size = in.u8(pos + 1);
    out->count = in.u8(pos + 2);
  } else if (code == (map ? kMap32 : kList32)) {
    width = 4;
    VANE_SCAN_TRY(in.require(pos, 9));
    size = in.u32(pos + 1);
    out->count = in.u32(pos + 5);
  } else {
    return Step::kMalformed;
  }
  // The size covers the count field and the elements; every element takes at
  // least one byte; map entries come in pairs.
  if (size < width || out->count > size - width) return Step::kMalformed;
  if (map && out->count % 2 != 0) return Step::kMalformed;
  out->elements = pos + 1 + 2 * width;
  out->end = pos + 1 + width + size;
  if (out->end > kScanLimit) return Step::kMalformed;
  return Step::kOk;
}

#undef VANE_SCAN_TRY

// Offset just past the primitive, non-compound value at pos, which must end at
// or before `end`. Lists, maps, arrays and described values are rejected:
// every properties field has a primitive type, and this keeps Proton's
// recursive decoder shallow.
Step skipPrimitive(const Input& in, std::size_t pos, std::size_t end, std::size_t* next) {
  if (pos >= end) return Step::kMalformed;
  const std::uint8_t code = in.u8(pos);
  std::size_t fixed = 0;
  switch (code) {
    case 0x40:  // null
    case 0x41:  // true
    case 0x42:  // false
    case 0x43:  // uint0
    case 0x44:  // ulong0
    case 0x45:  // list0
      fixed = 0;
      break;
    case 0x50:  // ubyte
    case 0x51:  // byte
    case 0x52:  // smalluint
    case 0x53:  // smallulong
    case 0x54:  // smallint
    case 0x55:  // smalllong
    case 0x56:  // boolean
      fixed = 1;
      break;
    case 0x60:  // ushort
    case 0x61:  // short
      fixed = 2;
      break;
    case 0x70:  // uint
    case 0x71:  // int
    case 0x72:  // float
    case 0x73:  // char
    case 0x74:  // decimal32
      fixed = 4;
      break;
    case 0x80:  // ulong
    case 0x81:  // long
    case 0x82:  // double
    case 0x83:  // timestamp
    case 0x84:  // decimal64
      fixed = 8;
      break;
    case 0x94:  // decimal128
    case 0x98:  // uuid
      fixed = 16;
      break;
    case 0xa0:  // vbin8
    case 0xa1:  // str8-utf8
    case 0xa3:  // sym8
      if (end - pos < 2) return Step::kMalformed;
      fixed = 1 + std::size_t{in.u8(pos + 1)};
      break;
    case 0xb0:  // vbin32
    case 0xb1:  // str32-utf8
    case 0xb3:  // sym32
      if (end - pos < 5) return Step::kMalformed;
      fixed = 4 + std::size_t{in.u32(pos + 1)};
      break;
    default:
      return Step::kMalformed;
  }
  if (fixed > end - pos - 1) return Step::kMalformed;
  *next = pos + 1 + fixed;
  return Step::kOk;
}

// The outcome of a step that did not succeed.
ScanStatus toStatus(Step step) {
  return step == Step::kNeedMore ? ScanStatus::kNeedMore : ScanStatus::kMalformed;
}

// Per-thread decoder, reused across calls. Its node count never exceeds
// kMaxPropertiesFields + 3, so it stays small.
class Scratch {
 public:
  Scratch() : data_(pn_data(kMaxPropertiesFields + 4)) {
    if (data_ == nullptr) throw std::bad_alloc();
  }
  ~Scratch() { pn_data_free(data_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  pn_data_t* get() const { return data_; }

 private:
  pn_data_t* data_;
};

pn_data_t* scratchData() {
  thread_local Scratch scratch;
  return scratch.get();
}

// The properties section starts at `start`; its list constructor is at pos.
// Reads an address-typed field (string or symbol) at the decoder's position
// into *out; null leaves it empty.
ScanStatus readAddressField(pn_data_t* data, std::string* out) {
  pn_bytes_t address;
  switch (pn_data_type(data)) {
    case PN_NULL:
      return ScanStatus::kAbsent;
    case PN_STRING:
      address = pn_data_get_string(data);
      break;
    case PN_SYMBOL:
      address = pn_data_get_symbol(data);
      break;
    default:
      return ScanStatus::kMalformed;  // an address is a string
  }
  // An embedded NUL would make the address differ between std::string and the
  // C strings Proton's API uses; reject it rather than route on either.
  if (address.size > kMaxAddressLength) return ScanStatus::kMalformed;
  if (address.size > 0 && std::memchr(address.start, '\0', address.size) != nullptr) {
    return ScanStatus::kMalformed;
  }
  if (address.size > 0) out->assign(address.start, address.size);
  return ScanStatus::kFound;
}

ScanStatus scanProperties(const Input& in, std::size_t start, std::size_t pos, ScanResult* result) {
  Compound list;
  if (Step step = readCompound(in, pos, /*map=*/false, &list); step != Step::kOk) {
    return toStatus(step);
  }
  if (list.count > kMaxPropertiesFields) return ScanStatus::kMalformed;
  if (Step step = in.require(start, list.end - start); step != Step::kOk) {
    return toStatus(step);
  }
  if (list.count == 0) {
    // No fields at all (list0 or an empty list8/list32); the size must match.
    if (list.elements != list.end) return ScanStatus::kMalformed;
    result->properties_end = list.end;
    return ScanStatus::kAbsent;
  }

  // The whole section is present: check that its elements are primitives that
  // exactly fill the list's encoded size. Proton decodes by count and would
  // otherwise silently stop short of (or read past) the size.
  std::size_t element = list.elements;
  for (std::uint32_t i = 0; i < list.count; ++i) {
    if (skipPrimitive(in, element, list.end, &element) != Step::kOk) return ScanStatus::kMalformed;
  }
  if (element != list.end) return ScanStatus::kMalformed;

  pn_data_t* data = scratchData();
  pn_data_clear(data);
  const std::size_t length = list.end - start;
  if (pn_data_decode(data, in.at(start), length) != static_cast<ssize_t>(length)) {
    return ScanStatus::kMalformed;
  }
  pn_data_rewind(data);
  if (!pn_data_next(data) || pn_data_type(data) != PN_DESCRIBED || !pn_data_enter(data) ||
      !pn_data_next(data) || !pn_data_next(data) || pn_data_type(data) != PN_LIST) {
    return ScanStatus::kMalformed;
  }
  result->properties_end = list.end;
  const std::size_t fields = pn_data_get_list(data);
  if (fields < 3) return ScanStatus::kAbsent;  // message-id, user-id, to
  if (!pn_data_enter(data) || !pn_data_next(data) || !pn_data_next(data) || !pn_data_next(data)) {
    return ScanStatus::kMalformed;
  }
  const ScanStatus to = readAddressField(data, &result->to);
  if (to == ScanStatus::kMalformed) return to;
  if (fields >= 4) {  // subject
    if (!pn_data_next(data)) return ScanStatus::kMalformed;
    if (pn_data_type(data) == PN_STRING || pn_data_type(data) == PN_SYMBOL) {
      const pn_bytes_t b =
          pn_data_type(data) == PN_STRING ? pn_data_get_string(data) : pn_data_get_symbol(data);
      if (b.size <= kMaxAddressLength) result->subject.assign(b.start, b.size);
    }
  }
  if (fields >= 5) {  // reply-to
    if (!pn_data_next(data)) return ScanStatus::kMalformed;
    if (readAddressField(data, &result->reply_to) == ScanStatus::kMalformed) {
      return ScanStatus::kMalformed;
    }
  }
  return to;
}

}  // namespace

ScanResult scanTo(const char* data, std::size_t size) {
  const Input in(data, size);
  ScanResult result;
  std::size_t pos = 0;
  while (true) {
    const std::size_t start = pos;
    if (Step step = in.require(pos, 1); step != Step::kOk) {
      result.status = toStatus(step);
      return result;
    }
    if (in.u8(pos) != kDescribed) {
      result.status = ScanStatus::kMalformed;
      return result;
    }
    Section section;
    if (Step step = readDescriptor(in, pos + 1, &section, &pos); step != Step::kOk) {
      result.status = toStatus(step);
      return result;
    }
    switch (section) {
      case Section::kHeader:
      case Section::kDeliveryAnnotations:
      case Section::kMessageAnnotations: {
        Compound value;
        const bool map = section != Section::kHeader;
        if (Step step = readCompound(in, pos, map, &value); step != Step::kOk) {
          result.status = toStatus(step);
          return result;
        }
        pos = value.end;  // skipped without looking inside
        break;
      }
      case Section::kProperties:
        result.status = scanProperties(in, start, pos, &result);
        return result;
      case Section::kApplicationProperties:
      case Section::kData:
      case Section::kAmqpSequence:
      case Section::kAmqpValue:
      case Section::kFooter:
        // Properties precede all of these, so there is none.
        result.status = ScanStatus::kAbsent;
        return result;
    }
  }
}

}  // namespace vane::amqp

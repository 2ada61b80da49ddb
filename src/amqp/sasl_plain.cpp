#include "amqp/sasl_plain.hpp"

namespace vane::amqp {

std::optional<PlainResponse> parsePlainResponse(std::string_view r) {
  constexpr std::size_t kMaxField = 255;
  const auto a = r.find('\0');
  if (a == std::string_view::npos) return std::nullopt;
  const auto b = r.find('\0', a + 1);
  if (b == std::string_view::npos || r.find('\0', b + 1) != std::string_view::npos)
    return std::nullopt;
  PlainResponse p{std::string(r.substr(0, a)), std::string(r.substr(a + 1, b - a - 1)),
                  std::string(r.substr(b + 1))};
  if (p.user.empty() || p.password.empty() || p.authzid.size() > kMaxField ||
      p.user.size() > kMaxField || p.password.size() > kMaxField) {
    return std::nullopt;
  }
  return p;
}

}  // namespace vane::amqp

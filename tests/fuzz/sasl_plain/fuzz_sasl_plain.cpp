// Fuzz target for the SASL PLAIN initial response parser (bytes a client
// sends before it is authenticated). Besides "no crash, no sanitizer
// report": an accepted response re-encodes to exactly the input, and its
// fields respect the limits.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "amqp/sasl_plain.hpp"

namespace {
[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto p = vane::amqp::parsePlainResponse(in);
  if (!p) return 0;
  std::string again = p->authzid;
  again += '\0';
  again += p->user;
  again += '\0';
  again += p->password;
  if (again != in) fail("fields do not re-encode to the input");
  if (p->user.empty() || p->password.empty()) fail("empty user or password accepted");
  if (p->user.size() > 255 || p->password.size() > 255 || p->authzid.size() > 255)
    fail("over-long field accepted");
  return 0;
}

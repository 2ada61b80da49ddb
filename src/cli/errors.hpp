// How the site commands fail: one sentence that says what went wrong and
// what to do, printed by main() as "vane: SENTENCE" with exit status 1.
// (The read commands return Failure values instead; both end the same way.)
#pragma once

#include <stdexcept>
#include <string>

namespace vane::cli {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace vane::cli

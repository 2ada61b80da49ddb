// Invariant checks. VANE_ASSERT guards states that cannot happen unless the
// code is wrong; it aborts with a message. Untrusted input is never asserted
// on: it is handled and counted.
#pragma once

#include <cstdio>
#include <cstdlib>

#define VANE_ASSERT(cond, msg)                                                                    \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "%s:%d: assertion failed: %s (%s)\n", __FILE__, __LINE__, #cond, msg); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

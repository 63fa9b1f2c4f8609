// What a fuzz target does when a property fails: print both sides and abort, so that libFuzzer
// saves the input as a crash artifact.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#define XAPID_FUZZ_CHECK(cond, what, a, b)                                            \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "round trip failed: %s\n--- first:\n%s\n--- second:\n%s\n", \
                   what, std::string(a).c_str(), std::string(b).c_str());             \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

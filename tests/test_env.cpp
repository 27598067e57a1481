// Linked into every test executable: gives the tests where the source tree, the
// shared data and the `tender` binary are, unless the environment already says.
// (ctest's per-test ENVIRONMENT cannot carry several variables through
// gtest_discover_tests on CMake 3.25, hence a static initializer.)

#include <cstdlib>

namespace {

struct env_defaults {
  env_defaults() {
    setenv("TENDER_SOURCE_DIR", TENDER_SOURCE_DIR_DEFAULT, 0);
    setenv("TENDER_SHARED_DIR", TENDER_SHARED_DIR_DEFAULT, 0);
    setenv("TENDER_BIN", TENDER_BIN_DEFAULT, 0);
  }
};

const env_defaults defaults;

} // namespace

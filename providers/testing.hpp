#pragma once
/// Helpers shared by the providers' unit tests.

#include "protocol/negotiation.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

namespace tender::testing {

constexpr bytes_t gib = bytes_t{1} << 30;
/// A fixed instant for tests on virtual time.
constexpr usec t0 = 1'700'000'000 * sec_us;

/// The wall clock, for tests that run real processes.
inline usec wall_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// A call for offers for `job` wanting `want` for `runtime`.
inline resource_request request(const std::string& job, resources want, usec runtime,
                                std::int32_t round = 1, micros price_to_beat = 0) {
  resource_request r;
  r.job_id = job;
  r.auction_id = "auc-" + job;
  r.round = round;
  r.request = std::move(want);
  r.profile.job_id = job;
  r.profile.runtime = runtime;
  r.price_to_beat = price_to_beat;
  return r;
}

/// A fresh, empty directory for the current test: /tmp/<prefix>-<pid>-<test name>.
inline std::filesystem::path scratch_root(const std::string& prefix) {
  auto root = std::filesystem::temp_directory_path() /
              (prefix + "-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(root);
  return root;
}

} // namespace tender::testing

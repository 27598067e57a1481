#include "providers/profile_cache.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace tender {
namespace {

namespace fs = std::filesystem;

TEST(sha256, fips_180_vectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

class profile_cache_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tender-cache-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/train.py") << "import torch\n";
    std::ofstream(dir_ + "/data.csv") << "1,2,3\n";
    spec_.command = {"python3", "train.py"};
    spec_.profile_command = {"python3", "train.py", "--steps", "10"};
    spec_.workdir = dir_;
    spec_.inputs = {"data.csv"};
    report_.files = {dir_ + "/train.py"};
  }
  void TearDown() override { fs::remove_all(dir_); }

  profile_run measured() const {
    profile_run r;
    for (int i = 1; i <= 5; ++i)
      r.samples.push_back(usage_sample{i * 50'000, 1000 * i, 1 << 20, 10, 20, 30, 2});
    exit_info e;
    e.exit_code = 0;
    e.reason = "exited 0";
    e.io_write = 99;
    r.exit = e;
    r.sandbox = "netns+bwrap";
    r.started = 7;
    r.budget = 10 * sec_us;
    r.took = 250'000;
    return r;
  }

  std::string dir_;
  job_spec spec_;
  static_report report_;
};

TEST_F(profile_cache_test, key_follows_commands_files_and_inputs) {
  const auto k0 = profile_cache::key(spec_, report_);
  EXPECT_EQ(k0.size(), 64u);
  EXPECT_EQ(profile_cache::key(spec_, report_), k0) << "deterministic";

  std::ofstream(dir_ + "/train.py") << "import torch\nprint(1)\n";
  const auto k1 = profile_cache::key(spec_, report_);
  EXPECT_NE(k1, k0) << "the script changed";

  std::ofstream(dir_ + "/data.csv") << "4,5,6\n";
  const auto k2 = profile_cache::key(spec_, report_);
  EXPECT_NE(k2, k1) << "an input changed";

  auto other = spec_;
  other.profile_command.back() = "20";
  EXPECT_NE(profile_cache::key(other, report_), k2) << "the command changed";
  other = spec_;
  other.env["OMP_NUM_THREADS"] = "4";
  EXPECT_NE(profile_cache::key(other, report_), k2) << "the environment changed";
  other = spec_;
  other.name = "renamed";
  other.deadline = 12345;
  EXPECT_EQ(profile_cache::key(other, report_), k2) << "name and deadline do not matter";
}

TEST_F(profile_cache_test, a_stored_run_comes_back_whole) {
  profile_cache c(dir_ + "/cache");
  const auto key = profile_cache::key(spec_, report_);
  EXPECT_FALSE(c.get(key));
  const auto run = measured();
  std::string why;
  ASSERT_TRUE(c.put(key, run, &why)) << why;
  auto back = c.get(key);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->samples, run.samples);
  ASSERT_TRUE(back->exit);
  EXPECT_EQ(back->exit->exit_code, 0);
  EXPECT_EQ(back->exit->reason, "exited 0");
  EXPECT_EQ(back->exit->io_write, 99);
  EXPECT_EQ(back->sandbox, run.sandbox);
  EXPECT_EQ(back->started, run.started);
  EXPECT_EQ(back->budget, run.budget);
  EXPECT_EQ(back->took, run.took);
  EXPECT_FALSE(back->cut);
}

TEST_F(profile_cache_test, failed_runs_are_not_cached_and_broken_entries_are_misses) {
  profile_cache c(dir_ + "/cache");
  auto run = measured();
  run.exit->exit_code = 1;
  run.exit->reason = "exited 1";
  std::string why;
  EXPECT_FALSE(c.put("k", run, &why));
  EXPECT_NE(why.find("exited 1"), std::string::npos);
  run.cut = true; // cut at the budget: measured, cacheable
  EXPECT_TRUE(c.put("k", run, &why)) << why;
  profile_run nothing;
  nothing.error = "command not found: x";
  EXPECT_FALSE(c.put("k2", nothing));

  std::ofstream(dir_ + "/cache/bad.msgpack") << "\xc1 not msgpack";
  EXPECT_FALSE(c.get("bad"));
}

} // namespace
} // namespace tender

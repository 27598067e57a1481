#include "models/swf.hpp"
#include "models/test_data.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace tender;

namespace {

swf_trace parse_ok(const std::string& text, swf_options o = {}) {
  swf_trace t;
  std::string err;
  EXPECT_TRUE(parse_swf(text, "t.swf", o, t, err)) << err;
  return t;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("tender-swf-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

} // namespace

TEST(swf, reads_header_fields_and_unknown_values) {
  auto t = parse_ok("; Version: 2.2\n; MaxProcs: 128\n;UnixStartTime: 1000\n; TimeZone: -3600\n"
                    "; Note: a note: with colons\n"
                    "7 100 -1 50 4 -1 -1 4 60 -1 1 3 -1 -1 -1 -1 -1 -1\n");
  EXPECT_EQ(t.max_procs, 128);
  EXPECT_EQ(t.unix_start_time, 1000);
  EXPECT_EQ(t.time_zone, -3600);
  EXPECT_EQ(t.header.at("Version"), "2.2");
  EXPECT_EQ(t.header.at("Note"), "a note: with colons");
  ASSERT_EQ(t.jobs.size(), 1u);
  const auto& j = t.jobs[0];
  EXPECT_EQ(j.id, 7);
  EXPECT_EQ(j.submit, 100);
  EXPECT_EQ(j.wait, -1);
  EXPECT_EQ(j.run, 50);
  EXPECT_EQ(j.procs_req, 4);
  EXPECT_EQ(j.time_req, 60);
  EXPECT_EQ(j.user, 3);
  EXPECT_EQ(j.group, -1);
  EXPECT_EQ(j.line, 6u);
  EXPECT_EQ(t.columns, 18);
}

TEST(swf, sorts_by_submit_time_keeping_file_order_for_ties) {
  auto t = parse_ok("1 300 0 1 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n"
                    "2 100 0 1 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n"
                    "3 300 0 1 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n"
                    "4 200 0 1 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n");
  std::vector<std::int64_t> ids;
  for (auto& j : t.jobs)
    ids.push_back(j.id);
  EXPECT_EQ(ids, (std::vector<std::int64_t>{2, 4, 1, 3}));
}

TEST(swf, refuses_a_malformed_line_naming_file_and_line) {
  std::string text = "; MaxProcs: 8\n1 0 0 1 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n"
                     "2 5 0 x 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n"
                     "3 9 0 1 1\n"
                     "4 9 0 1 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n";
  swf_trace t;
  std::string err;
  EXPECT_FALSE(parse_swf(text, "bad.swf", {}, t, err));
  EXPECT_EQ(err, "bad.swf:3: field 4 is not a number: 'x'");

  swf_options skip;
  skip.on_malformed = swf_malformed::skip;
  swf_trace s;
  ASSERT_TRUE(parse_swf(text, "bad.swf", skip, s, err));
  ASSERT_EQ(s.jobs.size(), 2u);
  EXPECT_EQ(s.jobs[1].id, 4);
  ASSERT_EQ(s.skipped.size(), 2u);
  EXPECT_EQ(s.skipped[1],
            "bad.swf:4: expected 18 fields (or 21 in Alea's variant), found 5");
}

TEST(swf, refuses_a_mix_of_18_and_21_columns) {
  swf_trace t;
  std::string err;
  EXPECT_FALSE(parse_swf("1 0 0 1 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1\n"
                         "2 0 0 1 1 -1 -1 1 10 -1 1 1 -1 -1 -1 -1 -1 -1 {1} q x\n",
                         "m.swf", {}, t, err));
  EXPECT_EQ(err, "m.swf:2: has 21 fields where earlier lines have 18");
}

TEST(swf, missing_and_truncated_files_are_errors_naming_the_file) {
  swf_trace t;
  std::string err;
  EXPECT_FALSE(read_swf("/nonexistent/x.swf.gz", {}, t, err));
  EXPECT_EQ(err.rfind("/nonexistent/x.swf.gz: cannot open", 0), 0u) << err;

  auto src = test_data::trace_path("KTH-SP2-filtered.swf.gz");
  if (src.empty())
    GTEST_SKIP() << "shared traces not found";
  std::ifstream in(src, std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), {});
  auto p = temp_path("trunc.swf.gz");
  std::ofstream(p, std::ios::binary) << gz.substr(0, gz.size() / 2);
  EXPECT_FALSE(read_swf(p, {}, t, err));
  EXPECT_EQ(err.rfind(p + ": cannot read", 0), 0u) << err;
  std::filesystem::remove(p);
}

TEST(swf, real_kth_head_gzip_and_plain_agree) {
  auto src = test_data::trace_path("KTH-SP2-filtered.swf.gz");
  if (src.empty())
    GTEST_SKIP() << "shared traces not found";
  swf_options o;
  o.max_jobs = 500;
  swf_trace gz;
  std::string err;
  ASSERT_TRUE(read_swf(src, o, gz, err)) << err;
  EXPECT_EQ(gz.max_procs, 100);
  ASSERT_EQ(gz.jobs.size(), 500u);
  // First record of the file: "1 0 0 97225 56 -1 -1 56 210000 -1 -1 1 -1 ...".
  EXPECT_EQ(gz.jobs[0].id, 1);
  EXPECT_EQ(gz.jobs[0].run, 97225);
  EXPECT_EQ(gz.jobs[0].procs, 56);
  EXPECT_EQ(gz.jobs[0].time_req, 210000);
  EXPECT_EQ(gz.jobs[0].user, 1);
  for (std::size_t i = 1; i < gz.jobs.size(); ++i)
    ASSERT_LE(gz.jobs[i - 1].submit, gz.jobs[i].submit);

  std::string text;
  ASSERT_TRUE(read_maybe_gzip(src, text, err));
  auto p = temp_path("plain.swf");
  std::ofstream(p, std::ios::binary) << text;
  swf_trace plain;
  ASSERT_TRUE(read_swf(p, o, plain, err)) << err;
  std::filesystem::remove(p);
  ASSERT_EQ(plain.jobs.size(), gz.jobs.size());
  for (std::size_t i = 0; i < gz.jobs.size(); ++i)
    ASSERT_EQ(plain.jobs[i].id, gz.jobs[i].id);
}

TEST(swf, real_alea_21_column_head) {
  swf_trace t;
  if (!test_data::trace_head("MetaCentrum-wagap-2013.alea21.swf.gz", 200, t))
    GTEST_SKIP() << "shared traces not found";
  EXPECT_EQ(t.columns, 21);
  ASSERT_EQ(t.jobs.size(), 200u);
  // "0 1356996147 0 56011 64 1 1024 64 86400 68719476736 1 62 ... q_1d ..."
  EXPECT_EQ(t.jobs[0].submit, 1356996147);
  EXPECT_EQ(t.jobs[0].run, 56011);
  EXPECT_EQ(t.jobs[0].mem_req, 68719476736);
  EXPECT_EQ(t.jobs[0].user, 62);
  EXPECT_EQ(t.jobs[0].queue_name, "q_1d");
  EXPECT_TRUE(t.skipped.empty());
}

TEST(swf, real_llnl_head_has_unknowns_and_header) {
  swf_trace t;
  if (!test_data::trace_head("LLNL-Atlas-2006-2.1-cln.swf.gz", 1000, t))
    GTEST_SKIP() << "shared traces not found";
  EXPECT_EQ(t.max_procs, 9216);
  EXPECT_EQ(t.unix_start_time, 1163199901);
  EXPECT_EQ(t.header.at("MaxPartitions"), "4");
  ASSERT_EQ(t.jobs.size(), 1000u);
  EXPECT_EQ(t.jobs[0].id, 1435);
  EXPECT_EQ(t.jobs[0].procs, -1);
  EXPECT_EQ(t.jobs[0].exe, 184);
}

#include "models/evaluate.hpp"
#include "models/test_data.hpp"
#include "models/xgb_predictor.hpp"

#include <gtest/gtest.h>

using namespace tender;

namespace {

job_spec spec(const std::string& user, usec walltime, millicores cpu) {
  job_spec s;
  s.user = user;
  s.command = {"sim", "--fast"};
  s.walltime = walltime;
  s.hints.cpu = cpu;
  return s;
}

} // namespace

TEST(xgb_predictor, maps_a_live_job_onto_the_trace_features) {
  auto r = xgb_predictor::to_record(spec("ana", 20 * 60 * sec_us, 1500), 86400 * sec_us);
  EXPECT_EQ(r.req_time, 1200);
  EXPECT_EQ(r.procs, 2);
  EXPECT_EQ(r.submit, 86400);
  EXPECT_EQ(r.user, name_id("ana") % 1000003);
  EXPECT_EQ(r.exe, name_id("sim") % 1000003);
  EXPECT_EQ(r.runtime, -1);
}

TEST(xgb_predictor, falls_back_to_the_baseline_without_a_usable_model) {
  xgb_predictor p("/nonexistent/model.json");
  EXPECT_FALSE(p.model_usable());
  EXPECT_EQ(p.load_error(), "/nonexistent/model.json: cannot open the model file");
  EXPECT_EQ(p.version(), "baseline:last2");
  auto s = spec("ana", 600 * sec_us, 1000);
  auto got = p.predict(s, {}, 0);
  EXPECT_EQ(got.model_version, "baseline:walltime");
  EXPECT_EQ(got.runtime, 300 * sec_us);
  for (usec run : {100 * sec_us, 200 * sec_us})
    p.observe(finished_job{s, 0, run, 0, 0});
  EXPECT_EQ(p.predict(s, {}, 0).model_version, "baseline:last2");
  EXPECT_EQ(p.predict(s, {}, 0).runtime, 150 * sec_us);
}

TEST(xgb_predictor, predicts_with_an_interval_from_a_trained_model) {
  swf_trace t;
  if (!test_data::trace_head("CTC-SP2-filtered.swf.gz", 3000, t))
    GTEST_SKIP() << "shared traces not found";
  std::vector<feature_vector> x;
  std::vector<double> y;
  training_rows(to_records(t), x, y);
  model_config c;
  c.rounds = 30;
  runtime_model m;
  std::string err;
  ASSERT_TRUE(runtime_model::train(x, y, c, m, err)) << err;
  auto version = m.version();
  xgb_predictor p(std::move(m));
  ASSERT_TRUE(p.model_usable());
  EXPECT_EQ(p.version(), version);
  auto s = spec("bo", 3600 * sec_us, 8000);
  for (int i = 0; i < 5; ++i)
    p.observe(finished_job{s, i * 4000 * sec_us, 1800 * sec_us, 0, 0});
  auto got = p.predict(s, {}, 30000 * sec_us);
  EXPECT_EQ(got.model_version, version);
  EXPECT_LE(got.runtime_lo, got.runtime);
  EXPECT_LE(got.runtime, got.runtime_hi);
  EXPECT_LE(got.runtime_hi, s.walltime);
  EXPECT_GT(got.runtime_hi, got.runtime_lo);
  EXPECT_NE(got.basis.find("normalized conformal"), std::string::npos);
}

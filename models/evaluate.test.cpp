#include "models/evaluate.hpp"
#include "models/test_data.hpp"

#include <gtest/gtest.h>

using namespace tender;

TEST(evaluate, point_metrics) {
  auto m = score_points({10, 20, 30, 40}, {12, 20, 20, 100});
  EXPECT_DOUBLE_EQ(m.mae_s, (2 + 0 + 10 + 60) / 4.0);
  EXPECT_DOUBLE_EQ(m.medae_s, (2 + 10) / 2.0);
  EXPECT_DOUBLE_EQ(m.under_rate, 0.5);
}

TEST(evaluate, user_estimate_falls_back_to_the_history_median) {
  trace_job j;
  j.req_time = 600;
  EXPECT_EQ(user_estimate(j, 50), 600);
  j.req_time = -1;
  EXPECT_EQ(user_estimate(j, 50), 50);
  EXPECT_EQ(user_estimate(j, -1), 0);
}

TEST(evaluate, time_ordered_split_on_a_real_trace) {
  swf_trace t;
  if (!test_data::trace_head("SDSC-SP2-filtered.swf.gz", 6000, t))
    GTEST_SKIP() << "shared traces not found";
  auto jobs = to_records(t);
  eval_options o;
  o.model.rounds = 40;
  eval_report r;
  std::string err;
  ASSERT_TRUE(evaluate(jobs, o, r, err)) << err;
  EXPECT_EQ(r.n_test, jobs.size() - static_cast<std::size_t>(jobs.size() * 0.7));
  // Only jobs that had finished by the split train the model.
  EXPECT_LT(r.n_train, jobs.size() - r.n_test);
  EXPECT_GT(r.n_train, (jobs.size() - r.n_test) * 8 / 10);
  // Users overestimate by large factors: the model must beat their estimates.
  EXPECT_LT(r.tender.mae_s, r.user_estimate.mae_s);
  EXPECT_GT(r.tender_iv.coverage90, 0.75);
  EXPECT_GT(r.tender_iv.coverage90, r.tender_iv.coverage80);
  EXPECT_GT(r.tender_iv.width90_s, r.tender_iv.width80_s);
  auto j = r.to_json();
  for (const char* m : {"tender", "last2", "user_estimate", "median"})
    for (const char* k : {"mae_s", "medae_s", "under_rate"})
      EXPECT_TRUE(j["runtime"][m].contains(k)) << m << "." << k;
  EXPECT_TRUE(j["runtime"]["tender"].contains("coverage90"));
  EXPECT_TRUE(j["runtime"]["tender"].contains("width90_s"));
  EXPECT_EQ(j["n_test"], r.n_test);
}

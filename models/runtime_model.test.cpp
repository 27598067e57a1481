#include "models/runtime_model.hpp"
#include "models/evaluate.hpp"
#include "models/test_data.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace tender;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("tender-model-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void spit(const std::string& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

/// A small model trained on the head of a real trace (shared by the tests below).
struct small_model : ::testing::Test {
  static void SetUpTestSuite() {
    swf_trace t;
    if (!test_data::trace_head("KTH-SP2-filtered.swf.gz", 3000, t))
      return;
    training_rows(to_records(t), x_, y_);
    model_config c;
    c.rounds = 30;
    std::string err;
    ok_ = runtime_model::train(x_, y_, c, model_, err);
    path_ = temp_path("m.json");
    ok_ = ok_ && model_.save(path_, err);
    EXPECT_TRUE(ok_) << err;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove(path_);
    model_ = runtime_model(); // free the boosters before XGBoost's own statics go
  }
  void SetUp() override {
    if (!ok_)
      GTEST_SKIP() << "shared traces not found";
  }
  static inline std::vector<feature_vector> x_;
  static inline std::vector<double> y_;
  static inline runtime_model model_;
  static inline std::string path_;
  static inline bool ok_ = false;
};

} // namespace

TEST(conformal, quantile_is_the_finite_sample_rank) {
  std::vector<double> s = {5, 1, 4, 2, 3, 9, 8, 7, 6, 10};
  // ceil(11 * 0.9) = 10th smallest.
  EXPECT_EQ(conformal_quantile(s, 0.10), 10);
  // ceil(11 * 0.8) = 9th smallest.
  EXPECT_EQ(conformal_quantile(s, 0.20), 9);
  EXPECT_EQ(cqr_score(1, 2, 1.5), -0.5);
  EXPECT_EQ(cqr_score(1, 2, 3), 1);
}

namespace {

raw_prediction raw(double median, double q05, double q10, double q90, double q95) {
  raw_prediction r;
  r.median = std::log1p(median);
  r.q05 = std::log1p(q05);
  r.q10 = std::log1p(q10);
  r.q90 = std::log1p(q90);
  r.q95 = std::log1p(q95);
  return r;
}

} // namespace

TEST(conformal, estimate_is_ordered_and_capped_at_the_request) {
  auto r = raw(100, 10, 20, 500, 1000);
  calibration none;
  auto u = to_estimate(r, none, -1, -1);
  EXPECT_NEAR(u.median, 100, 1e-9);
  EXPECT_NEAR(u.lo90, 10, 1e-9);
  EXPECT_NEAR(u.lo80, 20, 1e-9);
  EXPECT_NEAR(u.hi80, 500, 1e-9);
  EXPECT_NEAR(u.hi90, 1000, 1e-9);
  auto e = to_estimate(r, none, 80, 300); // median at the request, interval at the cap
  EXPECT_EQ(e.median, 80);
  EXPECT_EQ(e.hi90, 300);
  EXPECT_EQ(e.hi80, 300);
  EXPECT_NEAR(e.lo90, 10, 1e-9);
  // A median outside its interval pulls the interval to it.
  auto far = to_estimate(raw(5000, 10, 20, 500, 1000), none, -1, -1);
  EXPECT_NEAR(far.hi90, 5000, 1e-6);
  EXPECT_NEAR(far.hi80, 5000, 1e-6);
}

TEST(conformal, corrections_widen_additively_or_by_the_width) {
  auto r = raw(100, 10, 20, 500, 1000);
  calibration c;
  c.lo90 = 0.5;
  c.hi90 = 1;
  c.lo80 = 0.25;
  c.hi80 = -0.5; // a negative correction narrows
  auto e = to_estimate(r, c, -1, -1);
  EXPECT_NEAR(e.lo90, std::expm1(std::log1p(10.0) - 0.5), 1e-9);
  EXPECT_NEAR(e.hi90, std::expm1(std::log1p(1000.0) + 1), 1e-6);
  EXPECT_NEAR(e.lo80, std::expm1(std::log1p(20.0) - 0.25), 1e-9);
  EXPECT_NEAR(e.hi80, std::expm1(std::log1p(500.0) - 0.5), 1e-9);
  c.scaled = true;
  auto s = to_estimate(r, c, -1, -1);
  const double w90 = std::log1p(1000.0) - std::log1p(10.0);
  EXPECT_NEAR(s.hi90, std::expm1(std::log1p(1000.0) + w90), 1e-3);
  EXPECT_NEAR(s.lo90, std::expm1(std::log1p(10.0) - 0.5 * w90), 1e-9);
  // The 90 % interval holds the 80 % one even when its own correction is smaller.
  calibration nest;
  nest.hi80 = 2;
  auto n = to_estimate(r, nest, -1, -1);
  EXPECT_NEAR(n.hi90, n.hi80, 1e-9);
  EXPECT_NEAR(n.hi80, std::expm1(std::log1p(500.0) + 2), 1e-6);
}

TEST(conformal, modes_by_name) {
  calibration c;
  for (const char* m : {"asymmetric", "symmetric", "asymmetric-scaled", "symmetric-scaled"}) {
    ASSERT_TRUE(c.set_mode(m)) << m;
    EXPECT_EQ(c.mode(), m);
  }
  EXPECT_FALSE(c.set_mode("-scaled"));
  EXPECT_FALSE(c.set_mode("normalized"));
  EXPECT_EQ(c.mode(), "symmetric-scaled");
}

TEST(conformal, calibration_per_side_or_symmetric) {
  // Raw quantiles [0, 1] (log space) for every job; run times 0.5 (inside) and 3
  // (2 above): with 19 of 20 inside, each side's alpha / 2 = 0.05 rank is the largest.
  std::vector<raw_prediction> r(20);
  std::vector<double> y(20, 0.5);
  for (auto& p : r) {
    p.q05 = p.q10 = 0;
    p.q90 = p.q95 = 1;
  }
  y[7] = 3;
  calibration mode;
  auto a = conformal_calibration(r, y, mode);
  EXPECT_EQ(a.n, 20u);
  EXPECT_FALSE(a.symmetric);
  // Above: 19 scores of -0.5 and one of 2; ceil(21 * 0.95) = 20th smallest = 2.
  EXPECT_NEAR(a.hi90, 2, 1e-12);
  // Below: q05 - y = -0.5 for 19, -3 for one: the largest is -0.5 (narrows).
  EXPECT_NEAR(a.lo90, -0.5, 1e-12);
  // 80 %: ceil(21 * 0.9) = 19th smallest of the 20 above-scores = -0.5.
  EXPECT_NEAR(a.hi80, -0.5, 1e-12);
  mode.symmetric = true;
  auto s = conformal_calibration(r, y, mode);
  // max(lo - y, y - hi): 19 of -0.5, one of 2; ceil(21 * 0.9) = 19th = -0.5.
  EXPECT_NEAR(s.lo90, -0.5, 1e-12);
  EXPECT_EQ(s.lo90, s.hi90);
  mode.symmetric = false;
  mode.scaled = true;
  for (auto& p : r)
    p.q95 = 2; // 90 % width 2: the above-scores halve
  auto sc = conformal_calibration(r, y, mode);
  EXPECT_NEAR(sc.hi90, 0.5, 1e-12);
  EXPECT_TRUE(sc.scaled);
}

TEST(conformal, window_tracks_recent_scores) {
  conformal_window w(100);
  calibration fallback;
  fallback.n = 7;
  fallback.scaled = true;
  raw_prediction r;
  r.q05 = r.q10 = 1;
  r.q90 = r.q95 = 2;
  for (int i = 0; i < 99; ++i)
    w.add(r, std::expm1(1.5)); // inside: -0.5 below and above
  EXPECT_EQ(w.current(fallback, 100).n, 7u);
  for (int i = 0; i < 100; ++i)
    w.add(r, std::expm1(4.0)); // 2 above the upper quantile
  auto c = w.current(fallback, 100);
  EXPECT_EQ(c.n, 100u);
  EXPECT_TRUE(c.scaled); // the fallback's mode
  EXPECT_NEAR(c.hi90, 2, 1e-9);
  EXPECT_NEAR(c.lo90, -3, 1e-9);
  // Half the window inside, half above: the upper side's 95th percentile is the far one.
  for (int i = 0; i < 50; ++i)
    w.add(r, std::expm1(1.5));
  c = w.current(fallback, 100);
  EXPECT_NEAR(c.hi90, 2, 1e-9);
  EXPECT_NEAR(c.lo90, -0.5, 1e-9);
}

TEST(runtime_model_train, refuses_too_few_rows) {
  runtime_model m;
  std::string err;
  EXPECT_FALSE(runtime_model::train(std::vector<feature_vector>(10), std::vector<double>(10, 1), {},
                                    m, err));
  EXPECT_EQ(err, "training needs at least 50 rows with run times (got 10)");
  EXPECT_FALSE(m.usable());
}

TEST_F(small_model, saves_and_reloads_identically_with_metadata) {
  runtime_model back;
  std::string err;
  ASSERT_TRUE(runtime_model::load(path_, back, err)) << err;
  EXPECT_EQ(back.version(), model_.version());
  EXPECT_EQ(back.version().rfind("xgboost:", 0), 0u);
  EXPECT_EQ(back.metadata().at("train_digest"), runtime_model::digest_rows(x_, y_));
  EXPECT_EQ(back.metadata().at("features"), nlohmann::json(feature_names()));
  EXPECT_EQ(back.metadata().at("xgboost_version"), runtime_model::library_version());
  EXPECT_EQ(back.metadata().at("n_train"), x_.size());
  std::vector<feature_vector> some(x_.begin() + 2500, x_.end());
  std::vector<raw_prediction> a, b;
  ASSERT_TRUE(model_.predict_raw(some, a, err)) << err;
  ASSERT_TRUE(back.predict_raw(some, b, err)) << err;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].median, b[i].median);
    ASSERT_EQ(a[i].q95, b[i].q95);
  }
  // Non-empty intervals on every row, the 90 % one wider.
  for (auto& r : a) {
    ASSERT_LT(r.q05, r.q95);
    ASSERT_LE(r.q05, r.q10);
    ASSERT_LE(r.q10, r.q90);
    ASSERT_GE(r.q95, r.q90);
  }
  EXPECT_EQ(back.static_calibration().hi90, model_.static_calibration().hi90);
  EXPECT_EQ(back.static_calibration().lo80, model_.static_calibration().lo80);
  EXPECT_EQ(back.static_calibration().mode(), "symmetric");
  EXPECT_EQ(back.metadata().at("calibration").at("mode"), "symmetric");
  EXPECT_EQ(back.metadata().at("format_version"), 4);
}

// The flat evaluator must give exactly what XGBoost's own predictor gives.
TEST_F(small_model, flat_trees_match_xgboost_exactly) {
  std::string err;
  runtime_model back;
  ASSERT_TRUE(runtime_model::load(path_, back, err)) << err;
  std::vector<feature_vector> rows = x_;
  // Rows with every feature missing, and with extreme values, take default branches.
  feature_vector all_nan;
  all_nan.fill(std::nanf(""));
  rows.push_back(all_nan);
  feature_vector huge;
  huge.fill(1e30f);
  rows.push_back(huge);
  for (const runtime_model* m : {&model_, &back}) {
    std::vector<raw_prediction> flat, ref;
    ASSERT_TRUE(m->predict_raw(rows, flat, err)) << err;
    ASSERT_TRUE(m->predict_raw_reference(rows, ref, err)) << err;
    ASSERT_EQ(flat.size(), rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      ASSERT_EQ(flat[i].median, ref[i].median) << "row " << i;
      ASSERT_EQ(flat[i].q05, ref[i].q05) << "row " << i;
      ASSERT_EQ(flat[i].q10, ref[i].q10) << "row " << i;
      ASSERT_EQ(flat[i].q90, ref[i].q90) << "row " << i;
      ASSERT_EQ(flat[i].q95, ref[i].q95) << "row " << i;
    }
  }
}

TEST_F(small_model, missing_corrupt_and_mismatched_files_are_clear_errors) {
  runtime_model m;
  std::string err;
  EXPECT_FALSE(runtime_model::load("/nonexistent/m.json", m, err));
  EXPECT_EQ(err, "/nonexistent/m.json: cannot open the model file");

  auto text = slurp(path_);
  auto bad = temp_path("bad.json");
  spit(bad, text.substr(0, text.size() / 2));
  EXPECT_FALSE(runtime_model::load(bad, m, err));
  EXPECT_EQ(err.rfind(bad + ": not a valid model file (JSON:", 0), 0u) << err;

  auto j = nlohmann::json::parse(text);
  auto edit = [&](auto f) {
    auto c = j;
    f(c);
    spit(bad, c.dump());
    err.clear();
    EXPECT_FALSE(runtime_model::load(bad, m, err));
    EXPECT_FALSE(m.usable());
    return err;
  };
  EXPECT_EQ(edit([](auto& c) { c["features"][3] = "something_else"; }),
            bad + ": built for other features (its feature list differs from this build's " +
                std::to_string(n_features) + " features)");
  EXPECT_EQ(edit([](auto& c) { c["format_version"] = 99; }),
            bad + ": format_version 99, this build reads 4 (retrain it with `tender model train`)");
  // Files of the previous formats (six boosters; 36 features) are refused, not half-used.
  EXPECT_EQ(edit([](auto& c) { c["format_version"] = 1; }),
            bad + ": format_version 1, this build reads 4 (retrain it with `tender model train`)");
  // Version 3 (boosters point and spread, normalized calibration).
  EXPECT_EQ(edit([](auto& c) {
              c["format_version"] = 3;
              c["boosters"] = {{"point", c["boosters"]["point"]}, {"spread", c["boosters"]["q05"]}};
            }),
            bad + ": format_version 3, this build reads 4 (retrain it with `tender model train`)");
  EXPECT_EQ(edit([](auto& c) {
              c["format_version"] = 2;
              while (c["features"].size() > 36)
                c["features"].erase(c["features"].size() - 1);
            }),
            bad + ": format_version 2, this build reads 4 (retrain it with `tender model train`)");
  EXPECT_EQ(edit([](auto& c) {
              while (c["features"].size() > 36)
                c["features"].erase(c["features"].size() - 1);
            }),
            bad + ": built for other features (its feature list differs from this build's " +
                std::to_string(n_features) + " features)");
  EXPECT_EQ(edit([](auto& c) { c["format"] = "other"; }),
            bad + ": not a tender run-time model (format is not \"tender-runtime-model\")");
  EXPECT_EQ(edit([](auto& c) { c["xgboost_version"] = "0.90.0"; }),
            bad + ": written by XGBoost 0.90.0, this build has " +
                runtime_model::library_version());
  EXPECT_EQ(edit([](auto& c) {
              auto s = c["boosters"]["q95"].template get<std::string>();
              s[s.size() / 2] = s[s.size() / 2] == '1' ? '2' : '1';
              c["boosters"]["q95"] = s;
            }),
            bad + ": model_digest does not match the boosters (file damaged or edited)");
  EXPECT_EQ(edit([](auto& c) { c["boosters"].erase("point"); }),
            bad + ": booster \"point\" missing");
  EXPECT_EQ(edit([](auto& c) { c["boosters"].erase("q10"); }), bad + ": booster \"q10\" missing");
  EXPECT_EQ(edit([](auto& c) { c["calibration"]["mode"] = "normalized"; }),
            bad + ": unknown calibration mode \"normalized\"");
  std::filesystem::remove(bad);
}

TEST_F(small_model, refit_changes_the_boosters_and_keeps_the_calibration) {
  std::string err;
  runtime_model m;
  ASSERT_TRUE(runtime_model::load(path_, m, err)) << err;
  std::vector<feature_vector> some(x_.begin() + 2500, x_.end());
  std::vector<raw_prediction> before, after;
  ASSERT_TRUE(m.predict_raw(some, before, err)) << err;
  // Refit on the later half only: the point model must change, the calibration not.
  std::vector<feature_vector> xr(x_.begin() + 1500, x_.end());
  std::vector<double> yr(y_.begin() + 1500, y_.end());
  model_config c;
  c.rounds = 30;
  const auto cal = m.static_calibration();
  ASSERT_TRUE(m.refit(xr, yr, c, err)) << err;
  ASSERT_TRUE(m.predict_raw(some, after, err)) << err;
  std::size_t differ = 0;
  for (std::size_t i = 0; i < before.size(); ++i)
    differ += before[i].median != after[i].median ? 1 : 0;
  EXPECT_GT(differ, before.size() / 2);
  EXPECT_EQ(m.static_calibration().hi90, cal.hi90);
  EXPECT_EQ(m.static_calibration().lo80, cal.lo80);
  std::size_t q_differ = 0;
  for (std::size_t i = 0; i < before.size(); ++i)
    q_differ += before[i].q95 - before[i].median != after[i].q95 - after[i].median ? 1 : 0;
  EXPECT_GT(q_differ, before.size() / 2); // the quantile boosters are refitted too
  EXPECT_NE(m.version(), model_.version());
  // The refitted model still predicts exactly as XGBoost does.
  std::vector<raw_prediction> ref;
  ASSERT_TRUE(m.predict_raw_reference(some, ref, err)) << err;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(after[i].median, ref[i].median);
    ASSERT_EQ(after[i].q05, ref[i].q05);
  }
  EXPECT_FALSE(m.refit({}, {}, c, err));
  EXPECT_EQ(err, "refitting needs at least 50 rows with run times");
}

TEST(runtime_model_train, refuses_an_unknown_point_target) {
  runtime_model m;
  std::string err;
  model_config c;
  c.point_target = "cubes";
  EXPECT_FALSE(
      runtime_model::train(std::vector<feature_vector>(60), std::vector<double>(60, 1), c, m, err));
  EXPECT_EQ(err, "unknown point target \"cubes\" (auto, anchor, ratio, last2, seconds or log)");
}

TEST(runtime_model_train, refuses_an_unknown_conformal_mode) {
  runtime_model m;
  std::string err;
  model_config c;
  c.conformal = "normalized";
  EXPECT_FALSE(
      runtime_model::train(std::vector<feature_vector>(60), std::vector<double>(60, 1), c, m, err));
  EXPECT_EQ(err, "unknown conformal mode \"normalized\" (asymmetric, symmetric, "
                 "asymmetric-scaled or symmetric-scaled)");
}

// The pinball gradient must pull each booster to its quantile: on the rows it was fitted
// on, about tau of the run times fall below it (a wrong sign would push them to the wrong
// side), and the intervals differ from job to job (the boosters learned more than the
// overall quantile they start from).
TEST_F(small_model, quantile_boosters_fit_their_levels) {
  std::vector<raw_prediction> p;
  std::string err;
  ASSERT_TRUE(model_.predict_raw(x_, p, err)) << err;
  std::array<double, 4> below{};
  double w_sum = 0, w_sq = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double y = std::log1p(std::max(0.0, y_[i]));
    below[0] += y < p[i].q05 ? 1 : 0;
    below[1] += y < p[i].q10 ? 1 : 0;
    below[2] += y < p[i].q90 ? 1 : 0;
    below[3] += y < p[i].q95 ? 1 : 0;
    const double w = p[i].q95 - p[i].q05;
    w_sum += w;
    w_sq += w * w;
  }
  const auto n = static_cast<double>(p.size());
  for (auto& b : below)
    b /= n;
  EXPECT_LT(below[0], 0.10);
  EXPECT_GT(below[1], 0.02);
  EXPECT_LT(below[1], 0.20);
  EXPECT_GT(below[2], 0.80);
  EXPECT_LT(below[2], 0.98);
  EXPECT_GT(below[3], 0.90);
  EXPECT_LE(below[0], below[1]);
  EXPECT_LE(below[2], below[3]);
  const double mean_w = w_sum / n;
  EXPECT_GT(std::sqrt(w_sq / n - mean_w * mean_w), 0.1 * mean_w);
  EXPECT_GT(model_.metadata().at("metrics").at("calibration_coverage90").get<double>(), 0.85);
}

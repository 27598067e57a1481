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

TEST(conformal, estimate_is_ordered_and_capped_at_the_request) {
  raw_prediction r{std::log1p(100.0), std::log1p(10.0), std::log1p(1000.0), std::log1p(20.0),
                   std::log1p(500.0)};
  auto e = to_estimate(r, 0, 0, 300);
  EXPECT_NEAR(e.median, 100, 1e-9);
  EXPECT_NEAR(e.lo90, 10, 1e-9);
  EXPECT_EQ(e.hi90, 300);
  EXPECT_EQ(e.hi80, 300);
  auto u = to_estimate(r, 0, 0, 300, /*cap_interval=*/false); // jobs may overrun here
  EXPECT_NEAR(u.median, 100, 1e-9);
  EXPECT_NEAR(u.hi90, 1000, 1e-9);
  auto w = to_estimate(r, std::log(2.0), 0, -1);
  EXPECT_NEAR(e.lo80, 20, 1e-9);
  EXPECT_NEAR(w.hi90, std::expm1(std::log1p(1000.0) + std::log(2.0)), 1e-6);
}

TEST(conformal, window_tracks_recent_normalized_scores) {
  conformal_window w(100);
  calibration fallback;
  fallback.n = 7;
  raw_prediction r;
  r.median = 1;
  r.spread = 0.5;
  for (int i = 0; i < 99; ++i)
    w.add(r, 0); // y = 0: (m - y) / s = 2 below, -2 above
  EXPECT_EQ(w.current(fallback, 100).n, 7u);
  for (int i = 0; i < 100; ++i)
    w.add(r, std::expm1(3.0)); // y = 3: -4 below, 4 above
  auto c = w.current(fallback, 100);
  EXPECT_EQ(c.n, 100u);
  EXPECT_NEAR(c.hi90, 4, 1e-9);
  EXPECT_NEAR(c.lo90, -4, 1e-9);
  // Half the window below, half above: each side's 95th percentile is the far one.
  for (int i = 0; i < 50; ++i)
    w.add(r, 0);
  c = w.current(fallback, 100);
  EXPECT_NEAR(c.hi90, 4, 1e-9);
  EXPECT_NEAR(c.lo90, 2, 1e-9);
}

TEST(conformal, normalized_estimate_scales_with_the_spread_and_caps) {
  raw_prediction r;
  r.median = std::log1p(100.0);
  r.spread = 0.5;
  calibration c;
  c.lo90 = 2;
  c.hi90 = 4;
  c.lo80 = 1;
  c.hi80 = 2;
  auto e = to_estimate(r, c, -1, -1);
  EXPECT_NEAR(e.median, 100, 1e-9);
  EXPECT_NEAR(e.lo90, std::expm1(std::log1p(100.0) - 1), 1e-9);
  EXPECT_NEAR(e.hi90, std::expm1(std::log1p(100.0) + 2), 1e-9);
  EXPECT_NEAR(e.hi80, std::expm1(std::log1p(100.0) + 1), 1e-9);
  auto capped = to_estimate(r, c, 80, 140); // median at the request, interval at the cap
  EXPECT_EQ(capped.median, 80);
  EXPECT_EQ(capped.hi90, 140);
  EXPECT_EQ(capped.hi80, 140);
  EXPECT_LE(capped.lo90, 80);
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
    ASSERT_GE(r.q95, r.q90);
    ASSERT_GT(r.spread, 0);
  }
  EXPECT_EQ(back.static_calibration().hi90, model_.static_calibration().hi90);
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
      ASSERT_EQ(flat[i].spread, ref[i].spread) << "row " << i;
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
            bad + ": format_version 99, this build reads 3 (retrain it with `tender model train`)");
  // Files of the previous formats (six boosters; 36 features) are refused, not half-used.
  EXPECT_EQ(edit([](auto& c) { c["format_version"] = 1; }),
            bad + ": format_version 1, this build reads 3 (retrain it with `tender model train`)");
  EXPECT_EQ(edit([](auto& c) {
              c["format_version"] = 2;
              while (c["features"].size() > 36)
                c["features"].erase(c["features"].size() - 1);
            }),
            bad + ": format_version 2, this build reads 3 (retrain it with `tender model train`)");
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
              auto s = c["boosters"]["spread"].template get<std::string>();
              s[s.size() / 2] = s[s.size() / 2] == '1' ? '2' : '1';
              c["boosters"]["spread"] = s;
            }),
            bad + ": model_digest does not match the boosters (file damaged or edited)");
  EXPECT_EQ(edit([](auto& c) { c["boosters"].erase("point"); }),
            bad + ": booster \"point\" missing");
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
  EXPECT_NE(m.version(), model_.version());
  // The refitted model still predicts exactly as XGBoost does.
  std::vector<raw_prediction> ref;
  ASSERT_TRUE(m.predict_raw_reference(some, ref, err)) << err;
  for (std::size_t i = 0; i < ref.size(); ++i)
    ASSERT_EQ(after[i].median, ref[i].median);
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

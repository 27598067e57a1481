#include "models/runtime_model.hpp"

#include "models/xgb_handles.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>

namespace tender {

namespace {

constexpr const char* format_name = "tender-runtime-model";
constexpr int format_version = 4;
// Booster order inside the model and the file.
constexpr std::array<const char*, 5> booster_names = {"point", "q05", "q95", "q10", "q90"};
constexpr std::array<double, 4> quantile_levels = {0.05, 0.95, 0.10, 0.90};
constexpr double min_width = 0.05; // log units: keeps scaled (CQR-r) scores finite

using xgb::dmatrix;

struct booster {
  BoosterHandle h = nullptr;
  booster() = default;
  booster(const booster&) = delete;
  booster& operator=(const booster&) = delete;
  ~booster() {
    if (h)
      XGBoosterFree(h);
  }
  BoosterHandle release() {
    auto r = h;
    h = nullptr;
    return r;
  }
};

bool make_dmatrix(const std::vector<feature_vector>& x, std::size_t from, std::size_t to,
                  dmatrix& out, std::string& error) {
  std::vector<float> empty(n_features, std::nanf(""));
  const float* data = to == from ? empty.data() : x[from].data();
  if (XGDMatrixCreateFromMat(data, std::max<bst_ulong>(to - from, 1), n_features, std::nanf(""),
                             &out.h) != 0) {
    error = xgb::error("cannot build the feature matrix");
    return false;
  }
  return true;
}

std::string hex64(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::uint64_t fnv(const void* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  auto* c = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= c[i];
    h *= 1099511628211ull;
  }
  return h;
}

double quantile_of(std::vector<double> v, double q) {
  if (v.empty())
    return 0;
  auto k = static_cast<std::size_t>(
      std::clamp(q * static_cast<double>(v.size() - 1), 0.0, static_cast<double>(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

/// The weighted median of `v`.
double weighted_median(const std::vector<float>& v, const std::vector<float>& w) {
  if (v.empty())
    return 0;
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](auto a, auto b) { return v[a] < v[b]; });
  double total = 0;
  for (float x : w)
    total += x;
  double acc = 0;
  for (auto i : idx) {
    acc += w[i];
    if (acc >= total / 2)
      return v[i];
  }
  return v[idx.back()];
}

bool valid_target(const std::string& t) {
  return t == "ratio" || t == "last2" || t == "anchor" || t == "seconds" || t == "log";
}

} // namespace

nlohmann::json model_config::to_json() const {
  return {{"rounds", rounds},
          {"max_depth", max_depth},
          {"eta", eta},
          {"min_child_weight", min_child_weight},
          {"subsample", subsample},
          {"colsample", colsample},
          {"max_bin", max_bin},
          {"quantile_rounds", quantile_rounds},
          {"quantile_max_depth", quantile_max_depth},
          {"quantile_eta", quantile_eta},
          {"quantile_min_rows", quantile_min_rows},
          {"conformal", conformal},
          {"recency_halflife", recency_halflife},
          {"calibration_frac", calibration_frac},
          {"seed", seed},
          {"point_target", point_target}};
}

double job_scale(const feature_vector& x) {
  double s = 1;
  if (!std::isnan(x[0]))
    s = std::expm1(static_cast<double>(x[0]));
  else if (!std::isnan(x[29]))
    s = std::expm1(static_cast<double>(x[29]));
  return std::max(1.0, s);
}

double target_scale(const feature_vector& x, const std::string& point_target) {
  if (point_target == "ratio")
    return job_scale(x);
  if (point_target == "anchor") {
    if (!std::isnan(x[39]))
      return std::max(1.0, std::expm1(static_cast<double>(x[39])));
    return target_scale(x, "last2");
  }
  if (point_target == "last2") {
    if (!std::isnan(x[30]))
      return std::max(1.0, std::expm1(static_cast<double>(x[30])));
    return job_scale(x);
  }
  return 1.0;
}

double cqr_score(double lo, double hi, double y) {
  return std::max(lo - y, y - hi);
}

double conformal_quantile(std::vector<double> s, double alpha) {
  if (s.empty())
    return 0;
  auto n = static_cast<double>(s.size());
  auto k = static_cast<std::size_t>(std::ceil((n + 1) * (1 - alpha)));
  k = std::clamp<std::size_t>(k, 1, s.size());
  std::nth_element(s.begin(), s.begin() + static_cast<long>(k - 1), s.end());
  return s[k - 1];
}

namespace {

runtime_estimate order_and_cap(runtime_estimate e, double req, double cap_s) {
  if (req > 0)
    e.median = std::min(e.median, req);
  if (cap_s > 0)
    for (double* v : {&e.lo90, &e.hi90, &e.lo80, &e.hi80})
      *v = std::min(*v, cap_s);
  e.lo90 = std::min(e.lo90, e.median);
  e.lo80 = std::min(e.lo80, e.median);
  e.hi90 = std::max(e.hi90, e.median);
  e.hi80 = std::max(e.hi80, e.median);
  return e;
}

double sec(double l) {
  return std::max(0.0, std::expm1(l));
}

} // namespace

runtime_estimate to_estimate(const raw_prediction& r, const calibration& c, double req,
                             double cap_s) {
  const double w90 = c.scaled ? std::max(min_width, r.q95 - r.q05) : 1.0;
  const double w80 = c.scaled ? std::max(min_width, r.q90 - r.q10) : 1.0;
  const double lo80 = r.q10 - c.lo80 * w80, hi80 = r.q90 + c.hi80 * w80;
  runtime_estimate e;
  e.median = sec(r.median);
  e.lo90 = sec(std::min(r.q05 - c.lo90 * w90, lo80));
  e.hi90 = sec(std::max(r.q95 + c.hi90 * w90, hi80));
  e.lo80 = sec(lo80);
  e.hi80 = sec(hi80);
  return order_and_cap(e, req, cap_s);
}

std::string calibration::mode() const {
  return std::string(symmetric ? "symmetric" : "asymmetric") + (scaled ? "-scaled" : "");
}

bool calibration::set_mode(const std::string& name) {
  auto base = name;
  bool sc = false;
  const std::string suffix = "-scaled";
  if (base.size() > suffix.size() &&
      base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0) {
    sc = true;
    base.resize(base.size() - suffix.size());
  }
  if (base != "symmetric" && base != "asymmetric")
    return false;
  symmetric = base == "symmetric";
  scaled = sc;
  return true;
}

calibration conformal_calibration(const std::vector<raw_prediction>& r,
                                  const std::vector<double>& y, const calibration& mode) {
  calibration c;
  c.symmetric = mode.symmetric;
  c.scaled = mode.scaled;
  c.n = std::min(r.size(), y.size());
  // Scores of one interval [lo, hi]; each side misses alpha / 2 (or both together alpha).
  auto side = [&](double raw_prediction::*lo, double raw_prediction::*hi, double alpha,
                  double& out_lo, double& out_hi) {
    std::vector<double> below(c.n), above(c.n);
    for (std::size_t i = 0; i < c.n; ++i) {
      const double w = c.scaled ? std::max(min_width, r[i].*hi - r[i].*lo) : 1.0;
      below[i] = (r[i].*lo - y[i]) / w;
      above[i] = (y[i] - r[i].*hi) / w;
    }
    if (c.symmetric) {
      for (std::size_t i = 0; i < c.n; ++i)
        below[i] = std::max(below[i], above[i]);
      out_lo = out_hi = conformal_quantile(std::move(below), alpha);
    } else {
      out_lo = conformal_quantile(std::move(below), alpha / 2);
      out_hi = conformal_quantile(std::move(above), alpha / 2);
    }
  };
  side(&raw_prediction::q05, &raw_prediction::q95, 0.10, c.lo90, c.hi90);
  side(&raw_prediction::q10, &raw_prediction::q90, 0.20, c.lo80, c.hi80);
  return c;
}

void conformal_window::add(const raw_prediction& r, double runtime_s) {
  r_.push_back(r);
  y_.push_back(std::log1p(std::max(0.0, runtime_s)));
  while (r_.size() > size_) {
    r_.pop_front();
    y_.pop_front();
  }
}

calibration conformal_window::current(const calibration& fallback, std::size_t min_n) const {
  if (r_.size() < min_n)
    return fallback;
  return conformal_calibration({r_.begin(), r_.end()}, {y_.begin(), y_.end()}, fallback);
}

// ---- flat_forest ----------------------------------------------------------------

bool flat_forest::load_json(const std::string& text, std::string& error) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
    const auto& learner = j.at("learner");
    const auto& gb = learner.at("gradient_booster");
    if (gb.at("name").get<std::string>() != "gbtree") {
      error = "booster is " + gb.at("name").get<std::string>() + ", not gbtree";
      return false;
    }
    base_ = std::strtof(
        learner.at("learner_model_param").at("base_score").get<std::string>().c_str(), nullptr);
    nodes_.clear();
    roots_.clear();
    for (const auto& t : gb.at("model").at("trees")) {
      const auto& l = t.at("left_children");
      const auto& r = t.at("right_children");
      const auto& f = t.at("split_indices");
      const auto& c = t.at("split_conditions");
      const auto& d = t.at("default_left");
      const std::size_t n = l.size();
      if (r.size() != n || f.size() != n || c.size() != n || d.size() != n || n == 0) {
        error = "a tree's arrays differ in length";
        return false;
      }
      auto base = static_cast<std::int32_t>(nodes_.size());
      roots_.push_back(base);
      for (std::size_t i = 0; i < n; ++i) {
        node nd;
        auto li = l[i].get<std::int32_t>(), ri = r[i].get<std::int32_t>();
        nd.left = li < 0 ? -1 : base + li;
        nd.right = ri < 0 ? -1 : base + ri;
        nd.feature = f[i].get<std::uint32_t>();
        nd.value = static_cast<float>(c[i].get<double>());
        nd.default_left = d[i].is_boolean() ? d[i].get<bool>() : d[i].get<int>() != 0;
        if (nd.left >= 0 && (nd.feature >= n_features || li >= static_cast<std::int32_t>(n) ||
                             ri < 0 || ri >= static_cast<std::int32_t>(n))) {
          error = "a tree refers to a node or feature that does not exist";
          return false;
        }
        nodes_.push_back(nd);
      }
    }
  } catch (const std::exception& e) {
    error = std::string("unexpected booster JSON: ") + e.what();
    return false;
  }
  return true;
}

float flat_forest::predict(const float* x) const {
  float sum = base_;
  const node* nodes = nodes_.data();
  for (std::int32_t root : roots_) {
    const node* n = nodes + root;
    while (n->left >= 0) {
      float v = x[n->feature];
      bool left = std::isnan(v) ? n->default_left : v < n->value;
      n = nodes + (left ? n->left : n->right);
    }
    sum += n->value;
  }
  return sum;
}

// ---- runtime_model --------------------------------------------------------------

struct runtime_model::impl {
  std::array<BoosterHandle, booster_names.size()> b{};
  std::array<std::string, booster_names.size()> json; ///< saved form
  std::array<flat_forest, booster_names.size()> flat;
  ~impl() {
    for (auto h : b)
      if (h)
        XGBoosterFree(h);
  }
  static bool to_json(BoosterHandle h, std::string& out, std::string& error) {
    bst_ulong len = 0;
    const char* buf = nullptr;
    if (XGBoosterSaveModelToBuffer(h, R"({"format": "json"})", &len, &buf) != 0) {
      error = xgb::error("cannot serialise booster");
      return false;
    }
    out.assign(buf, len);
    return true;
  }
  static bool load_flat(BoosterHandle h, flat_forest& f, std::string& error) {
    std::string j;
    return to_json(h, j, error) && f.load_json(j, error);
  }
  bool finish(std::size_t k, std::string& error) {
    return to_json(b[k], json[k], error) && flat[k].load_json(json[k], error);
  }
  std::string digest() const {
    std::uint64_t md = 1469598103934665603ull;
    for (auto& j : json)
      md = fnv(j.data(), j.size(), md);
    return hex64(md);
  }
};

runtime_model::runtime_model() = default;
runtime_model::~runtime_model() = default;
runtime_model::runtime_model(runtime_model&&) noexcept = default;
runtime_model& runtime_model::operator=(runtime_model&&) noexcept = default;

bool runtime_model::usable() const {
  return impl_ && impl_->b[0] != nullptr;
}

std::string runtime_model::library_version() {
  int a = 0, b = 0, c = 0;
  XGBoostVersion(&a, &b, &c);
  return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c);
}

std::string runtime_model::digest_rows(const std::vector<feature_vector>& x,
                                       const std::vector<double>& y) {
  std::uint64_t h = 1469598103934665603ull;
  for (const auto& r : x)
    h = fnv(r.data(), sizeof(float) * r.size(), h);
  for (double v : y)
    h = fnv(&v, sizeof v, h);
  return hex64(h);
}

std::string runtime_model::version() const {
  auto d = meta_.value("model_digest", std::string("unknown"));
  return "xgboost:" + d.substr(0, 12);
}

namespace {

bool set_params(BoosterHandle h, const model_config& c, const char* objective, double base,
                std::string& error) {
  char base_s[64];
  std::snprintf(base_s, sizeof base_s, "%.9g", base);
  std::vector<std::pair<std::string, std::string>> p = {
      {"tree_method", "hist"},
      {"objective", objective},
      {"base_score", base_s},
      {"max_depth", std::to_string(c.max_depth)},
      {"eta", std::to_string(c.eta)},
      {"min_child_weight", std::to_string(c.min_child_weight)},
      {"subsample", std::to_string(c.subsample)},
      {"colsample_bytree", std::to_string(c.colsample)},
      {"max_bin", std::to_string(c.max_bin)},
      {"nthread", std::to_string(c.nthread)},
      {"seed", std::to_string(c.seed)},
      {"verbosity", "0"},
  };
  for (auto& [k, v] : p)
    if (XGBoosterSetParam(h, k.c_str(), v.c_str()) != 0) {
      error = xgb::error("cannot set " + k);
      return false;
    }
  return true;
}

/// Seconds of the point booster's output for a row.
double point_seconds(float out, const feature_vector& x, const std::string& target) {
  if (target == "log")
    return std::max(0.0, std::expm1(static_cast<double>(out)));
  return std::max(0.0, static_cast<double>(out) * target_scale(x, target));
}

/// Trains one booster on rows [from, to) of `d` (which holds those rows).
bool fit_booster(DMatrixHandle d, const std::vector<float>& label, const std::vector<float>& w,
                 const model_config& cfg, const char* objective, int rounds, booster& out,
                 std::string& error, const std::function<void()>& tick) {
  if (XGDMatrixSetFloatInfo(d, "label", label.data(), label.size()) != 0 ||
      XGDMatrixSetFloatInfo(d, "weight", w.data(), w.size()) != 0) {
    error = xgb::error("cannot set labels");
    return false;
  }
  if (XGBoosterCreate(&d, 1, &out.h) != 0) {
    error = xgb::error("cannot create booster");
    return false;
  }
  if (!set_params(out.h, cfg, objective, weighted_median(label, w), error))
    return false;
  for (int it = 0; it < rounds; ++it) {
    if (XGBoosterUpdateOneIter(out.h, it, d) != 0) {
      error = xgb::error(std::string("training (") + objective + ") failed");
      return false;
    }
    if (tick)
      tick();
  }
  return true;
}

double recency(const model_config& cfg, std::size_t i, std::size_t n) {
  return cfg.recency_halflife > 0
             ? std::exp2(-static_cast<double>(n - 1 - i) / cfg.recency_halflife)
             : 1.0;
}

/// Trains the point booster on rows [from, to) of `x` (`d` holds those rows).
bool fit_point(const std::vector<feature_vector>& x, const std::vector<double>& y, std::size_t from,
               std::size_t to, DMatrixHandle d, const model_config& cfg, booster& point,
               std::string& error, const std::function<void()>& tick) {
  const std::size_t n = to - from;
  std::vector<float> label(n), w(n);
  for (std::size_t i = 0; i < n; ++i) {
    double yi = std::max(0.0, y[from + i]);
    double s = target_scale(x[from + i], cfg.point_target);
    label[i] = static_cast<float>(cfg.point_target == "log" ? std::log1p(yi) : yi / s);
    w[i] = static_cast<float>(s * recency(cfg, i, n));
  }
  return fit_booster(d, label, w, cfg, "reg:absoluteerror", cfg.rounds, point, error, tick);
}

/// Trains the quantile boosters (q05, q95, q10, q90) on rows [from, to) of `x` (`d`
/// holds those rows) with the pinball loss in log1p space, each starting from the
/// point booster's prediction plus the residuals' overall quantile (see the header for
/// the hessian).
bool fit_quantiles(const std::vector<feature_vector>& x, const std::vector<double>& y,
                   std::size_t from, std::size_t to, DMatrixHandle d, const model_config& cfg,
                   const booster& point, std::array<booster, 4>& q, std::string& error,
                   const std::function<void()>& tick) {
  const std::size_t n = to - from;
  std::vector<float> m(n), ylog(n), w(n);
  std::vector<double> resid(n);
  {
    bst_ulong len = 0;
    const float* res = nullptr;
    if (XGBoosterPredict(point.h, d, 0, 0, 0, &len, &res) != 0 || len != n) {
      error = xgb::error("predicting the training rows failed");
      return false;
    }
    for (std::size_t i = 0; i < n; ++i) {
      m[i] = static_cast<float>(std::log1p(point_seconds(res[i], x[from + i], cfg.point_target)));
      ylog[i] = static_cast<float>(std::log1p(std::max(0.0, y[from + i])));
      resid[i] = static_cast<double>(ylog[i]) - m[i];
      w[i] = static_cast<float>(recency(cfg, i, n));
    }
  }
  if (XGDMatrixSetFloatInfo(d, "label", ylog.data(), n) != 0 ||
      XGDMatrixSetFloatInfo(d, "weight", w.data(), n) != 0) {
    error = xgb::error("cannot set labels");
    return false;
  }
  std::vector<float> margin(n), grad(n), hess(n);
  for (std::size_t k = 0; k < q.size(); ++k) {
    const double tau = quantile_levels[k];
    const double base = quantile_of(resid, tau);
    // Mean excess beyond the quantile on its tail's side: an exponential tail's scale.
    double excess = 0, n_tail = 0;
    for (double r : resid)
      if (tau > 0.5 ? r > base : r < base) {
        excess += std::abs(r - base);
        n_tail += 1;
      }
    const double b = std::max(0.05, n_tail > 0 ? excess / n_tail : 1.0);
    const double h = std::min(tau, 1 - tau) / b;
    for (std::size_t i = 0; i < n; ++i)
      margin[i] = m[i] + static_cast<float>(base);
    if (XGDMatrixSetFloatInfo(d, "base_margin", margin.data(), n) != 0) {
      error = xgb::error("cannot set the base margin");
      return false;
    }
    if (XGBoosterCreate(&d, 1, &q[k].h) != 0) {
      error = xgb::error("cannot create booster");
      return false;
    }
    auto qc = cfg;
    qc.max_depth = cfg.quantile_max_depth;
    qc.eta = cfg.quantile_eta;
    qc.min_child_weight = cfg.quantile_min_rows * h;
    if (!set_params(q[k].h, qc, "reg:squarederror", base, error))
      return false;
    char lambda[64];
    std::snprintf(lambda, sizeof lambda, "%.9g", h);
    if (XGBoosterSetParam(q[k].h, "reg_lambda", lambda) != 0 ||
        XGBoosterSetParam(q[k].h, "max_delta_step", "1") != 0) {
      error = xgb::error("cannot set the quantile parameters");
      return false;
    }
    for (std::size_t i = 0; i < n; ++i)
      hess[i] = static_cast<float>(h) * w[i];
    for (int it = 0; it < cfg.quantile_rounds; ++it) {
      bst_ulong len = 0;
      const float* pred = nullptr;
      if (XGBoosterPredict(q[k].h, d, 1, 0, 1, &len, &pred) != 0 || len != n) {
        error = xgb::error("predicting the training margins failed");
        return false;
      }
      const auto t = static_cast<float>(tau);
      for (std::size_t i = 0; i < n; ++i)
        grad[i] = (ylog[i] < pred[i] ? 1.0f - t : -t) * w[i];
      if (XGBoosterBoostOneIter(q[k].h, d, grad.data(), hess.data(), n) != 0) {
        error = xgb::error(std::string("training the ") + booster_names[k + 1] +
                           " quantile booster failed");
        return false;
      }
      if (tick)
        tick();
    }
  }
  return true;
}

/// Trains all boosters on rows [from, to).
bool fit_all(const std::vector<feature_vector>& x, const std::vector<double>& y, std::size_t from,
             std::size_t to, const model_config& cfg, booster& point, std::array<booster, 4>& q,
             std::string& error, const std::function<void()>& tick) {
  dmatrix d;
  return make_dmatrix(x, from, to, d, error) &&
         fit_point(x, y, from, to, d.h, cfg, point, error, tick) &&
         fit_quantiles(x, y, from, to, d.h, cfg, point, q, error, tick);
}

std::array<BoosterHandle, booster_names.size()> release_all(booster& point,
                                                            std::array<booster, 4>& q) {
  return {point.release(), q[0].release(), q[1].release(), q[2].release(), q[3].release()};
}

} // namespace

raw_prediction runtime_model::finish(const feature_vector& x, const float* out) const {
  raw_prediction r;
  r.median = std::log1p(point_seconds(out[0], x, point_target_));
  // Quantiles in order (crossed ones rearranged, Chernozhukov et al. 2010).
  std::array<double, 4> q = {r.median + out[1], r.median + out[3], r.median + out[4],
                             r.median + out[2]};
  std::sort(q.begin(), q.end());
  // Each interval holds the point prediction (as the estimate will), so the conformal
  // scores measure the intervals as they are given out.
  r.q05 = std::min(q[0], r.median);
  r.q10 = std::min(q[1], r.median);
  r.q90 = std::max(q[2], r.median);
  r.q95 = std::max(q[3], r.median);
  return r;
}

bool runtime_model::train(const std::vector<feature_vector>& x, const std::vector<double>& y,
                          const model_config& cfg, runtime_model& out, std::string& error,
                          const progress_fn& progress) {
  if (x.size() != y.size() || x.size() < 50) {
    error = "training needs at least 50 rows with run times (got " + std::to_string(x.size()) + ")";
    return false;
  }
  if (cfg.point_target != "auto" && !valid_target(cfg.point_target)) {
    error = "unknown point target \"" + cfg.point_target +
            "\" (auto, anchor, ratio, last2, seconds or log)";
    return false;
  }
  calibration mode;
  if (!mode.set_mode(cfg.conformal)) {
    error = "unknown conformal mode \"" + cfg.conformal +
            "\" (asymmetric, symmetric, asymmetric-scaled or symmetric-scaled)";
    return false;
  }
  const std::size_t n = x.size();
  const auto n_fit = std::clamp<std::size_t>(
      static_cast<std::size_t>(static_cast<double>(n) * (1 - cfg.calibration_frac)), 25, n - 25);
  std::vector<std::string> targets = {cfg.point_target};
  if (cfg.point_target == "auto")
    targets = {"ratio", "last2", "anchor"};
  const int total =
      static_cast<int>(targets.size() + 1) * cfg.rounds + 8 * std::max(0, cfg.quantile_rounds);
  int done = 0;
  std::function<void()> tick = [&] {
    ++done;
    if (progress && (done % 10 == 0 || done == total))
      progress(done, total);
  };

  // Boosters fitted on the earlier rows, scored on the later ones: the point target
  // with the lower absolute error there (when "auto"), and the static calibration.
  runtime_model r;
  std::vector<raw_prediction> cal_raw;
  std::vector<double> cal_y;
  nlohmann::json selection = nlohmann::json::object();
  {
    dmatrix d;
    if (!make_dmatrix(x, 0, n_fit, d, error))
      return false;
    booster best;
    double best_mae = 0;
    auto c = cfg;
    for (const auto& t : targets) {
      c.point_target = t;
      booster p;
      if (!fit_point(x, y, 0, n_fit, d.h, c, p, error, tick))
        return false;
      flat_forest f;
      if (!runtime_model::impl::load_flat(p.h, f, error))
        return false;
      double mae = 0;
      for (std::size_t i = n_fit; i < n; ++i) {
        double v = point_seconds(f.predict(x[i].data()), x[i], t);
        if (!std::isnan(x[i][0]))
          v = std::min(v, std::expm1(static_cast<double>(x[i][0])));
        mae += std::abs(v - y[i]);
      }
      mae /= static_cast<double>(n - n_fit);
      selection[t] = mae;
      if (!best.h || mae < best_mae) {
        std::swap(best.h, p.h);
        best_mae = mae;
        r.point_target_ = t;
      }
    }
    c.point_target = r.point_target_;
    std::array<booster, 4> q;
    if (!fit_quantiles(x, y, 0, n_fit, d.h, c, best, q, error, tick))
      return false;
    runtime_model fit;
    fit.point_target_ = r.point_target_;
    fit.impl_ = std::make_unique<impl>();
    fit.impl_->b = release_all(best, q);
    for (std::size_t k = 0; k < booster_names.size(); ++k)
      if (!fit.impl_->finish(k, error))
        return false;
    for (std::size_t i = n_fit; i < n; ++i) {
      cal_raw.push_back(fit.predict_one(x[i]));
      cal_y.push_back(std::log1p(std::max(0.0, y[i])));
    }
  }
  r.cal_ = conformal_calibration(cal_raw, cal_y, mode);
  // Coverage of the raw quantiles and of the calibrated intervals on the later slice.
  double raw_cov = 0, cal_cov = 0;
  for (std::size_t i = 0; i < cal_raw.size(); ++i) {
    const double yl = cal_y[i];
    raw_cov += cal_raw[i].q05 <= yl && yl <= cal_raw[i].q95 ? 1 : 0;
    auto e = to_estimate(cal_raw[i], r.cal_, -1, -1);
    const double ys = std::expm1(yl);
    cal_cov += e.lo90 <= ys && ys <= e.hi90 ? 1 : 0;
  }
  const double n_cal = std::max<double>(1, static_cast<double>(cal_raw.size()));

  auto chosen = cfg;
  chosen.point_target = r.point_target_;
  booster p;
  std::array<booster, 4> q;
  if (!fit_all(x, y, 0, n, chosen, p, q, error, tick))
    return false;
  auto m = std::make_unique<impl>();
  m->b = release_all(p, q);
  for (std::size_t k = 0; k < booster_names.size(); ++k)
    if (!m->finish(k, error))
      return false;

  r.meta_ = {
      {"format", format_name},
      {"format_version", format_version},
      {"xgboost_version", library_version()},
      {"features", feature_names()},
      {"target", "point: run time / scale (" + r.point_target_ +
                     "), absolute error in seconds; q05, q95, q10, q90: pinball loss on "
                     "log1p(run time) from log1p(point)"},
      {"point_target_selection", selection},
      {"train_digest", digest_rows(x, y)},
      {"n_train", n},
      {"n_calibration", cal_raw.size()},
      {"config", chosen.to_json()},
      {"calibration",
       {{"mode", r.cal_.mode()},
        {"lo90", r.cal_.lo90},
        {"hi90", r.cal_.hi90},
        {"lo80", r.cal_.lo80},
        {"hi80", r.cal_.hi80}}},
      {"metrics",
       {{"calibration_coverage90", cal_cov / n_cal},
        {"calibration_raw_quantile_coverage90", raw_cov / n_cal}}},
      {"model_digest", m->digest()},
  };
  r.impl_ = std::move(m);
  out = std::move(r);
  return true;
}

bool runtime_model::refit(const std::vector<feature_vector>& x, const std::vector<double>& y,
                          const model_config& cfg, std::string& error) {
  if (!usable()) {
    error = "no model to refit";
    return false;
  }
  if (x.size() != y.size() || x.size() < 50) {
    error = "refitting needs at least 50 rows with run times";
    return false;
  }
  auto c = cfg;
  c.point_target = point_target_;
  booster p;
  std::array<booster, 4> q;
  if (!fit_all(x, y, 0, x.size(), c, p, q, error, {}))
    return false;
  auto m = std::make_unique<impl>();
  m->b = release_all(p, q);
  for (std::size_t k = 0; k < booster_names.size(); ++k)
    if (!m->finish(k, error))
      return false;
  impl_ = std::move(m);
  meta_["model_digest"] = impl_->digest();
  meta_["refit_rows"] = x.size();
  return true;
}

raw_prediction runtime_model::predict_one(const feature_vector& x) const {
  std::array<float, booster_names.size()> out;
  for (std::size_t k = 0; k < out.size(); ++k)
    out[k] = impl_->flat[k].predict(x.data());
  return finish(x, out.data());
}

bool runtime_model::predict_raw(const std::vector<feature_vector>& x,
                                std::vector<raw_prediction>& out, std::string& error) const {
  if (!usable()) {
    error = "no model loaded";
    return false;
  }
  out.resize(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    out[i] = predict_one(x[i]);
  return true;
}

bool runtime_model::predict_raw_reference(const std::vector<feature_vector>& x,
                                          std::vector<raw_prediction>& out,
                                          std::string& error) const {
  if (!usable()) {
    error = "no model loaded";
    return false;
  }
  out.assign(x.size(), {});
  if (x.empty())
    return true;
  dmatrix d;
  if (!make_dmatrix(x, 0, x.size(), d, error))
    return false;
  std::array<std::vector<float>, booster_names.size()> p;
  for (std::size_t k = 0; k < p.size(); ++k) {
    bst_ulong len = 0;
    const float* res = nullptr;
    if (XGBoosterPredict(impl_->b[k], d.h, 0, 0, 0, &len, &res) != 0) {
      error = xgb::error("prediction failed");
      return false;
    }
    p[k].assign(res, res + len);
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::array<float, booster_names.size()> o;
    for (std::size_t k = 0; k < o.size(); ++k)
      o[k] = p[k][i];
    out[i] = finish(x[i], o.data());
  }
  return true;
}

bool runtime_model::predict(const feature_vector& x, double req, runtime_estimate& out,
                            std::string& error) const {
  if (!usable()) {
    error = "no model loaded";
    return false;
  }
  out = to_estimate(predict_one(x), cal_, req, req);
  return true;
}

bool runtime_model::save(const std::string& path, std::string& error) const {
  if (!usable()) {
    error = path + ": no trained model to save";
    return false;
  }
  nlohmann::json j = meta_;
  for (std::size_t k = 0; k < booster_names.size(); ++k)
    j["boosters"][booster_names[k]] = impl_->json[k];
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << j.dump() << '\n';
  f.close();
  if (!f) {
    error = path + ": cannot write the model file";
    return false;
  }
  return true;
}

bool runtime_model::load(const std::string& path, runtime_model& out, std::string& error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = path + ": cannot open the model file";
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    error = path + ": not a valid model file (JSON: " + e.what() + ")";
    return false;
  }
  auto bad = [&](const std::string& why) {
    error = path + ": " + why;
    return false;
  };
  if (!j.is_object() || j.value("format", std::string()) != format_name)
    return bad("not a tender run-time model (format is not \"" + std::string(format_name) + "\")");
  if (!j.contains("format_version") || !j["format_version"].is_number_integer() ||
      j["format_version"].get<int>() != format_version)
    return bad("format_version " +
               (j.contains("format_version") ? j["format_version"].dump() : "missing") +
               ", this build reads " + std::to_string(format_version) +
               " (retrain it with `tender model train`)");
  if (!j.contains("features") || j["features"] != nlohmann::json(feature_names()))
    return bad("built for other features (its feature list differs from this build's " +
               std::to_string(n_features) + " features)");
  auto lib = library_version();
  auto file_lib = j.value("xgboost_version", std::string());
  if (file_lib.substr(0, file_lib.rfind('.')) != lib.substr(0, lib.rfind('.')))
    return bad("written by XGBoost " + file_lib + ", this build has " + lib);
  if (!j.contains("boosters") || !j["boosters"].is_object())
    return bad("no boosters");
  auto m = std::make_unique<impl>();
  for (std::size_t k = 0; k < booster_names.size(); ++k) {
    auto b = j["boosters"].find(booster_names[k]);
    if (b == j["boosters"].end() || !b->is_string())
      return bad(std::string("booster \"") + booster_names[k] + "\" missing");
    m->json[k] = b->get<std::string>();
  }
  if (m->digest() != j.value("model_digest", std::string()))
    return bad("model_digest does not match the boosters (file damaged or edited)");
  for (std::size_t k = 0; k < booster_names.size(); ++k) {
    if (XGBoosterCreate(nullptr, 0, &m->b[k]) != 0 ||
        XGBoosterLoadModelFromBuffer(m->b[k], m->json[k].data(), m->json[k].size()) != 0)
      return bad(xgb::error(std::string("booster \"") + booster_names[k] + "\" does not load"));
    bst_ulong nf = 0;
    if (XGBoosterGetNumFeature(m->b[k], &nf) != 0 || nf != n_features)
      return bad(std::string("booster \"") + booster_names[k] + "\" has " + std::to_string(nf) +
                 " features, expected " + std::to_string(n_features));
    std::string why;
    if (!m->flat[k].load_json(m->json[k], why))
      return bad(std::string("booster \"") + booster_names[k] + "\": " + why);
  }
  runtime_model r;
  try {
    const auto& c = j.at("calibration");
    if (!r.cal_.set_mode(c.at("mode").get<std::string>()))
      return bad("unknown calibration mode " + c.at("mode").dump());
    r.cal_.lo90 = c.at("lo90").get<double>();
    r.cal_.hi90 = c.at("hi90").get<double>();
    r.cal_.lo80 = c.at("lo80").get<double>();
    r.cal_.hi80 = c.at("hi80").get<double>();
    r.cal_.n = j.value("n_calibration", std::size_t{0});
  } catch (const std::exception& e) {
    return bad(std::string("calibration missing or malformed: ") + e.what());
  }
  r.point_target_ = j.contains("config") && j["config"].is_object()
                        ? j["config"].value("point_target", std::string())
                        : std::string();
  if (!valid_target(r.point_target_))
    return bad("unknown point_target \"" + r.point_target_ + "\"");
  j.erase("boosters");
  r.meta_ = std::move(j);
  r.impl_ = std::move(m);
  out = std::move(r);
  return true;
}

} // namespace tender

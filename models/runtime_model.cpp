#include "models/runtime_model.hpp"

#include <xgboost/c_api.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace tender {

namespace {

constexpr const char* format_name = "tender-runtime-model";
constexpr int format_version = 1;
// Booster order inside the model and the file.
constexpr std::array<const char*, 6> booster_names = {"median", "median_fit", "q05",
                                                      "q95",    "q10",        "q90"};
constexpr std::array<double, 4> quantiles = {0.05, 0.95, 0.10, 0.90};

std::string xgb_error(const std::string& what) {
  return what + ": " + XGBGetLastError();
}

struct dmatrix {
  DMatrixHandle h = nullptr;
  ~dmatrix() {
    if (h)
      XGDMatrixFree(h);
  }
};

bool make_dmatrix(const std::vector<feature_vector>& x, std::size_t from, std::size_t to,
                  dmatrix& out, std::string& error) {
  const float* data = x.empty() ? nullptr : x[from].data();
  std::vector<float> empty(n_features, std::nanf(""));
  if (to == from)
    data = empty.data();
  if (XGDMatrixCreateFromMat(data, std::max<bst_ulong>(to - from, to == from ? 1 : 0),
                             n_features, std::nanf(""), &out.h) != 0) {
    error = xgb_error("cannot build the feature matrix");
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
  auto k = static_cast<std::size_t>(std::clamp(q * static_cast<double>(v.size() - 1), 0.0,
                                               static_cast<double>(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

} // namespace

nlohmann::json model_config::to_json() const {
  return {{"rounds", rounds},       {"max_depth", max_depth},
          {"eta", eta},             {"min_child_weight", min_child_weight},
          {"subsample", subsample}, {"colsample", colsample},
          {"calibration_frac", calibration_frac}, {"seed", seed},
          {"point_target", point_target}};
}

double job_scale(const feature_vector& x) {
  double s = 1;
  if (!std::isnan(x[0]))
    s = std::expm1(static_cast<double>(x[0]));
  else if (!std::isnan(x[n_features - 1]))
    s = std::expm1(static_cast<double>(x[n_features - 1]));
  return std::max(1.0, s);
}

double cqr_score(double lo, double hi, double y) { return std::max(lo - y, y - hi); }

double conformal_quantile(std::vector<double> s, double alpha) {
  if (s.empty())
    return 0;
  auto n = static_cast<double>(s.size());
  auto k = static_cast<std::size_t>(std::ceil((n + 1) * (1 - alpha)));
  k = std::clamp<std::size_t>(k, 1, s.size());
  std::nth_element(s.begin(), s.begin() + static_cast<long>(k - 1), s.end());
  return s[k - 1];
}

runtime_estimate to_estimate(const raw_prediction& r, double add90, double add80, double req,
                             bool cap_interval) {
  auto sec = [](double l) { return std::max(0.0, std::expm1(l)); };
  runtime_estimate e;
  e.median = sec(r.median);
  e.lo90 = sec(r.q05 - add90);
  e.hi90 = sec(r.q95 + add90);
  e.lo80 = sec(r.q10 - add80);
  e.hi80 = sec(r.q90 + add80);
  if (req > 0) {
    e.median = std::min(e.median, req);
    if (cap_interval)
      for (double* v : {&e.lo90, &e.hi90, &e.lo80, &e.hi80})
        *v = std::min(*v, req);
  }
  e.lo90 = std::min(e.lo90, e.median);
  e.lo80 = std::min(e.lo80, e.median);
  e.hi90 = std::max(e.hi90, e.median);
  e.hi80 = std::max(e.hi80, e.median);
  return e;
}

void conformal_window::add(const raw_prediction& r, double runtime_s) {
  double y = std::log1p(std::max(0.0, runtime_s));
  s90_.push_back(cqr_score(r.q05, r.q95, y));
  s80_.push_back(cqr_score(r.q10, r.q90, y));
  while (s90_.size() > size_) {
    s90_.pop_front();
    s80_.pop_front();
  }
}

calibration conformal_window::current(const calibration& fallback, std::size_t min_n) const {
  if (s90_.size() < min_n)
    return fallback;
  calibration c;
  c.add90 = conformal_quantile({s90_.begin(), s90_.end()}, 0.10);
  c.add80 = conformal_quantile({s80_.begin(), s80_.end()}, 0.20);
  c.n = s90_.size();
  return c;
}

struct runtime_model::impl {
  std::array<BoosterHandle, booster_names.size()> b{};
  std::array<std::string, booster_names.size()> json; ///< saved form
  ~impl() {
    for (auto h : b)
      if (h)
        XGBoosterFree(h);
  }
};

runtime_model::runtime_model() = default;
runtime_model::~runtime_model() = default;
runtime_model::runtime_model(runtime_model&&) noexcept = default;
runtime_model& runtime_model::operator=(runtime_model&&) noexcept = default;

bool runtime_model::usable() const { return impl_ && impl_->b[0] != nullptr; }

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

bool set_params(BoosterHandle h, const model_config& c, std::string& error) {
  std::vector<std::pair<std::string, std::string>> p = {
      {"tree_method", "hist"},
      {"max_depth", std::to_string(c.max_depth)},
      {"eta", std::to_string(c.eta)},
      {"min_child_weight", std::to_string(c.min_child_weight)},
      {"subsample", std::to_string(c.subsample)},
      {"colsample_bytree", std::to_string(c.colsample)},
      {"nthread", std::to_string(c.nthread)},
      {"seed", std::to_string(c.seed)},
      {"verbosity", "0"},
  };
  for (auto& [k, v] : p)
    if (XGBoosterSetParam(h, k.c_str(), v.c_str()) != 0) {
      error = xgb_error("cannot set " + k);
      return false;
    }
  return true;
}

bool predict_into(BoosterHandle h, DMatrixHandle d, std::vector<float>& out, int training,
                  std::string& error) {
  bst_ulong len = 0;
  const float* res = nullptr;
  if (XGBoosterPredict(h, d, 0, 0, training, &len, &res) != 0) {
    error = xgb_error("prediction failed");
    return false;
  }
  out.assign(res, res + len);
  return true;
}


/// Trains the point booster (median by absolute error) on `x`, `y` (seconds).
bool train_point(const std::vector<feature_vector>& x, const std::vector<double>& y,
                 const model_config& cfg, BoosterHandle& out, std::string& error,
                 const std::function<void()>& tick) {
  if (cfg.point_target != "ratio" && cfg.point_target != "seconds" && cfg.point_target != "log") {
    error = "unknown point target \"" + cfg.point_target + "\" (ratio, seconds or log)";
    return false;
  }
  const std::size_t n = x.size();
  std::vector<float> ypoint(n), wpoint(n, 1.0f);
  for (std::size_t i = 0; i < n; ++i) {
    double yi = std::max(0.0, y[i]);
    double s = cfg.point_target == "ratio" ? job_scale(x[i]) : 1.0;
    ypoint[i] = static_cast<float>(cfg.point_target == "log" ? std::log1p(yi) : yi / s);
    wpoint[i] = static_cast<float>(s);
  }
  dmatrix all;
  if (!make_dmatrix(x, 0, n, all, error))
    return false;
  if (XGDMatrixSetFloatInfo(all.h, "weight", wpoint.data(), n) != 0 ||
      XGDMatrixSetFloatInfo(all.h, "label", ypoint.data(), n) != 0) {
    error = xgb_error("cannot set labels");
    return false;
  }
  BoosterHandle h = nullptr;
  if (XGBoosterCreate(&all.h, 1, &h) != 0 || !set_params(h, cfg, error) ||
      XGBoosterSetParam(h, "objective", "reg:absoluteerror") != 0) {
    error = error.empty() ? xgb_error("cannot create booster") : error;
    if (h)
      XGBoosterFree(h);
    return false;
  }
  for (int it = 0; it < cfg.rounds; ++it) {
    if (XGBoosterUpdateOneIter(h, it, all.h) != 0) {
      error = xgb_error("training the median model failed");
      XGBoosterFree(h);
      return false;
    }
    if (tick)
      tick();
  }
  if (out)
    XGBoosterFree(out);
  out = h;
  return true;
}

} // namespace

bool runtime_model::train(const std::vector<feature_vector>& x, const std::vector<double>& y,
                          const model_config& cfg, runtime_model& out, std::string& error,
                          const progress_fn& progress) {
  if (x.size() != y.size() || x.size() < 50) {
    error = "training needs at least 50 rows with run times (got " + std::to_string(x.size()) +
            ")";
    return false;
  }
  const std::size_t n = x.size();
  const auto n_fit = static_cast<std::size_t>(static_cast<double>(n) * (1 - cfg.calibration_frac));
  std::vector<float> ylog(n);
  for (std::size_t i = 0; i < n; ++i)
    ylog[i] = static_cast<float>(std::log1p(std::max(0.0, y[i])));

  dmatrix fit, cal;
  if (!make_dmatrix(x, 0, n_fit, fit, error) ||
      !make_dmatrix(x, n_fit, n, cal, error))
    return false;
  if (XGDMatrixSetFloatInfo(fit.h, "label", ylog.data(), n_fit) != 0) {
    error = xgb_error("cannot set labels");
    return false;
  }
  auto m = std::make_unique<impl>();
  const int total = cfg.rounds * static_cast<int>(booster_names.size());
  int done = 0;
  std::function<void()> tick = [&] {
    ++done;
    if (progress && (done % 10 == 0 || done == total))
      progress(done, total);
  };

  // Median boosters: on all rows (the point prediction) and on the fit part (the
  // centre of the calibrated intervals, so calibration rows stay out-of-sample).
  if (!train_point(x, y, cfg, m->b[0], error, tick))
    return false;
  {
    DMatrixHandle d = fit.h;
    if (XGBoosterCreate(&d, 1, &m->b[1]) != 0 || !set_params(m->b[1], cfg, error) ||
        XGBoosterSetParam(m->b[1], "objective", "reg:absoluteerror") != 0) {
      error = error.empty() ? xgb_error("cannot create booster") : error;
      return false;
    }
    for (int it = 0; it < cfg.rounds; ++it, tick())
      if (XGBoosterUpdateOneIter(m->b[1], it, d) != 0) {
        error = xgb_error("training the median model failed");
        return false;
      }
  }

  // Quantile boosters learn offsets from the fit-part median (base_margin).
  std::vector<float> margin_fit, margin_cal;
  if (!predict_into(m->b[1], fit.h, margin_fit, 0, error) ||
      !predict_into(m->b[1], cal.h, margin_cal, 0, error))
    return false;
  XGDMatrixSetFloatInfo(fit.h, "base_margin", margin_fit.data(), n_fit);
  XGDMatrixSetFloatInfo(cal.h, "base_margin", margin_cal.data(), margin_cal.size());
  std::vector<float> grad(n_fit), hess(n_fit, 1.0f), pred;
  std::array<std::vector<float>, 4> cal_pred;
  for (std::size_t q = 0; q < quantiles.size(); ++q) {
    auto& h = m->b[2 + q];
    if (XGBoosterCreate(&fit.h, 1, &h) != 0 || !set_params(h, cfg, error)) {
      error = error.empty() ? xgb_error("cannot create booster") : error;
      return false;
    }
    for (int it = 0; it < cfg.rounds; ++it, tick()) {
      if (!predict_into(h, fit.h, pred, 1, error))
        return false;
      const float tau = static_cast<float>(quantiles[q]);
      for (std::size_t i = 0; i < n_fit; ++i)
        grad[i] = ylog[i] > pred[i] ? -tau : 1.0f - tau;
      if (XGBoosterBoostOneIter(h, fit.h, grad.data(), hess.data(), n_fit) != 0) {
        error = xgb_error("training a quantile model failed");
        return false;
      }
    }
    if (!predict_into(h, cal.h, cal_pred[q], 0, error))
      return false;
  }

  // Split conformal calibration on the later slice.
  std::vector<double> s90, s80;
  for (std::size_t i = 0; i < cal_pred[0].size() && n_fit + i < n; ++i) {
    double yl = ylog[n_fit + i];
    s90.push_back(cqr_score(cal_pred[0][i], cal_pred[1][i], yl));
    s80.push_back(cqr_score(cal_pred[2][i], cal_pred[3][i], yl));
  }
  out.cal_.add90 = conformal_quantile(s90, 0.10);
  out.cal_.add80 = conformal_quantile(s80, 0.20);
  out.cal_.n = s90.size();
  double raw_cov = 0;
  for (double s : s90)
    raw_cov += s <= 0 ? 1 : 0;

  for (std::size_t k = 0; k < booster_names.size(); ++k) {
    bst_ulong len = 0;
    const char* buf = nullptr;
    if (XGBoosterSaveModelToBuffer(m->b[k], R"({"format": "json"})", &len, &buf) != 0) {
      error = xgb_error("cannot serialise booster");
      return false;
    }
    m->json[k].assign(buf, len);
  }
  std::uint64_t md = 1469598103934665603ull;
  for (auto& j : m->json)
    md = fnv(j.data(), j.size(), md);

  out.meta_ = {
      {"format", format_name},
      {"format_version", format_version},
      {"xgboost_version", library_version()},
      {"features", feature_names()},
      {"target", "log1p(run time in seconds)"},
      {"train_digest", digest_rows(x, y)},
      {"n_train", n},
      {"n_calibration", s90.size()},
      {"config", cfg.to_json()},
      {"calibration", {{"add90", out.cal_.add90}, {"add80", out.cal_.add80}}},
      {"metrics",
       {{"calibration_raw_coverage90", s90.empty() ? 0.0 : raw_cov / static_cast<double>(s90.size())},
        {"calibration_score_median", quantile_of(s90, 0.5)}}},
      {"model_digest", hex64(md)},
  };
  out.point_target_ = cfg.point_target;
  out.impl_ = std::move(m);
  return true;
}

bool runtime_model::refit_point(const std::vector<feature_vector>& x,
                                const std::vector<double>& y, const model_config& cfg,
                                std::string& error) {
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
  if (!train_point(x, y, c, impl_->b[0], error, {}))
    return false;
  bst_ulong len = 0;
  const char* buf = nullptr;
  if (XGBoosterSaveModelToBuffer(impl_->b[0], R"({"format": "json"})", &len, &buf) != 0) {
    error = xgb_error("cannot serialise booster");
    return false;
  }
  impl_->json[0].assign(buf, len);
  std::uint64_t md = 1469598103934665603ull;
  for (auto& j : impl_->json)
    md = fnv(j.data(), j.size(), md);
  meta_["model_digest"] = hex64(md);
  meta_["point_refit_rows"] = x.size();
  return true;
}

bool runtime_model::predict_raw(const std::vector<feature_vector>& x,
                                std::vector<raw_prediction>& out, std::string& error) const {
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
  std::vector<float> med, fitmed;
  if (!predict_into(impl_->b[0], d.h, med, 0, error) ||
      !predict_into(impl_->b[1], d.h, fitmed, 0, error))
    return false;
  XGDMatrixSetFloatInfo(d.h, "base_margin", fitmed.data(), fitmed.size());
  std::array<std::vector<float>, 4> q;
  for (std::size_t k = 0; k < 4; ++k)
    if (!predict_into(impl_->b[2 + k], d.h, q[k], 0, error))
      return false;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double m = med[i];
    if (point_target_ == "ratio")
      m = std::log1p(std::max(0.0, m * job_scale(x[i])));
    else if (point_target_ == "seconds")
      m = std::log1p(std::max(0.0, m));
    out[i] = {m, q[0][i], q[1][i], q[2][i], q[3][i]};
  }
  return true;
}

bool runtime_model::predict(const feature_vector& x, double req, runtime_estimate& out,
                            std::string& error) const {
  std::vector<raw_prediction> r;
  if (!predict_raw({x}, r, error))
    return false;
  out = to_estimate(r[0], cal_.add90, cal_.add80, req);
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
    return bad("not a tender run-time model (format is not \"" + std::string(format_name) +
               "\")");
  if (!j.contains("format_version") || !j["format_version"].is_number_integer() ||
      j["format_version"].get<int>() != format_version)
    return bad("format_version " + (j.contains("format_version") ? j["format_version"].dump() : "missing") +
               ", this build reads " + std::to_string(format_version));
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
  std::uint64_t md = 1469598103934665603ull;
  for (std::size_t k = 0; k < booster_names.size(); ++k) {
    auto b = j["boosters"].find(booster_names[k]);
    if (b == j["boosters"].end() || !b->is_string())
      return bad(std::string("booster \"") + booster_names[k] + "\" missing");
    m->json[k] = b->get<std::string>();
    md = fnv(m->json[k].data(), m->json[k].size(), md);
  }
  if (hex64(md) != j.value("model_digest", std::string()))
    return bad("model_digest does not match the boosters (file damaged or edited)");
  for (std::size_t k = 0; k < booster_names.size(); ++k) {
    if (XGBoosterCreate(nullptr, 0, &m->b[k]) != 0 ||
        XGBoosterLoadModelFromBuffer(m->b[k], m->json[k].data(), m->json[k].size()) != 0)
      return bad(xgb_error(std::string("booster \"") + booster_names[k] + "\" does not load"));
    bst_ulong nf = 0;
    if (XGBoosterGetNumFeature(m->b[k], &nf) != 0 || nf != n_features)
      return bad(std::string("booster \"") + booster_names[k] + "\" has " + std::to_string(nf) +
                 " features, expected " + std::to_string(n_features));
  }
  runtime_model r;
  try {
    r.cal_.add90 = j.at("calibration").at("add90").get<double>();
    r.cal_.add80 = j.at("calibration").at("add80").get<double>();
    r.cal_.n = j.value("n_calibration", std::size_t{0});
  } catch (const std::exception& e) {
    return bad(std::string("calibration missing or malformed: ") + e.what());
  }
  r.point_target_ = j.contains("config") && j["config"].is_object()
                        ? j["config"].value("point_target", std::string("log"))
                        : std::string("log");
  if (r.point_target_ != "ratio" && r.point_target_ != "seconds" && r.point_target_ != "log")
    return bad("unknown point_target \"" + r.point_target_ + "\"");
  j.erase("boosters");
  r.meta_ = std::move(j);
  r.impl_ = std::move(m);
  out = std::move(r);
  return true;
}

} // namespace tender

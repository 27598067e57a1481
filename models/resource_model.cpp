#include "models/resource_model.hpp"

#include "models/runtime_model.hpp"
#include "models/xgb_predictor.hpp"

#include "models/xgb_handles.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace tender {

namespace {

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr std::size_t keep_user = 10;
constexpr std::size_t keep_template = 5;
constexpr std::size_t keep_global = 200;
/// Floors before the log: 1 byte, a thousandth of a core.
constexpr std::array<double, 2> floor_of = {1.0, 1e-3};

std::size_t idx(resource_kind k) { return k == resource_kind::memory ? 0 : 1; }

float f(double v) { return static_cast<float>(v); }

double mean_of(const std::deque<double>& d) {
  double s = 0;
  for (double v : d)
    s += v;
  return s / static_cast<double>(d.size());
}

/// The log of a job's processors (0 when unknown).
double log_procs(const trace_job& j) {
  return j.procs > 0 ? std::log(static_cast<double>(j.procs)) : 0.0;
}

/// The booster's target space: the log of the job's total usage.
double to_z(double y, resource_kind k) { return std::log(std::max(y, floor_of[idx(k)])); }

std::int64_t req_key(const trace_job& j) {
  return j.req_time > 0 ? static_cast<std::int64_t>(std::llround(j.req_time)) : -1;
}

using xgb::dmatrix;

bool make_dmatrix(const std::vector<resource_features>& x, dmatrix& out, std::string& error) {
  if (x.empty()) {
    error = "no rows";
    return false;
  }
  if (XGDMatrixCreateFromMat(x.front().data(), x.size(), n_resource_features, nan_f, &out.h) !=
      0) {
    error = xgb::error("cannot build the usage feature matrix");
    return false;
  }
  return true;
}

double median_of(std::vector<double> v) {
  if (v.empty())
    return 0;
  auto mid = v.begin() + static_cast<long>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

/// A median booster on log-space targets.
class booster {
public:
  booster() = default;
  booster(const booster&) = delete;
  booster& operator=(const booster&) = delete;
  ~booster() {
    if (h_)
      XGBoosterFree(h_);
  }

  /// Fits `z - anchor`: the anchor is each row's starting point (base_margin).
  bool train(const std::vector<resource_features>& x, const std::vector<double>& z,
             const std::vector<double>& anchor, const resource_config& c, std::string& error) {
    dmatrix d;
    if (!make_dmatrix(x, d, error))
      return false;
    std::vector<float> label(z.begin(), z.end()), margin(anchor.begin(), anchor.end());
    if (XGDMatrixSetFloatInfo(d.h, "label", label.data(), label.size()) != 0 ||
        XGDMatrixSetFloatInfo(d.h, "base_margin", margin.data(), margin.size()) != 0) {
      error = xgb::error("cannot set usage labels");
      return false;
    }
    BoosterHandle h = nullptr;
    if (XGBoosterCreate(&d.h, 1, &h) != 0) {
      error = xgb::error("cannot create a usage booster");
      return false;
    }
    const std::vector<std::pair<std::string, std::string>> params = {
        {"objective", "reg:squarederror"},
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
    for (const auto& [k, v] : params)
      if (XGBoosterSetParam(h, k.c_str(), v.c_str()) != 0) {
        error = xgb::error("cannot set " + k);
        XGBoosterFree(h);
        return false;
      }
    // Squared error in log space (the geometric mean around the anchor): the margin
    // below makes it the high quantile, and it trains several times faster than
    // reg:absoluteerror, whose tails came out no tighter here.
    for (int it = 0; it < c.rounds; ++it)
      if (XGBoosterUpdateOneIter(h, it, d.h) != 0) {
        error = xgb::error("training a usage booster failed");
        XGBoosterFree(h);
        return false;
      }
    if (h_)
      XGBoosterFree(h_);
    h_ = h;
    return true;
  }

  bool predict(const std::vector<resource_features>& x, const std::vector<double>& anchor,
               std::vector<double>& out, std::string& error) const {
    dmatrix d;
    if (!make_dmatrix(x, d, error))
      return false;
    std::vector<float> margin(anchor.begin(), anchor.end());
    if (XGDMatrixSetFloatInfo(d.h, "base_margin", margin.data(), margin.size()) != 0) {
      error = xgb::error("cannot set usage anchors");
      return false;
    }
    bst_ulong len = 0;
    const float* res = nullptr;
    if (XGBoosterPredict(h_, d.h, 0, 0, 0, &len, &res) != 0) {
      error = xgb::error("usage prediction failed");
      return false;
    }
    out.assign(res, res + len);
    return true;
  }

private:
  BoosterHandle h_ = nullptr;
};

} // namespace

const char* to_string(resource_kind k) { return k == resource_kind::memory ? "memory" : "cpu"; }

double usage_target(const usage_job& j, resource_kind k) {
  return k == resource_kind::memory ? j.mem_bytes : j.cpu_cores;
}

std::vector<usage_job> usage_records(const swf_trace& t) {
  auto recs = to_records(t);
  std::vector<usage_job> out;
  out.reserve(recs.size());
  std::size_t r = 0;
  for (const auto& s : t.jobs) {
    if (s.run < 0) // the filter of `to_records`
      continue;
    usage_job u;
    u.job = recs[r++];
    const std::int64_t procs = s.procs > 0 ? s.procs : s.procs_req;
    if (s.mem_used > 0 && procs > 0)
      u.mem_bytes = static_cast<double>(s.mem_used) * 1024.0 * static_cast<double>(procs);
    if (s.cpu_avg >= 0 && s.run > 0 && procs > 0)
      u.cpu_cores = s.cpu_avg * static_cast<double>(procs) / static_cast<double>(s.run);
    if (s.mem_req > 0)
      u.mem_req_bytes = t.columns == 21 ? static_cast<double>(s.mem_req)
                                        : static_cast<double>(s.mem_req) * 1024.0 *
                                              static_cast<double>(std::max<std::int64_t>(
                                                  s.procs_any(), 1));
    out.push_back(u);
  }
  return out;
}

std::vector<usage_job> usage_records(const std::vector<finished_job>& history) {
  std::vector<usage_job> out;
  out.reserve(history.size());
  for (const auto& h : history) {
    usage_job u;
    u.job = xgb_predictor::to_record(h.spec, h.submitted_at);
    u.job.runtime = static_cast<double>(std::max<usec>(h.runtime, 0)) / sec_us;
    u.job.end = u.job.submit + u.job.runtime;
    if (h.mem_peak > 0)
      u.mem_bytes = static_cast<double>(h.mem_peak);
    if (h.cpu_mean > 0)
      u.cpu_cores = h.cpu_mean;
    if (h.spec.hints.memory > 0)
      u.mem_req_bytes = static_cast<double>(h.spec.hints.memory);
    out.push_back(u);
  }
  std::stable_sort(out.begin(), out.end(), [](const usage_job& a, const usage_job& b) {
    return a.job.submit < b.job.submit;
  });
  return out;
}

const std::vector<std::string>& usage_feature_names() {
  static const std::vector<std::string> names = {
      "use_user_last_log",   "use_user_mean10_log",  "use_user_max10_log",
      "use_user_std10_log",  "use_user_n_log",       "use_user_last_per_proc_log",
      "use_user_mean_per_proc_log", "use_tmpl_procs_last_log", "use_tmpl_procs_mean_log",
      "use_tmpl_exe_last_log", "use_tmpl_exe_mean_log", "use_tmpl_req_last_log",
      "use_global_recent_median_log", "use_vpa_p90_log", "use_vpa_p50_log",
      "req_memory_log",      "use_anchor_total_log", "use_anchor_per_proc_log",
      "use_global_recent_std_log"};
  return names;
}

void usage_history::series::push(double x, std::size_t keep) {
  v.push_back(x);
  while (v.size() > keep)
    v.pop_front();
}

vpa_options usage_history::cpu_vpa() {
  vpa_options o;
  o.buckets = vpa_buckets::cpu();
  return o;
}

usage_history::usage_history(const vpa_options& mem, const vpa_options& cpu)
    : vpa_{vpa_recommender(mem), vpa_recommender(cpu)} {}

const vpa_recommender& usage_history::recommender(resource_kind k) const { return vpa_[idx(k)]; }

void usage_history::finished(const usage_job& j) {
  for (auto k : {resource_kind::memory, resource_kind::cpu}) {
    const double y = usage_target(j, k);
    if (y < 0)
      continue;
    const auto i = idx(k);
    const double lv = to_z(y, k);
    auto& u = users_[i][j.job.user];
    u.value.push(lv, keep_user);
    u.per_proc.push(lv - log_procs(j.job), keep_user);
    if (j.job.procs > 0)
      u.by_procs[j.job.procs].push(lv, keep_template);
    if (j.job.exe >= 0)
      u.by_exe[j.job.exe].push(lv, keep_template);
    if (auto r = req_key(j.job); r >= 0)
      u.by_req[r].push(lv, keep_template);
    global_[i].push_back(lv);
    if (global_[i].size() > keep_global)
      global_[i].pop_front();
    vpa_[i].observe(j.job.user, j.job.exe, y, j.job.end);
  }
}

double usage_history::vpa(const usage_job& j, resource_kind k) const {
  return vpa_[idx(k)].recommend(j.job.user, j.job.exe).value;
}

std::array<float, n_usage_features> usage_history::features(const usage_job& j,
                                                             resource_kind k) const {
  std::array<float, n_usage_features> x;
  x.fill(nan_f);
  const auto i = idx(k);
  if (!global_[i].empty()) {
    std::vector<double> g(global_[i].begin(), global_[i].end());
    std::nth_element(g.begin(), g.begin() + static_cast<long>(g.size() / 2), g.end());
    x[12] = f(g[g.size() / 2]);
    const double m = mean_of(global_[i]);
    double var = 0;
    for (double e : global_[i])
      var += (e - m) * (e - m);
    x[18] = f(std::sqrt(var / static_cast<double>(global_[i].size())));
  }
  const auto& rec = vpa_[i];
  if (double p90 = rec.percentile(j.job.user, j.job.exe, 0.9); p90 >= 0) {
    x[13] = f(to_z(p90, k));
    x[14] = f(to_z(rec.percentile(j.job.user, j.job.exe, 0.5), k));
  }
  if (j.mem_req_bytes > 0)
    x[15] = f(std::log(j.mem_req_bytes));
  auto it = users_[i].find(j.job.user);
  if (it == users_[i].end()) {
    x[4] = 0;
    return x;
  }
  const auto& u = it->second;
  if (!u.value.v.empty()) {
    const auto& v = u.value.v;
    x[0] = f(v.back());
    const double m = mean_of(v);
    x[1] = f(m);
    x[2] = f(*std::max_element(v.begin(), v.end()));
    double var = 0;
    for (double e : v)
      var += (e - m) * (e - m);
    x[3] = f(std::sqrt(var / static_cast<double>(v.size())));
    x[5] = f(u.per_proc.v.back());
    x[6] = f(mean_of(u.per_proc.v));
    x[16] = x[1];
    x[17] = f(mean_of(u.per_proc.v) + log_procs(j.job));
  }
  x[4] = f(std::log1p(static_cast<double>(u.value.v.size())));
  auto tmpl = [&](const std::unordered_map<std::int64_t, series>& m, std::int64_t key,
                  std::size_t last_i, std::size_t mean_i) {
    if (key < 0)
      return;
    auto t = m.find(key);
    if (t == m.end() || t->second.v.empty())
      return;
    x[last_i] = f(t->second.v.back());
    if (mean_i < n_usage_features)
      x[mean_i] = f(mean_of(t->second.v));
  };
  tmpl(u.by_procs, j.job.procs, 7, 8);
  tmpl(u.by_exe, j.job.exe, 9, 10);
  tmpl(u.by_req, req_key(j.job), 11, n_usage_features);
  return x;
}

nlohmann::json resource_config::to_json() const {
  return {{"rounds", rounds},
          {"max_depth", max_depth},
          {"eta", eta},
          {"min_child_weight", min_child_weight},
          {"target_under_memory", target_under_memory},
          {"target_under_cpu", target_under_cpu},
          {"calibration_frac", calibration_frac},
          {"window", window},
          {"refit_every", refit_every},
          {"train_frac", train_frac}};
}

resource_metrics score_usage(const std::vector<double>& pred, const std::vector<double>& actual) {
  resource_metrics m;
  if (pred.empty())
    return m;
  std::vector<double> err(pred.size());
  double under = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    err[i] = std::abs(pred[i] - actual[i]);
    m.mae += err[i];
    under += pred[i] < actual[i] ? 1 : 0;
    m.mean_pred += pred[i];
    m.mean_actual += actual[i];
  }
  const auto n = static_cast<double>(pred.size());
  m.mae /= n;
  m.under_rate = under / n;
  m.mean_pred /= n;
  m.mean_actual /= n;
  auto mid = err.begin() + static_cast<long>(err.size() / 2);
  std::nth_element(err.begin(), mid, err.end());
  m.medae = *mid;
  if (err.size() % 2 == 0)
    m.medae = (m.medae + *std::max_element(err.begin(), mid)) / 2;
  return m;
}

namespace {

/// One target's evaluation over features computed by a single replay.
bool evaluate_kind(const std::vector<usage_job>& jobs, resource_kind k,
                   const std::vector<resource_features>& x, const std::vector<double>& vpa,
                   const resource_config& cfg, resource_eval& out, std::string& error) {
  const double target_under =
      k == resource_kind::memory ? cfg.target_under_memory : cfg.target_under_cpu;
  std::vector<std::size_t> rows; // jobs with the target, in submit order
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (usage_target(jobs[i], k) >= 0)
      rows.push_back(i);
  out.n_jobs = rows.size();
  if (rows.size() < cfg.min_jobs) {
    out.why = rows.empty() ? std::string("no job has a measured ") +
                                 (k == resource_kind::memory ? "memory peak" : "CPU time")
                           : std::to_string(rows.size()) + " jobs have a measured " +
                                 (k == resource_kind::memory ? "memory peak" : "CPU time") +
                                 " (at least " + std::to_string(cfg.min_jobs) + " needed)";
    return true;
  }
  const auto split = static_cast<std::size_t>(static_cast<double>(rows.size()) * cfg.train_frac);
  auto z_of = [&](std::size_t i) { return to_z(usage_target(jobs[i], k), k); };
  // Rows finished before `t`, in submit order.
  auto finished_before = [&](std::size_t upto, double t) {
    std::vector<std::size_t> r;
    for (std::size_t a = 0; a < upto; ++a)
      if (jobs[rows[a]].job.end < t)
        r.push_back(rows[a]);
    return r;
  };
  const double t_split = jobs[rows[split]].job.submit;
  const auto train = finished_before(split, t_split);
  if (train.size() < cfg.min_jobs / 2 + 5) {
    out.why = "only " + std::to_string(train.size()) +
              " jobs with the target had finished when the test period began";
    return true;
  }
  // The anchor: the user's usual total, or usual usage per processor times the job's
  // processors, whichever was closer on the training slice; the recent global median
  // for a user without history.
  std::vector<double> train_z;
  for (auto i : train)
    train_z.push_back(z_of(i));
  const double z_median = median_of(train_z);
  auto anchor_with = [&](std::size_t i, std::size_t which) {
    for (std::size_t c : {n_features + which, n_features + 12})
      if (!std::isnan(x[i][c]))
        return static_cast<double>(x[i][c]);
    return z_median;
  };
  std::size_t anchor_col = 16;
  {
    double err16 = 0, err17 = 0;
    for (std::size_t a = 0; a < train.size(); ++a) {
      err16 += std::abs(train_z[a] - anchor_with(train[a], 16));
      err17 += std::abs(train_z[a] - anchor_with(train[a], 17));
    }
    anchor_col = err17 < err16 ? 17 : 16;
  }
  out.anchor = anchor_col == 16 ? "user's total" : "user's per processor x processors";
  // How uncertain a job is: the spread of its user's recent usage (of all recent jobs
  // for a user with fewer than two), plus a floor. Margins scale with it, so users whose
  // usage never changes get a thin margin and erratic ones a wide one.
  bool scaled = false; // chosen on the calibration slice below
  auto spread = [&](std::size_t i) {
    if (!scaled)
      return 1.0;
    const auto& r = x[i];
    const bool known = !std::isnan(r[n_features + 4]) && r[n_features + 4] >= std::log(3.0) &&
                       !std::isnan(r[n_features + 3]);
    double sp = known ? r[n_features + 3] : r[n_features + 18];
    return cfg.spread_floor + (std::isnan(sp) ? 0.5 : std::min(sp, 1.0));
  };
  auto gather = [&](const std::vector<std::size_t>& r, std::vector<resource_features>& xs,
                    std::vector<double>& zs, std::vector<double>& an) {
    xs.clear();
    zs.clear();
    an.clear();
    for (auto i : r) {
      xs.push_back(x[i]);
      zs.push_back(z_of(i));
      an.push_back(anchor_with(i, anchor_col));
    }
  };
  // Calibration slice: a booster on the earlier part scores the later part.
  std::deque<double> window;
  {
    const auto n_fit = std::max<std::size_t>(
        5, static_cast<std::size_t>(static_cast<double>(train.size()) * (1 - cfg.calibration_frac)));
    std::vector<std::size_t> fit(train.begin(), train.begin() + static_cast<long>(n_fit));
    std::vector<std::size_t> cal(train.begin() + static_cast<long>(n_fit), train.end());
    std::vector<resource_features> xs;
    std::vector<double> zs, an, pz;
    gather(fit, xs, zs, an);
    booster b;
    if (!b.train(xs, zs, an, cfg, error))
      return false;
    if (!cal.empty()) {
      gather(cal, xs, zs, an);
      if (!b.predict(xs, an, pz, error))
        return false;
      // A flat margin or one scaled by the user's spread: whichever reaches the target
      // rate on this slice with the smaller absolute error.
      double best = -1;
      for (bool sc : {false, true}) {
        scaled = sc;
        std::vector<double> sco;
        for (std::size_t a = 0; a < zs.size(); ++a)
          sco.push_back((zs[a] - pz[a]) / spread(cal[a]));
        const double q = conformal_quantile(sco, target_under);
        double mae = 0;
        for (std::size_t a = 0; a < zs.size(); ++a)
          mae += std::abs(std::exp(pz[a] + q * spread(cal[a])) - std::exp(zs[a]));
        if (best < 0 || mae < best) {
          best = mae;
          window.assign(sco.begin(), sco.end());
          out.margin_scaled = sc;
        }
      }
      scaled = out.margin_scaled;
    }
  }

  // Predict the test rows chunk by chunk, refitting before each later chunk.
  std::vector<double> fz(rows.size(), 0.0);
  booster model;
  const std::size_t chunk = cfg.refit_every > 0 ? cfg.refit_every : rows.size();
  for (std::size_t a = split; a < rows.size(); a += chunk) {
    const std::size_t b = std::min(rows.size(), a + chunk);
    std::vector<resource_features> xs;
    std::vector<double> zs, an;
    gather(a == split ? train : finished_before(a, jobs[rows[a]].job.submit), xs, zs, an);
    if (!model.train(xs, zs, an, cfg, error))
      return false;
    if (a > split)
      ++out.refits;
    gather(std::vector<std::size_t>(rows.begin() + static_cast<long>(a),
                                    rows.begin() + static_cast<long>(b)),
           xs, zs, an);
    std::vector<double> p;
    if (!model.predict(xs, an, p, error))
      return false;
    std::copy(p.begin(), p.end(), fz.begin() + static_cast<long>(a));
  }

  // Online margin: walk submissions and finishes of the test rows in event order; a
  // test job's residual joins the window once it has finished.
  std::vector<trace_job> test_jobs;
  for (std::size_t r = split; r < rows.size(); ++r)
    test_jobs.push_back(jobs[rows[r]].job);
  std::vector<double> pred(test_jobs.size()), actual(test_jobs.size()), base(test_jobs.size());
  double margin = 0;
  auto current_margin = [&] {
    return window.empty()
               ? 0.0
               : conformal_quantile(std::vector<double>(window.begin(), window.end()),
                                    target_under);
  };
  for_each_event(
      test_jobs,
      [&](std::size_t t) {
        const std::size_t i = rows[split + t];
        margin = current_margin();
        pred[t] = std::exp(fz[split + t] + margin * spread(i));
        actual[t] = usage_target(jobs[i], k);
        base[t] = std::max(0.0, vpa[i]);
      },
      [&](std::size_t t) {
        const std::size_t i = rows[split + t];
        window.push_back((z_of(i) - fz[split + t]) / spread(i));
        while (window.size() > cfg.window)
          window.pop_front();
      });
  out.available = true;
  out.n_train = train.size();
  out.n_test = test_jobs.size();
  out.tender = score_usage(pred, actual);
  out.vpa = score_usage(base, actual);
  out.final_margin = current_margin();
  return true;
}

} // namespace

usage_rows replay_usage(const std::vector<usage_job>& jobs, resource_kind k) {
  std::vector<trace_job> recs;
  recs.reserve(jobs.size());
  for (const auto& j : jobs)
    recs.push_back(j.job);
  usage_rows out;
  out.x.resize(jobs.size());
  out.vpa.assign(jobs.size(), -1.0);
  job_history h;
  usage_history u;
  replay(
      recs, h,
      [&](const replay_row& r) {
        // Only the job's submit-time fields are visible here.
        usage_job at_submit = jobs[r.index];
        at_submit.job.runtime = at_submit.job.end = -1;
        at_submit.mem_bytes = at_submit.cpu_cores = -1;
        auto& row = out.x[r.index];
        std::copy(r.x.begin(), r.x.end(), row.begin());
        auto e = u.features(at_submit, k);
        std::copy(e.begin(), e.end(), row.begin() + n_features);
        out.vpa[r.index] = u.vpa(at_submit, k);
      },
      [&](std::size_t i) { u.finished(jobs[i]); });
  return out;
}

bool evaluate_resources(const std::vector<usage_job>& jobs, const resource_config& cfg,
                        resource_report& out, std::string& error) {
  for (auto k : {resource_kind::memory, resource_kind::cpu}) {
    auto& e = k == resource_kind::memory ? out.memory : out.cpu;
    e = resource_eval{};
    const bool any = std::any_of(jobs.begin(), jobs.end(),
                                 [&](const usage_job& j) { return usage_target(j, k) >= 0; });
    usage_rows rows;
    if (any)
      rows = replay_usage(jobs, k);
    else
      rows.x.resize(jobs.size());
    if (!evaluate_kind(jobs, k, rows.x, rows.vpa, cfg, e, error)) {
      error = std::string(to_string(k)) + ": " + error;
      return false;
    }
  }
  return true;
}

bool evaluate_swf_resources(const std::string& path, const swf_options& opt,
                            const resource_config& cfg, resource_report& out,
                            std::string& error) {
  swf_trace t;
  if (!read_swf(path, opt, t, error))
    return false;
  if (!evaluate_resources(usage_records(t), cfg, out, error)) {
    error = path + ": " + error;
    return false;
  }
  if (!out.memory.available && out.memory.n_jobs == 0)
    out.memory.why += " (SWF field 7, used memory, is -1 throughout)";
  if (!out.cpu.available && out.cpu.n_jobs == 0)
    out.cpu.why += " (SWF field 6, average CPU time used, is -1 throughout)";
  return true;
}

bool evaluate_history(const std::vector<finished_job>& history, const resource_config& cfg,
                      resource_report& out, std::string& error) {
  return evaluate_resources(usage_records(history), cfg, out, error);
}

nlohmann::json resource_report::to_json() const {
  auto side = [](const resource_eval& e, const char* unit) -> nlohmann::json {
    if (!e.available)
      return nullptr;
    auto pm = [&](const resource_metrics& m) {
      return nlohmann::json{{std::string("mae_") + unit, m.mae},
                            {std::string("medae_") + unit, m.medae},
                            {"under_rate", m.under_rate},
                            {std::string("mean_pred_") + unit, m.mean_pred}};
    };
    return {{"tender", pm(e.tender)},
            {"vpa", pm(e.vpa)},
            {"n_train", e.n_train},
            {"n_test", e.n_test},
            {std::string("mean_actual_") + unit, e.tender.mean_actual},
            {"margin_log", e.final_margin},
            {"anchor", e.anchor},
            {"margin_scaled_by_user_spread", e.margin_scaled},
            {"refits", e.refits}};
  };
  nlohmann::json j{{"memory", side(memory, "bytes")}, {"cpu", side(cpu, "cores")}};
  if (!memory.available)
    j["memory_unavailable"] = memory.why;
  if (!cpu.available)
    j["cpu_unavailable"] = cpu.why;
  return j;
}

std::string resource_report::table() const {
  std::string s;
  char buf[256];
  auto block = [&](const char* title, const resource_eval& e, double unit, const char* uname,
                   const char* fmt) {
    if (!e.available) {
      std::snprintf(buf, sizeof buf, "%s: not evaluated: %s\n", title, e.why.c_str());
      s += buf;
      return;
    }
    std::snprintf(buf, sizeof buf, "%s: %zu jobs measured, %zu training, %zu test\n", title,
                  e.n_jobs, e.n_train, e.n_test);
    s += buf;
    std::snprintf(buf, sizeof buf, "%-8s %12s %12s %7s %12s\n", "", (std::string("MAE ") + uname).c_str(),
                  (std::string("medAE ") + uname).c_str(), "under",
                  (std::string("mean ") + uname).c_str());
    s += buf;
    auto row = [&](const char* name, const resource_metrics& m) {
      std::string f = std::string("%-8s ") + fmt + " " + fmt + " %7.3f " + fmt + "\n";
      std::snprintf(buf, sizeof buf, f.c_str(), name, m.mae / unit, m.medae / unit,
                    m.under_rate, m.mean_pred / unit);
      s += buf;
    };
    row("tender", e.tender);
    row("vpa", e.vpa);
    std::snprintf(buf, sizeof buf, "%-8s %12s %12s %7s ", "actual", "", "", "");
    s += buf;
    std::snprintf(buf, sizeof buf, (std::string(fmt) + "\n").c_str(), e.tender.mean_actual / unit);
    s += buf;
  };
  block("memory peak", memory, 1024.0 * 1024.0, "MiB", "%12.1f");
  s += "\n";
  block("CPU (mean cores)", cpu, 1.0, "cores", "%12.3f");
  return s;
}

} // namespace tender

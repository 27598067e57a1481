#include "models/retrainer.hpp"

#include "models/xgb_predictor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tender {

trace_job history_record(const finished_job& j) {
  auto r = xgb_predictor::to_record(j.spec, j.submitted_at);
  r.runtime = static_cast<double>(j.runtime) / sec_us;
  r.end = j.finished_at > 0 ? static_cast<double>(j.finished_at) / sec_us : r.submit + r.runtime;
  if (r.end < r.submit + r.runtime)
    r.end = r.submit + r.runtime;
  return r;
}

std::vector<trace_job> history_records(const std::vector<finished_job>& jobs) {
  std::vector<trace_job> out;
  out.reserve(jobs.size());
  for (auto& j : jobs)
    out.push_back(history_record(j));
  std::stable_sort(out.begin(), out.end(),
                   [](const trace_job& a, const trace_job& b) { return a.submit < b.submit; });
  return out;
}

namespace {

/// Median run times (seconds) the model gives `rows`, with its static calibration.
bool model_medians(const runtime_model& m, const std::vector<feature_vector>& x,
                   const std::vector<double>& req, const std::vector<double>& cap_s,
                   std::vector<double>& out, std::string& error) {
  std::vector<raw_prediction> raw;
  if (!m.predict_raw(x, raw, error))
    return false;
  out.resize(raw.size());
  auto& cal = m.static_calibration();
  for (std::size_t i = 0; i < raw.size(); ++i)
    out[i] = to_estimate(raw[i], cal, req[i], cap_s[i]).median;
  return true;
}

double mae(const std::vector<double>& pred, const std::vector<double>& actual) {
  double s = 0;
  for (std::size_t i = 0; i < pred.size(); ++i)
    s += std::abs(pred[i] - actual[i]);
  return pred.empty() ? 0 : s / static_cast<double>(pred.size());
}

} // namespace

retrain_outcome retrain_runtime(const std::vector<finished_job>& jobs,
                                const runtime_model* current, const retrain_options& opt,
                                runtime_model& candidate) {
  retrain_outcome out;
  bool have_current = current != nullptr && current->usable();
  out.old_version = have_current ? current->version() : "baseline:last2";
  if (jobs.size() < opt.min_jobs) {
    out.reason = std::to_string(jobs.size()) + " finished jobs, retraining needs " +
                 std::to_string(opt.min_jobs);
    return out;
  }
  auto recs = history_records(jobs);
  const std::size_t n = recs.size();
  auto n_hold = std::max(opt.min_holdout,
                         static_cast<std::size_t>(std::ceil(static_cast<double>(n) *
                                                            opt.holdout_frac)));
  if (n_hold >= n) {
    out.reason = "too few jobs to hold out " + std::to_string(n_hold);
    return out;
  }
  const std::size_t cut = n - n_hold;
  const double t_cut = recs[cut].submit;

  std::vector<feature_vector> x(n);
  std::vector<double> last2(n), med(n);
  std::vector<double> cap(n);
  job_history h;
  replay(recs, h, [&](const replay_row& r) {
    x[r.index] = r.x;
    last2[r.index] = r.last2;
    med[r.index] = r.median;
    cap[r.index] = r.cap_s;
  });

  std::vector<feature_vector> xt;
  std::vector<double> yt;
  for (std::size_t i = 0; i < cut; ++i)
    if (recs[i].end < t_cut) {
      xt.push_back(x[i]);
      yt.push_back(recs[i].runtime);
    }
  out.n_train = xt.size();
  out.n_holdout = n_hold;
  std::string err;
  runtime_model cand;
  if (!runtime_model::train(xt, yt, opt.model, cand, err)) {
    out.reason = "training failed: " + err;
    return out;
  }
  out.new_version = cand.version();

  std::vector<feature_vector> xh(x.begin() + static_cast<long>(cut), x.end());
  std::vector<double> req, actual, base;
  std::vector<double> caps(cap.begin() + static_cast<long>(cut), cap.end());
  for (std::size_t i = cut; i < n; ++i) {
    req.push_back(recs[i].req_time);
    actual.push_back(recs[i].runtime);
    base.push_back(last2[i] > 0 ? last2[i] : std::max(0.0, med[i]));
  }
  std::vector<double> pn, po;
  if (!model_medians(cand, xh, req, caps, pn, err)) {
    out.reason = "candidate failed to predict: " + err;
    return out;
  }
  if (have_current) {
    if (!model_medians(*current, xh, req, caps, po, err)) {
      // A current model that cannot predict any more is worse than any that can.
      po.assign(xh.size(), -1);
      out.old_mae_s = -1;
    }
  } else {
    po = base;
  }
  out.trained = true;
  out.new_mae_s = mae(pn, actual);
  out.old_mae_s = po.empty() || po.front() < 0 ? -1 : mae(po, actual);
  out.replaced = out.old_mae_s < 0 || out.new_mae_s < out.old_mae_s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: MAE %.1f s (%s) vs %.1f s (%s) on the newest %zu jobs, %zu "
                "trained on",
                out.replaced ? "replaced" : "kept the current model", out.old_mae_s,
                out.old_version.c_str(), out.new_mae_s, out.new_version.c_str(), n_hold, xt.size());
  out.reason = buf;
  if (out.replaced)
    candidate = std::move(cand);
  return out;
}

} // namespace tender

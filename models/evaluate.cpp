#include "models/evaluate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace tender {

point_metrics score_points(const std::vector<double>& pred, const std::vector<double>& actual) {
  point_metrics m;
  if (pred.empty())
    return m;
  std::vector<double> err(pred.size());
  double under = 0, sum = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    err[i] = std::abs(pred[i] - actual[i]);
    sum += err[i];
    under += pred[i] < actual[i] ? 1 : 0;
  }
  auto n = static_cast<double>(pred.size());
  m.mae_s = sum / n;
  auto mid = err.begin() + static_cast<long>(err.size() / 2);
  std::nth_element(err.begin(), mid, err.end());
  m.medae_s = *mid;
  if (err.size() % 2 == 0)
    m.medae_s = (m.medae_s + *std::max_element(err.begin(), mid)) / 2;
  m.under_rate = under / n;
  return m;
}

double user_estimate(const trace_job& j, double history_median) {
  if (j.req_time > 0)
    return j.req_time;
  return history_median >= 0 ? history_median : 0;
}

void training_rows(const std::vector<trace_job>& jobs, std::vector<feature_vector>& x,
                   std::vector<double>& y) {
  x.clear();
  y.clear();
  job_history h;
  replay(jobs, h, [&](const replay_row& r) {
    x.push_back(r.x);
    y.push_back(jobs[r.index].runtime);
  });
}

bool evaluate(const std::vector<trace_job>& jobs, const eval_options& opt, eval_report& out,
              std::string& error, const progress_fn& progress) {
  const std::size_t n = jobs.size();
  const auto split = static_cast<std::size_t>(static_cast<double>(n) * opt.train_frac);
  if (split < 50 || split >= n) {
    error = "too few jobs for a " + std::to_string(opt.train_frac) + " split (" +
            std::to_string(n) + " jobs)";
    return false;
  }
  std::vector<feature_vector> x(n);
  std::vector<double> last2(n), med(n);
  std::vector<double> cap(n);
  job_history h;
  replay(jobs, h, [&](const replay_row& r) {
    x[r.index] = r.x;
    last2[r.index] = r.last2;
    med[r.index] = r.median;
    cap[r.index] = r.cap_s;
  });

  // Train on the jobs that had finished when the test period began.
  const double t_split = jobs[split].submit;
  std::vector<feature_vector> xt;
  std::vector<double> yt;
  for (std::size_t i = 0; i < split; ++i)
    if (jobs[i].end < t_split) {
      xt.push_back(x[i]);
      yt.push_back(jobs[i].runtime);
    }
  auto t0 = std::chrono::steady_clock::now();
  runtime_model model;
  if (!runtime_model::train(xt, yt, opt.model, model, error, progress))
    return false;
  out.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Predict chunk by chunk; before each later chunk, refit the boosters on every
  // job that had finished when the chunk's first job was submitted.
  std::vector<raw_prediction> raw;
  const std::size_t chunk = opt.retrain_every > 0 ? opt.retrain_every : n;
  for (std::size_t a = split; a < n; a += chunk) {
    const std::size_t b = std::min(n, a + chunk);
    if (a > split) {
      std::vector<feature_vector> xr;
      std::vector<double> yr;
      for (std::size_t i = 0; i < a; ++i)
        if (jobs[i].end < jobs[a].submit) {
          xr.push_back(x[i]);
          yr.push_back(jobs[i].runtime);
        }
      if (opt.max_train_rows > 0 && xr.size() > opt.max_train_rows) {
        const auto drop = static_cast<long>(xr.size() - opt.max_train_rows);
        xr.erase(xr.begin(), xr.begin() + drop);
        yr.erase(yr.begin(), yr.begin() + drop);
      }
      if (!model.refit(xr, yr, opt.model, error))
        return false;
      ++out.refits;
    }
    std::vector<feature_vector> xs(x.begin() + static_cast<long>(a),
                                   x.begin() + static_cast<long>(b));
    std::vector<raw_prediction> part;
    if (!model.predict_raw(xs, part, error))
      return false;
    raw.insert(raw.end(), part.begin(), part.end());
  }

  // Online recalibration: walk the events again; test jobs that finish feed the window.
  conformal_window window(opt.recal_window);
  std::vector<runtime_estimate> est(n), est_static(n);
  for_each_event(
      jobs,
      [&](std::size_t i) {
        if (i < split)
          return;
        auto c = window.current(model.static_calibration());
        // Intervals are capped at the request plus how far finished jobs have run past
        // theirs; the point prediction at the request (as last2 is).
        const double req = jobs[i].req_time;
        est[i] = to_estimate(raw[i - split], c, req, cap[i]);
        est_static[i] = to_estimate(raw[i - split], model.static_calibration(), req, cap[i]);
      },
      [&](std::size_t i) {
        if (i >= split)
          window.add(raw[i - split], jobs[i].runtime);
      });

  std::vector<double> actual, p_tender, p_last2, p_user, p_med;
  interval_metrics iv, ivs;
  for (std::size_t i = split; i < n; ++i) {
    const auto& j = jobs[i];
    double hm = med[i];
    actual.push_back(j.runtime);
    p_tender.push_back(est[i].median);
    p_last2.push_back(last2[i] >= 0 ? last2[i] : (hm >= 0 ? hm : 0));
    p_user.push_back(user_estimate(j, hm));
    p_med.push_back(hm >= 0 ? hm : user_estimate(j, hm));
    auto add = [&](interval_metrics& m, const runtime_estimate& e) {
      m.coverage90 += e.lo90 <= j.runtime && j.runtime <= e.hi90 ? 1 : 0;
      m.coverage80 += e.lo80 <= j.runtime && j.runtime <= e.hi80 ? 1 : 0;
      m.width90_s += e.hi90 - e.lo90;
      m.width80_s += e.hi80 - e.lo80;
    };
    add(iv, est[i]);
    add(ivs, est_static[i]);
  }
  const auto nt = static_cast<double>(n - split);
  for (auto* m : {&iv, &ivs}) {
    m->coverage90 /= nt;
    m->coverage80 /= nt;
    m->width90_s /= nt;
    m->width80_s /= nt;
  }
  out.n_train = xt.size();
  out.n_test = n - split;
  out.tender = score_points(p_tender, actual);
  out.last2 = score_points(p_last2, actual);
  out.user_estimate = score_points(p_user, actual);
  out.median = score_points(p_med, actual);
  out.tender_iv = iv;
  out.tender_static_iv = ivs;
  return true;
}

nlohmann::json eval_report::to_json() const {
  auto pm = [](const point_metrics& m) {
    return nlohmann::json{{"mae_s", m.mae_s}, {"medae_s", m.medae_s}, {"under_rate", m.under_rate}};
  };
  nlohmann::json t = pm(tender);
  t["coverage90"] = tender_iv.coverage90;
  t["width90_s"] = tender_iv.width90_s;
  t["coverage80"] = tender_iv.coverage80;
  t["width80_s"] = tender_iv.width80_s;
  t["static_coverage90"] = tender_static_iv.coverage90;
  t["static_width90_s"] = tender_static_iv.width90_s;
  return {{"trace", trace},
          {"n_train", n_train},
          {"n_test", n_test},
          {"train_seconds", train_seconds},
          {"point_refits", refits},
          {"runtime",
           {{"tender", t},
            {"last2", pm(last2)},
            {"user_estimate", pm(user_estimate)},
            {"median", pm(median)}}}};
}

std::string eval_report::table() const {
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: %zu training jobs, %zu test jobs\n\n", trace.c_str(), n_train,
                n_test);
  s += buf;
  std::snprintf(buf, sizeof buf, "%-14s %10s %10s %7s %8s %10s %8s %10s\n", "run time", "MAE s",
                "medAE s", "under", "cover90", "width90 s", "cover80", "width80 s");
  s += buf;
  auto row = [&](const char* name, const point_metrics& m, const interval_metrics* iv) {
    if (iv)
      std::snprintf(buf, sizeof buf, "%-14s %10.0f %10.0f %7.3f %8.3f %10.0f %8.3f %10.0f\n", name,
                    m.mae_s, m.medae_s, m.under_rate, iv->coverage90, iv->width90_s, iv->coverage80,
                    iv->width80_s);
    else
      std::snprintf(buf, sizeof buf, "%-14s %10.0f %10.0f %7.3f %8s %10s %8s %10s\n", name, m.mae_s,
                    m.medae_s, m.under_rate, "-", "-", "-", "-");
    s += buf;
  };
  row("tender", tender, &tender_iv);
  row("last2", last2, nullptr);
  row("user_estimate", user_estimate, nullptr);
  row("median", median, nullptr);
  std::snprintf(buf, sizeof buf,
                "\ntender MAE / last2 MAE = %.3f; intervals by conformalized quantile "
                "regression, recalibrated online (static calibration: coverage90 %.3f, "
                "width90 %.0f s)\n",
                last2.mae_s > 0 ? tender.mae_s / last2.mae_s : 0.0, tender_static_iv.coverage90,
                tender_static_iv.width90_s);
  s += buf;
  return s;
}

} // namespace tender

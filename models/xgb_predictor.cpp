#include "models/xgb_predictor.hpp"

#include <cmath>
#include <cstdio>

namespace tender {

xgb_predictor::xgb_predictor(const std::string& model_path) {
  if (!runtime_model::load(model_path, model_, error_))
    model_ = runtime_model();
}

xgb_predictor::xgb_predictor(runtime_model model) : model_(std::move(model)) {
  if (!model_.usable())
    error_ = "no trained model";
}

trace_job xgb_predictor::to_record(const job_spec& spec, usec now) {
  trace_job r;
  r.submit = static_cast<double>(now) / static_cast<double>(sec_us);
  r.req_time = spec.walltime > 0 ? static_cast<double>(spec.walltime) / sec_us : -1;
  r.procs = spec.hints.cpu > 0 ? (spec.hints.cpu + 999) / 1000 : -1;
  r.user = spec.user.empty() ? -1 : name_id(spec.user) % 1000003;
  if (!spec.command.empty())
    r.exe = name_id(spec.command.front()) % 1000003;
  return r;
}

feature_vector xgb_predictor::features(const job_spec& spec, usec now) const {
  return history_.features(to_record(spec, now));
}

prediction xgb_predictor::predict(const job_spec& spec, const resource_profile& measured,
                                  usec now) const {
  if (!model_.usable())
    return baseline_.predict(spec, measured, now);
  auto rec = to_record(spec, now);
  auto x = history_.features(rec);
  auto raw = model_.predict_one(x);
  auto cal = window_.current(model_.static_calibration(), 50);
  // The interval is capped at the walltime plus how far finished jobs have run past theirs.
  double cap = rec.req_time > 0 ? rec.req_time + history_.overrun_allowance() : -1;
  auto e = to_estimate(raw, cal, rec.req_time, cap);
  auto us = [](double s) { return static_cast<usec>(std::llround(s * sec_us)); };
  prediction p;
  p.runtime = us(e.median);
  p.runtime_lo = us(e.lo90);
  p.runtime_hi = us(e.hi90);
  p.model_version = model_.version();
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "XGBoost median run time (absolute error) from requested time %s, %lld procs "
                "and %zu finished jobs of history; 90%% interval by conformalized "
                "quantile regression (%s calibration, %zu jobs)",
                rec.req_time > 0 ? format_duration(spec.walltime).c_str() : "unknown",
                static_cast<long long>(rec.procs), history_.n_finished(),
                cal.n == model_.static_calibration().n ? "training" : "online", cal.n);
  p.basis = buf;
  return p;
}

void xgb_predictor::observe(const finished_job& job) {
  baseline_.observe(job);
  auto rec = to_record(job.spec, job.submitted_at);
  rec.runtime = static_cast<double>(job.runtime) / sec_us;
  rec.end = rec.submit + rec.runtime;
  if (model_.usable()) {
    // Score the interval the model gives this job from what was known before it ended.
    trace_job at_submit = rec;
    at_submit.runtime = at_submit.end = -1;
    window_.add(model_.predict_one(history_.features(at_submit)), rec.runtime);
  }
  // A job whose submission was recorded already is not counted twice.
  auto it = in_flight_.find(rec.user);
  if (it != in_flight_.end() && it->second > 0)
    --it->second;
  else
    history_.submitted(rec);
  history_.finished(rec);
}

void xgb_predictor::submitted(const job_spec& spec, usec at) {
  auto rec = to_record(spec, at);
  history_.submitted(rec);
  ++in_flight_[rec.user];
}

void xgb_predictor::withdrawn(const job_spec& spec) {
  auto rec = to_record(spec, 0);
  auto it = in_flight_.find(rec.user);
  if (it == in_flight_.end() || it->second <= 0)
    return; // never announced here (e.g. submitted before a restart)
  --it->second;
  history_.withdrawn(rec);
}

std::string xgb_predictor::version() const {
  return model_.usable() ? model_.version() : baseline_.version();
}

} // namespace tender

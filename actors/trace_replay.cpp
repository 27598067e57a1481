#include "actors/trace_replay.hpp"

#include "models/runtime_model.hpp"
#include "models/swf.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <queue>
#include <sstream>
#include <unordered_map>

namespace tender {

replay_policy::~replay_policy() = default;

namespace {

usec to_us(double s) {
  return static_cast<usec>(std::llround(s * 1e6));
}
double to_s(usec t) {
  return static_cast<double>(t) / 1e6;
}

/// After a job outlives its plan: the request when it is still ahead, else twice
/// the time it has run (a job with no request, or one running past it).
double next_guess(const trace_job& j, double elapsed) {
  if (j.req_time > elapsed + 1)
    return j.req_time;
  return std::max(2 * elapsed, elapsed + 60);
}

/// Run time to plan a job with when nothing better is known.
double fallback(const trace_job& j, const job_history& h) {
  if (j.req_time > 0)
    return j.req_time;
  double m = h.global_median();
  return m > 0 ? m : 3600;
}

/// EASY and EASY-SJBF: the users' requested times.
class requested_policy final : public replay_policy {
public:
  explicit requested_policy(backfill_order o) : order_(o) {}
  std::string name() const override {
    return order_ == backfill_order::fcfs ? "easy" : "easy-sjbf";
  }
  backfill_order order() const override { return order_; }
  replay_plan submitted(std::size_t, const trace_job& j, double) override {
    const double p = fallback(j, h_);
    return {p, p};
  }
  double correct(std::size_t, const trace_job& j, double elapsed, double, double) override {
    return next_guess(j, elapsed);
  }
  void finished(std::size_t, const trace_job& j, double) override { h_.finished(j); }

private:
  backfill_order order_;
  job_history h_;
};

/// EASY++ (Tsafrir, Etsion and Feitelson 2007): the user's last two run times
/// averaged, capped at the request; corrected to the request; shortest first.
class last2_policy final : public replay_policy {
public:
  std::string name() const override { return "easy++"; }
  backfill_order order() const override { return backfill_order::shortest_first; }
  replay_plan submitted(std::size_t, const trace_job& j, double) override {
    double p = h_.last2(j);
    if (p <= 0)
      p = fallback(j, h_);
    h_.submitted(j);
    return {p, p};
  }
  double correct(std::size_t, const trace_job& j, double elapsed, double, double) override {
    return next_guess(j, elapsed);
  }
  void finished(std::size_t, const trace_job& j, double) override { h_.finished(j); }

private:
  job_history h_;
};

/// tender: the run-time model, trained online on the jobs finished so far; plans with
/// its median (or a bound of its interval, `tender_plan`), corrects a job that
/// outlives it to the interval's upper end, then to the request, then by doubling;
/// backfills shortest predicted median first. Until the
/// first training, the last-two baseline fills in (as the agent's baseline does).
class model_policy final : public replay_policy {
public:
  explicit model_policy(const replay_options& opt) : opt_(opt) {
    cfg_.seed = opt.seed;
    cfg_.nthread = 1; // two threads mostly spin in OpenMP on a 2-core machine
    // Half the quantile rounds at twice the rate: the replay retrains every 10,000 jobs, and
    // a 200,000-job trace must replay in under a minute.
    cfg_.quantile_rounds = 30;
    cfg_.quantile_eta = 0.3;
  }
  std::string name() const override { return "tender"; }
  backfill_order order() const override { return backfill_order::shortest_first; }
  std::size_t trainings() const override { return trainings_; }

  replay_plan submitted(std::size_t id, const trace_job& j, double) override {
    pending p;
    p.x = h_.features(j);
    p.cap_s = j.req_time > 0 ? j.req_time + h_.overrun_allowance() : -1;
    double base = h_.last2(j);
    h_.submitted(j);
    replay_plan out;
    if (model_.usable()) {
      p.raw = model_.predict_one(p.x);
      p.have_raw = true;
      // The online calibration moves slowly: refresh it every 50 finishes, not per job.
      if (!cal_ || window_changes_ >= 50) {
        cal_ = window_.current(model_.static_calibration());
        window_changes_ = 0;
      }
      auto e = to_estimate(p.raw, *cal_, j.req_time, p.cap_s);
      p.est = e;
      out.order_s = std::max(1.0, e.median);
      if (opt_.tender_plan == "median")
        out.planned_s = out.order_s;
      else if (opt_.tender_plan == "lower80")
        out.planned_s = std::max(1.0, e.lo80);
      else if (opt_.tender_plan == "upper80")
        out.planned_s = std::max(out.order_s, e.hi80);
      else
        out.planned_s = std::max(out.order_s, e.hi90);
      out.lo_s = std::max(1.0, std::min(e.lo90, out.order_s));
      out.hi_s = std::max(out.order_s, e.hi90);
    } else {
      const double b = base > 0 ? base : fallback(j, h_);
      out = {b, b};
      // Before the first training: from the point up to the request, when it is longer.
      out.hi_s = j.req_time > b ? j.req_time : 0;
    }
    pending_.emplace(id, std::move(p));
    return out;
  }

  double correct(std::size_t id, const trace_job& j, double elapsed, double, double) override {
    auto it = pending_.find(id);
    // Out to the 90 % bound (when planned with less), then the request, then doubling.
    if (it != pending_.end() && it->second.have_raw && it->second.est.hi90 > elapsed + 1)
      return it->second.est.hi90;
    return next_guess(j, elapsed);
  }

  void finished(std::size_t id, const trace_job& j, double) override {
    h_.finished(j);
    auto it = pending_.find(id);
    if (it == pending_.end())
      return;
    if (it->second.have_raw) {
      window_.add(it->second.raw, j.runtime);
      ++window_changes_;
    }
    xs_.push_back(it->second.x);
    ys_.push_back(j.runtime);
    pending_.erase(it);
    ++since_;
    if ((!model_.usable() && xs_.size() >= opt_.first_train) ||
        (model_.usable() && opt_.retrain_every > 0 && since_ >= opt_.retrain_every))
      train();
  }

private:
  struct pending {
    feature_vector x{};
    raw_prediction raw;
    runtime_estimate est;
    bool have_raw = false;
    double cap_s = -1;
  };

  void train() {
    const std::size_t n = xs_.size();
    const std::size_t from = n > opt_.max_train_rows ? n - opt_.max_train_rows : 0;
    std::vector<feature_vector> x(xs_.begin() + static_cast<long>(from), xs_.end());
    std::vector<double> y(ys_.begin() + static_cast<long>(from), ys_.end());
    std::string error;
    runtime_model m;
    bool ok = model_.usable() ? model_.refit(x, y, cfg_, error)
                              : runtime_model::train(x, y, cfg_, m, error);
    if (ok && !model_.usable())
      model_ = std::move(m);
    if (ok)
      ++trainings_;
    since_ = 0;
    cal_.reset();
  }

  replay_options opt_;
  model_config cfg_;
  job_history h_;
  runtime_model model_;
  conformal_window window_{2000};
  std::optional<calibration> cal_;
  std::size_t window_changes_ = 0;
  std::unordered_map<std::size_t, pending> pending_;
  std::vector<feature_vector> xs_; // finished jobs' submit-time features, in finish order
  std::vector<double> ys_;
  std::size_t since_ = 0;
  std::size_t trainings_ = 0;
};

} // namespace

std::variant<std::unique_ptr<replay_policy>, std::string>
make_replay_policy(const replay_options& opt) {
  if (opt.policy == "easy")
    return std::make_unique<requested_policy>(backfill_order::fcfs);
  if (opt.policy == "easy-sjbf")
    return std::make_unique<requested_policy>(backfill_order::shortest_first);
  if (opt.policy == "easy++")
    return std::make_unique<last2_policy>();
  if (opt.policy == "tender") {
    if (opt.tender_plan != "upper" && opt.tender_plan != "upper80" &&
        opt.tender_plan != "lower80" && opt.tender_plan != "median")
      return "unknown tender plan '" + opt.tender_plan + "' (median, lower80, upper80 or upper)";
    return std::make_unique<model_policy>(opt);
  }
  return "unknown policy '" + opt.policy + "' (easy, easy-sjbf, easy++ or tender)";
}

std::variant<replay_result, std::string> replay_jobs(std::vector<trace_job> all, std::int64_t procs,
                                                     replay_policy& policy,
                                                     const replay_options& opt) {
  if (procs <= 0)
    return std::string("the machine size must be positive (give --procs)");
  const auto t0 = std::chrono::steady_clock::now();
  replay_result r;
  r.policy = policy.name();
  r.procs = procs;

  std::vector<std::size_t> order(all.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return all[a].submit < all[b].submit; });
  std::vector<trace_job> jobs;
  jobs.reserve(all.size());
  for (std::size_t i : order) {
    const auto& j = all[i];
    if (j.procs <= 0 || j.procs > procs || j.runtime < 0) {
      ++r.skipped;
      continue;
    }
    jobs.push_back(j);
    r.trace_index.push_back(i);
  }
  const std::size_t n = jobs.size();
  r.jobs = n;
  r.start_s.assign(n, -1);
  if (n == 0)
    return r;

  easy_scheduler s({procs, 0, 0}, policy.order());
  std::vector<usec> submit(n), run(n), start(n, -1), planned(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    submit[i] = to_us(jobs[i].submit);
    run[i] = to_us(jobs[i].runtime);
  }
  // What the policy may see before a job ends.
  auto hidden = [&](std::size_t i) {
    trace_job v = jobs[i];
    v.runtime = -1;
    v.end = -1;
    return v;
  };
  using ev = std::pair<usec, std::size_t>;
  std::priority_queue<ev, std::vector<ev>, std::greater<>> finishes;
  std::size_t next = 0, done = 0;
  constexpr usec never = std::numeric_limits<usec>::max();
  while (next < n || s.running() > 0 || s.waiting() > 0) {
    usec t = next < n ? submit[next] : never;
    if (!finishes.empty())
      t = std::min(t, finishes.top().first);
    if (auto pe = s.next_planned_end())
      t = std::min(t, *pe);
    if (t == never)
      return std::string("replay stalled: jobs wait but nothing runs (a bug)");

    while (!finishes.empty() && finishes.top().first == t) {
      const std::size_t i = finishes.top().second;
      finishes.pop();
      s.finish(i);
      trace_job full = jobs[i];
      full.end = to_s(t);
      policy.finished(i, full, to_s(t));
      if (opt.progress && ++done % 2000 == 0)
        opt.progress(done, n);
    }
    for (std::uint64_t k : s.overdue(t)) {
      const std::size_t i = static_cast<std::size_t>(k);
      const double elapsed = to_s(t - start[i]);
      double next_s = policy.correct(i, hidden(i), elapsed, to_s(planned[i]), to_s(t));
      usec p = std::max(to_us(next_s), t - start[i] + sec_us);
      planned[i] = p;
      s.correct(k, start[i] + p);
      ++r.corrections;
    }
    for (; next < n && submit[next] == t; ++next) {
      auto plan = policy.submitted(next, hidden(next), to_s(t));
      waiting_job w;
      w.key = next;
      w.amount = {jobs[next].procs, 0, 0};
      w.estimate = std::max<usec>(to_us(plan.planned_s), sec_us);
      w.order_estimate = std::max<usec>(to_us(plan.order_s), 1);
      w.submitted = t;
      planned[next] = w.estimate;
      if (auto e = s.submit(w); !e.empty())
        return "job " + std::to_string(r.trace_index[next]) + ": " + e;
    }
    r.max_waiting = std::max(r.max_waiting, s.waiting());
    for (const auto& st : s.schedule(t)) {
      const std::size_t i = static_cast<std::size_t>(st.key);
      start[i] = t;
      finishes.emplace(t + run[i], i);
      if (st.backfilled)
        ++r.backfilled;
    }
  }
  if (opt.progress)
    opt.progress(n, n);

  double bsld = 0, wait = 0, area = 0;
  usec first = submit[0], last = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double w = to_s(start[i] - submit[i]);
    const double rt = jobs[i].runtime;
    bsld += std::max(1.0, (w + rt) / std::max(rt, 10.0));
    wait += w;
    area += rt * static_cast<double>(jobs[i].procs);
    last = std::max(last, start[i] + run[i]);
    r.start_s[i] = to_s(start[i]);
  }
  r.avg_bsld = bsld / static_cast<double>(n);
  r.avg_wait_s = wait / static_cast<double>(n);
  const double span = to_s(last - first);
  r.utilization = span > 0 ? area / (static_cast<double>(procs) * span) : 0;
  r.trainings = policy.trainings();
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::variant<replay_result, std::string> replay_swf(const std::string& path,
                                                    const replay_options& opt) {
  swf_trace t;
  std::string error;
  if (!read_swf(path, swf_options{}, t, error))
    return error;
  std::int64_t procs = opt.procs > 0 ? opt.procs : t.max_procs;
  if (procs <= 0)
    return path + ": no MaxProcs header; give --procs";
  auto p = make_replay_policy(opt);
  if (auto* e = std::get_if<std::string>(&p))
    return *e;
  return replay_jobs(to_records(t), procs, *std::get<std::unique_ptr<replay_policy>>(p), opt);
}

nlohmann::json replay_result::to_json() const {
  return {{"jobs", jobs},
          {"procs", procs},
          {"policy", policy},
          {"avg_bsld", avg_bsld},
          {"avg_wait_s", avg_wait_s},
          {"utilization", utilization},
          {"corrections", corrections},
          {"backfilled", backfilled},
          {"skipped", skipped},
          {"trainings", trainings},
          {"max_waiting", max_waiting},
          {"wall_s", wall_s}};
}

std::string replay_result::table() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "policy        %s\n"
                "jobs          %zu (skipped %zu)\n"
                "procs         %lld\n"
                "avg bsld      %.2f\n"
                "avg wait      %.0f s\n"
                "utilization   %.3f\n"
                "corrections   %zu\n"
                "backfilled    %zu\n"
                "trainings     %zu\n"
                "replay time   %.1f s\n",
                policy.c_str(), jobs, skipped, static_cast<long long>(procs), avg_bsld, avg_wait_s,
                utilization, corrections, backfilled, trainings, wall_s);
  return buf;
}

} // namespace tender

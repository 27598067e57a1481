#include "models/features.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tender {

namespace {

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr std::size_t keep_user = 10;
constexpr std::size_t keep_template = 5;
constexpr std::size_t keep_global = 200;

float lg(double s) {
  return s < 0 ? nan_f : static_cast<float>(std::log1p(s));
}

double mean_log(const std::deque<double>& d, std::size_t last) {
  std::size_t n = std::min(last, d.size());
  double s = 0;
  for (std::size_t i = d.size() - n; i < d.size(); ++i)
    s += std::log1p(d[i]);
  return s / static_cast<double>(n);
}

/// Median of the last `last` entries of `d` (the mean of the middle two when even).
double median_of(const std::deque<double>& d, std::size_t last) {
  std::size_t n = std::min(last, d.size());
  std::vector<double> v(d.end() - static_cast<long>(n), d.end());
  std::sort(v.begin(), v.end());
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::int64_t req_key(const trace_job& j) {
  return j.req_time >= 0 ? static_cast<std::int64_t>(std::llround(j.req_time)) : -1;
}

} // namespace

std::vector<trace_job> to_records(const swf_trace& t) {
  std::vector<trace_job> out;
  out.reserve(t.jobs.size());
  for (const auto& s : t.jobs) {
    if (s.run < 0)
      continue;
    trace_job r;
    r.submit = static_cast<double>(s.submit);
    r.runtime = static_cast<double>(s.run);
    r.end = r.submit + static_cast<double>(std::max<std::int64_t>(s.wait, 0)) + r.runtime;
    r.req_time = s.time_req > 0 ? static_cast<double>(s.time_req) : -1;
    r.procs = s.procs_any();
    r.user = s.user;
    r.group = s.group;
    r.exe = s.exe;
    r.queue = s.queue >= 0 ? s.queue : (s.queue_name.empty() ? -1 : name_id(s.queue_name) % 100000);
    r.partition = s.partition;
    r.day_offset = static_cast<double>(t.unix_start_time + t.time_zone);
    out.push_back(r);
  }
  return out;
}

std::int64_t name_id(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h >> 1);
}

const std::vector<std::string>& feature_names() {
  static const std::vector<std::string> names = {"req_time_log",
                                                 "procs_log",
                                                 "user",
                                                 "group",
                                                 "exe",
                                                 "queue",
                                                 "partition",
                                                 "hour_of_day",
                                                 "day_of_week",
                                                 "user_last_log",
                                                 "user_last2_log",
                                                 "user_mean10_log",
                                                 "user_std10_log",
                                                 "user_max10_log",
                                                 "user_n_finished_log",
                                                 "user_last_ratio",
                                                 "user_mean10_ratio",
                                                 "tmpl_req_last_log",
                                                 "tmpl_req_mean_log",
                                                 "tmpl_req_n",
                                                 "tmpl_procs_last_log",
                                                 "tmpl_procs_mean_log",
                                                 "tmpl_exe_last_log",
                                                 "tmpl_exe_mean_log",
                                                 "tmpl_req_procs_last_log",
                                                 "tmpl_req_procs_mean_log",
                                                 "since_user_submit_log",
                                                 "since_user_end_log",
                                                 "user_running",
                                                 "global_recent_median_log",
                                                 "last2_log",
                                                 "last2_over_req",
                                                 "user_hit_req_share",
                                                 "user_median10_ratio",
                                                 "global_recent_ratio_median",
                                                 "tmpl_exe_n",
                                                 "req_x_user_median_ratio_log",
                                                 "req_x_user_mean_ratio_log",
                                                 "tmpl_chain_last_log",
                                                 "anchor_log",
                                                 "user_median5_log",
                                                 "tmpl_req_procs_median_log",
                                                 "tmpl_req_procs_n",
                                                 "user_median10_log"};
  return names;
}

void job_history::recent::push(double r, std::size_t keep) {
  runs.push_back(r);
  while (runs.size() > keep)
    runs.pop_front();
}

void job_history::submitted(const trace_job& j) {
  auto& u = users_[j.user];
  u.last_submit = std::max(u.last_submit, j.submit);
  ++u.submitted;
}

void job_history::withdrawn(const trace_job& j) {
  auto& u = users_[j.user];
  if (u.submitted > u.finished)
    --u.submitted;
}

void job_history::finished(const trace_job& j) {
  auto& u = users_[j.user];
  double r = j.runtime;
  u.runs.push(r, keep_user);
  if (j.req_time > 0) {
    u.ratios.push(r / j.req_time, keep_user);
    u.hit.push(r >= 0.9 * j.req_time ? 1.0 : 0.0, keep_user);
    ++n_with_req_;
    n_over_req_ += r > j.req_time ? 1 : 0;
    if (r > j.req_time) {
      overruns_.push_back(r - j.req_time);
      overruns_sorted_ = false;
    }
    global_ratio_.push_back(r / j.req_time);
    if (global_ratio_.size() > keep_global)
      global_ratio_.pop_front();
  }
  u.last_end = std::max(u.last_end, j.end);
  ++u.finished;
  if (auto k = req_key(j); k >= 0)
    u.by_req[k].push(r, keep_template);
  if (j.procs >= 0)
    u.by_procs[j.procs].push(r, keep_template);
  if (j.exe >= 0)
    u.by_exe[j.exe].push(r, keep_template);
  if (auto k = req_key(j); k >= 0 && j.procs >= 0)
    u.by_req_procs[k * 100003 + j.procs].push(r, keep_template);

  global_recent_.push_back(r);
  if (global_recent_.size() > keep_global)
    global_recent_.pop_front();
  if (low_.empty() || r <= low_.top())
    low_.push(r);
  else
    high_.push(r);
  if (low_.size() > high_.size() + 1) {
    high_.push(low_.top());
    low_.pop();
  } else if (high_.size() > low_.size()) {
    low_.push(high_.top());
    high_.pop();
  }
  ++n_finished_;
}

double job_history::over_request_rate() const {
  return n_with_req_ ? static_cast<double>(n_over_req_) / static_cast<double>(n_with_req_) : 0.0;
}

double job_history::overrun_allowance() const {
  // Jobs allowed to run past this: at most 0.1 % of the finished ones with a request.
  auto allowed = static_cast<std::size_t>(static_cast<double>(n_with_req_) * 0.001);
  if (overruns_.size() <= allowed)
    return 0;
  if (!overruns_sorted_) {
    std::sort(overruns_.begin(), overruns_.end(), std::greater<double>());
    overruns_sorted_ = true;
  }
  return overruns_[allowed];
}

double job_history::global_median() const {
  if (low_.empty())
    return -1;
  if (low_.size() == high_.size())
    return (low_.top() + high_.top()) / 2;
  return low_.top();
}

double job_history::last2(const trace_job& j) const {
  double p = -1;
  auto it = users_.find(j.user);
  if (it != users_.end() && it->second.runs.runs.size() >= 2) {
    auto& d = it->second.runs.runs;
    p = (d[d.size() - 1] + d[d.size() - 2]) / 2;
  } else if (it != users_.end() && it->second.runs.runs.size() == 1 && j.req_time <= 0) {
    p = it->second.runs.runs.back();
  } else {
    p = j.req_time;
  }
  if (j.req_time > 0 && p > j.req_time)
    p = j.req_time;
  return p;
}

feature_vector job_history::features(const trace_job& j) const {
  feature_vector x;
  x.fill(nan_f);
  x[0] = lg(j.req_time);
  x[1] = j.procs > 0 ? static_cast<float>(std::log(static_cast<double>(j.procs))) : nan_f;
  auto id = [](std::int64_t v) { return v >= 0 ? static_cast<float>(v) : nan_f; };
  x[2] = id(j.user);
  x[3] = id(j.group);
  x[4] = id(j.exe);
  x[5] = id(j.queue);
  x[6] = id(j.partition);
  double t = j.submit + j.day_offset;
  x[7] = static_cast<float>(std::fmod(t, 86400.0) / 3600.0);
  x[8] =
      static_cast<float>(std::fmod(std::floor(t / 86400.0) + 4, 7.0)); // 1970-01-01 was a Thursday

  if (!global_recent_.empty()) {
    std::vector<double> g(global_recent_.begin(), global_recent_.end());
    std::nth_element(g.begin(), g.begin() + static_cast<long>(g.size() / 2), g.end());
    x[29] = lg(g[g.size() / 2]);
  }
  if (!global_ratio_.empty()) {
    std::vector<double> g(global_ratio_.begin(), global_ratio_.end());
    std::nth_element(g.begin(), g.begin() + static_cast<long>(g.size() / 2), g.end());
    x[34] = static_cast<float>(g[g.size() / 2]);
  }
  if (double l2 = last2(j); l2 >= 0) {
    x[30] = lg(l2);
    if (j.req_time > 0)
      x[31] = static_cast<float>(l2 / j.req_time);
  }
  auto it = users_.find(j.user);
  if (it == users_.end()) {
    x[14] = 0;
    x[28] = 0;
    x[38] = x[30]; // no history: the anchors are last-two (the request)
    x[39] = x[30];
    return x;
  }
  const auto& u = it->second;
  const auto& runs = u.runs.runs;
  if (!runs.empty()) {
    x[9] = lg(runs.back());
    x[10] = static_cast<float>(mean_log(runs, 2));
    x[11] = static_cast<float>(mean_log(runs, keep_user));
    double m = mean_log(runs, keep_user), v = 0, mx = 0;
    for (double r : runs) {
      v += (std::log1p(r) - m) * (std::log1p(r) - m);
      mx = std::max(mx, r);
    }
    x[12] = static_cast<float>(std::sqrt(v / static_cast<double>(runs.size())));
    x[13] = lg(mx);
  }
  x[14] = static_cast<float>(std::log1p(static_cast<double>(u.finished)));
  if (!u.ratios.runs.empty()) {
    x[15] = static_cast<float>(u.ratios.runs.back());
    double s = 0;
    for (double r : u.ratios.runs)
      s += r;
    x[16] = static_cast<float>(s / static_cast<double>(u.ratios.runs.size()));
    std::vector<double> rs(u.ratios.runs.begin(), u.ratios.runs.end());
    std::nth_element(rs.begin(), rs.begin() + static_cast<long>(rs.size() / 2), rs.end());
    x[33] = static_cast<float>(rs[rs.size() / 2]);
    double hits = 0;
    for (double h : u.hit.runs)
      hits += h;
    x[32] = static_cast<float>(hits / static_cast<double>(u.hit.runs.size()));
  }
  auto tmpl = [&](const std::unordered_map<std::int64_t, recent>& m, std::int64_t key,
                  std::size_t last_i, std::size_t mean_i) {
    if (key < 0)
      return static_cast<const recent*>(nullptr);
    auto f = m.find(key);
    if (f == m.end() || f->second.runs.empty())
      return static_cast<const recent*>(nullptr);
    x[last_i] = lg(f->second.runs.back());
    x[mean_i] = static_cast<float>(mean_log(f->second.runs, keep_template));
    return &f->second;
  };
  if (auto* r = tmpl(u.by_req, req_key(j), 17, 18))
    x[19] = static_cast<float>(r->runs.size());
  else
    x[19] = 0;
  tmpl(u.by_procs, j.procs, 20, 21);
  x[42] = 0;
  if (req_key(j) >= 0 && j.procs >= 0) {
    auto f = u.by_req_procs.find(req_key(j) * 100003 + j.procs);
    if (f != u.by_req_procs.end() && !f->second.runs.empty()) {
      x[41] = lg(median_of(f->second.runs, keep_template));
      x[42] = static_cast<float>(f->second.runs.size());
    }
  }
  if (!runs.empty()) {
    x[40] = lg(median_of(runs, 5));
    x[43] = lg(median_of(runs, keep_user));
  }
  if (auto* r = tmpl(u.by_exe, j.exe, 22, 23))
    x[35] = static_cast<float>(r->runs.size());
  if (req_key(j) >= 0 && j.procs >= 0)
    tmpl(u.by_req_procs, req_key(j) * 100003 + j.procs, 24, 25);
  // Anchors (seconds). rmr: the request times the user's median ratio of run to
  // request. chain: the last run of the most specific template (requested time and
  // processors, then requested time), else last-two. anchor: the median of the
  // template's median run (else chain), rmr (else last-two) and last-two, capped at the
  // request; the point model predicts a multiple of it.
  auto back = [](float v) { return std::expm1(static_cast<double>(v)); };
  const double l2 = last2(j);
  double rmr = -1;
  if (j.req_time > 0 && !std::isnan(x[33])) {
    rmr = j.req_time * static_cast<double>(x[33]);
    x[36] = lg(rmr);
    x[37] = lg(j.req_time * static_cast<double>(x[16]));
  }
  double chain = l2;
  if (!std::isnan(x[24]))
    chain = back(x[24]);
  else if (!std::isnan(x[17]))
    chain = back(x[17]);
  if (chain >= 0) {
    x[38] = lg(chain);
    const double a = !std::isnan(x[41]) ? back(x[41]) : chain;
    const double b = rmr >= 0 ? rmr : l2;
    double med = std::max(std::min(a, b), std::min(std::max(a, b), l2));
    if (j.req_time > 0)
      med = std::min(med, j.req_time);
    x[39] = lg(med);
  }
  if (u.last_submit >= 0)
    x[26] = lg(std::max(0.0, j.submit - u.last_submit));
  if (u.last_end >= 0)
    x[27] = lg(std::max(0.0, j.submit - u.last_end));
  x[28] = static_cast<float>(u.submitted - u.finished);
  return x;
}

void for_each_event(const std::vector<trace_job>& jobs,
                    const std::function<void(std::size_t)>& on_submit,
                    const std::function<void(std::size_t)>& on_finish) {
  using ev = std::pair<double, std::size_t>;
  std::priority_queue<ev, std::vector<ev>, std::greater<ev>> pending;
  auto pop = [&] {
    auto k = pending.top().second;
    pending.pop();
    on_finish(k);
  };
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& j = jobs[i];
    while (!pending.empty() && pending.top().first < j.submit)
      pop();
    on_submit(i);
    pending.push({j.end >= j.submit ? j.end : j.submit + std::max(0.0, j.runtime), i});
  }
  while (!pending.empty())
    pop();
}

void replay(const std::vector<trace_job>& jobs, job_history& h,
            const std::function<void(const replay_row&)>& on_submit,
            const std::function<void(std::size_t)>& on_finish) {
  for_each_event(
      jobs,
      [&](std::size_t i) {
        // The job's own outcome is hidden from the feature computation.
        trace_job at_submit = jobs[i];
        at_submit.runtime = -1;
        at_submit.end = -1;
        double cap = at_submit.req_time > 0 ? at_submit.req_time + h.overrun_allowance() : -1;
        on_submit(replay_row{i, h.features(at_submit), h.last2(at_submit), h.global_median(),
                             h.over_request_rate() < 0.001, cap});
        h.submitted(jobs[i]);
      },
      [&](std::size_t i) {
        h.finished(jobs[i]);
        if (on_finish)
          on_finish(i);
      });
}

} // namespace tender

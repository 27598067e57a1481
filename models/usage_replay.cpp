#include "models/usage_replay.hpp"

#include "models/swf.hpp" // read_maybe_gzip
#include "models/vpa.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace tender {

namespace {

std::string_view unquote(std::string_view f) {
  while (!f.empty() && (f.back() == '\r' || f.back() == ' '))
    f.remove_suffix(1);
  while (!f.empty() && f.front() == ' ')
    f.remove_prefix(1);
  if (f.size() >= 2 && f.front() == '"' && f.back() == '"')
    f = f.substr(1, f.size() - 2);
  return f;
}

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= line.size(); ++i)
    if (i == line.size() || line[i] == ',') {
      out.push_back(unquote(line.substr(start, i - start)));
      start = i + 1;
    }
  return out;
}

constexpr usec hour_us = 3600 * sec_us;
constexpr usec vpa_min_lifetime = 12 * hour_us; ///< VPA's podLifetimeUpdateThreshold
constexpr double vpa_min_change = 0.10;         ///< VPA's MinChangePriority
constexpr double vpa_margin = 0.15;

/// The smallest value with at least `q` of `v` at or below it.
millicores quantile(std::vector<millicores> v, double q) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(k, 1, v.size()) - 1];
}

millicores to_millicores(double cores_value) {
  return static_cast<millicores>(std::ceil(cores_value * 1000.0 - 1e-9));
}

} // namespace

deviation_options replay_tuned_detector() {
  deviation_options o;
  o.grow_step = 1.1;
  o.cpu_quantile = 0.1;
  o.cpu_margin = 0.0;
  o.cpu_size_window = 60 * 60 * sec_us;
  o.shrink_window = 10 * 60 * sec_us;
  o.throttle_window = 15 * 60 * sec_us;
  o.throttle_share = 1.0;
  o.forecast.enabled = true;
  return o;
}

bool read_usage_series(const std::string& path, usage_series& out, std::string& error) {
  std::string text;
  if (!read_maybe_gzip(path, text, error))
    return false;
  out = usage_series{};
  out.path = path;
  std::size_t line_no = 0, pos = 0;
  auto fail = [&](const std::string& why) {
    error = path + ":" + std::to_string(line_no) + ": " + why;
    return false;
  };
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos)
      end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (unquote(line).empty())
      continue;
    auto f = split(line);
    if (out.ids.empty()) {
      if (f.size() < 2)
        return fail("expected a header: an empty first field, then one id per VM");
      for (std::size_t i = 1; i < f.size(); ++i) {
        if (f[i].empty())
          return fail("VM id " + std::to_string(i) + " is empty");
        out.ids.emplace_back(f[i]);
      }
      out.percent.assign(out.ids.size(), {});
      continue;
    }
    if (f.size() != out.ids.size() + 1)
      return fail("expected " + std::to_string(out.ids.size() + 1) +
                  " fields (the reading index and " + std::to_string(out.ids.size()) +
                  " VMs), found " + std::to_string(f.size()));
    const std::size_t expected_index = out.readings() + 1;
    std::size_t index = 0;
    auto [ip, iec] = std::from_chars(f[0].data(), f[0].data() + f[0].size(), index);
    if (iec != std::errc{} || ip != f[0].data() + f[0].size() || index != expected_index)
      return fail("expected reading index " + std::to_string(expected_index) + ", found '" +
                  std::string(f[0]) + "'");
    for (std::size_t v = 0; v < out.ids.size(); ++v) {
      double x = 0;
      const auto& s = f[v + 1];
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (ec != std::errc{} || p != s.data() + s.size() || !std::isfinite(x))
        return fail("VM " + out.ids[v] + ": '" + std::string(s) + "' is not a number");
      if (x < 0 || x > 100)
        return fail("VM " + out.ids[v] + ": " + std::string(s) + " is not a percentage (0-100)");
      out.percent[v].push_back(x);
    }
  }
  if (out.ids.empty())
    return fail("no header line (VM ids)");
  if (out.readings() == 0)
    return fail("no readings");
  return true;
}

bool replay_allocations(const std::vector<millicores>& mean, const std::vector<millicores>& peak,
                        const std::string& policy, const usage_replay_options& o,
                        std::vector<millicores>& alloc, std::int64_t& disruptive,
                        std::int64_t& resizes, std::string& error) {
  alloc.clear();
  disruptive = resizes = 0;
  const std::size_t n = mean.size();
  if (peak.size() != n) {
    error = "the mean and peak series differ in length";
    return false;
  }
  if (o.warmup == 0 || n <= o.warmup) {
    error = "need more readings (" + std::to_string(n) + ") than the warm-up (" +
            std::to_string(o.warmup) + ")";
    return false;
  }
  const millicores capacity = o.vm_cores * 1000;
  auto clamp = [&](millicores c) { return std::clamp(c, o.min_cpu, capacity); };
  // Reading i ends at (i + 1) * interval: what is known then decides reading i + 1.
  auto end_of = [&](std::size_t i) { return static_cast<usec>(i + 1) * o.interval; };
  const millicores profile = clamp(quantile(
      std::vector<millicores>(mean.begin(), mean.begin() + static_cast<std::ptrdiff_t>(o.warmup)),
      o.static_quantile));

  if (policy == "static") {
    alloc.assign(n - o.warmup, profile);
    return true;
  }

  if (policy == "vpa") {
    const auto& samples = o.vpa_peak_samples ? peak : mean;
    decaying_histogram h(vpa_buckets::cpu(), 86400.0);
    auto add = [&](std::size_t i, millicores seen) {
      h.add_sample(static_cast<double>(seen) / 1000.0, 1.0,
                   static_cast<double>(end_of(i)) / sec_us);
    };
    for (std::size_t i = 0; i < o.warmup; ++i)
      add(i, samples[i]);
    auto recommend = [&](std::size_t observed, millicores& target, millicores& lower,
                         millicores& upper) {
      const double days =
          static_cast<double>(observed) * static_cast<double>(o.interval) / (86400.0 * sec_us);
      target = clamp(to_millicores(h.percentile(0.9) * (1 + vpa_margin)));
      lower = clamp(
          to_millicores(h.percentile(0.5) * (1 + vpa_margin) * std::pow(1 + 0.001 / days, -2.0)));
      upper = clamp(to_millicores(h.percentile(0.95) * (1 + vpa_margin) * (1 + 1 / days)));
    };
    millicores a = 0, lo = 0, hi = 0;
    recommend(o.warmup, a, lo, hi);
    usec started = end_of(o.warmup - 1);
    for (std::size_t i = o.warmup; i < n; ++i) {
      alloc.push_back(a);
      add(i, std::min(samples[i], a)); // a job cannot be seen using more than its limit
      const usec now = end_of(i);
      millicores target = 0;
      recommend(i + 1, target, lo, hi);
      const bool outside = a < lo || a > hi;
      const bool stale =
          now - started >= vpa_min_lifetime &&
          std::abs(static_cast<double>(target - a)) >= vpa_min_change * static_cast<double>(a);
      if ((outside || stale) && target != a) {
        a = target;
        started = now;
        ++disruptive;
        ++resizes;
      }
    }
    return true;
  }

  if (policy == "tender") {
    job_holding held;
    held.cpu = profile;
    held.cpu_max = capacity;
    held.cpu_in_place = !o.tender_restarts;
    deviation_detector d(held, o.tender);
    for (std::size_t i = 0; i < o.warmup; ++i)
      d.observe({end_of(i), mean[i], peak[i], 0, false});
    millicores a = profile;
    for (std::size_t i = o.warmup; i < n; ++i) {
      alloc.push_back(a);
      const usec now = end_of(i);
      d.observe({now, std::min(mean[i], a), std::min(peak[i], a), 0, peak[i] >= a});
      if (auto need = d.check(now)) {
        job_holding granted = d.holding();
        granted.cpu = clamp(need->cpu);
        d.applied(*need, granted, now);
        if (granted.cpu != a) {
          a = granted.cpu;
          ++resizes;
          disruptive += need->disruptive;
        }
      }
    }
    return true;
  }
  error = "unknown policy '" + policy + "' (static, vpa or tender)";
  return false;
}

bool replay_usage(const usage_series& mean, const usage_series* peak, const usage_replay_options& o,
                  usage_replay_report& out, std::string& error) {
  if (peak && (peak->ids != mean.ids || peak->readings() != mean.readings())) {
    error = peak->path + ": not the same VMs and readings as " + mean.path + " (" +
            std::to_string(peak->ids.size()) + " VMs x " + std::to_string(peak->readings()) +
            " readings against " + std::to_string(mean.ids.size()) + " x " +
            std::to_string(mean.readings()) + ")";
    return false;
  }
  if (o.vm_cores <= 0 || o.interval <= 0) {
    error = "vm_cores and interval must be positive";
    return false;
  }
  out = usage_replay_report{};
  out.usage_path = mean.path;
  out.peak_path = peak ? peak->path : std::string();
  const std::size_t first = std::min(o.first_vm, mean.ids.size());
  const std::size_t last = first + std::min(o.vms, mean.ids.size() - first);
  const std::size_t n = std::min(o.readings, mean.readings());
  auto to_mc = [&](const std::vector<double>& pct) {
    std::vector<millicores> mc(n);
    for (std::size_t i = 0; i < n; ++i)
      mc[i] = std::llround(pct[i] * static_cast<double>(o.vm_cores) * 10.0);
    return mc;
  };
  for (const char* policy : {"static", "vpa", "tender"}) {
    usage_policy_result r;
    r.policy = policy;
    std::int64_t alloc_sum = 0, slack_sum = 0, slack_peak_sum = 0;
    std::size_t short_peak = 0, short_mean = 0;
    for (std::size_t v = first; v < last; ++v) {
      auto m = to_mc(mean.percent[v]);
      auto p = peak ? to_mc(peak->percent[v]) : m;
      std::vector<millicores> alloc;
      std::int64_t disruptive = 0, resizes = 0;
      if (!replay_allocations(m, p, policy, o, alloc, disruptive, resizes, error)) {
        error = mean.path + ": VM " + mean.ids[v] + ": " + error;
        return false;
      }
      for (std::size_t k = 0; k < alloc.size(); ++k) {
        const std::size_t i = o.warmup + k;
        const millicores a = alloc[k];
        alloc_sum += a;
        slack_sum += a - std::min(m[i], a);
        slack_peak_sum += a - std::min(p[i], a);
        short_peak += p[i] > a;
        short_mean += m[i] > a;
      }
      r.readings += alloc.size();
      r.disruptive += disruptive;
      r.resizes += resizes;
      ++r.jobs;
    }
    if (r.readings == 0 || alloc_sum == 0) {
      error = mean.path + ": no VMs or readings to replay";
      return false;
    }
    const double job_hours = static_cast<double>(r.readings) * static_cast<double>(o.interval) /
                             static_cast<double>(hour_us);
    const auto readings = static_cast<double>(r.readings);
    r.slack = static_cast<double>(slack_sum) / static_cast<double>(alloc_sum);
    r.slack_peak = static_cast<double>(slack_peak_sum) / static_cast<double>(alloc_sum);
    r.time_short = static_cast<double>(short_peak) / readings;
    r.time_short_mean = static_cast<double>(short_mean) / readings;
    r.disruptive_per_job_hour = static_cast<double>(r.disruptive) / job_hours;
    r.resizes_per_job_hour = static_cast<double>(r.resizes) / job_hours;
    out.policies.push_back(r);
  }
  return true;
}

nlohmann::json usage_replay_report::to_json() const {
  nlohmann::json j;
  j["usage"] = usage_path;
  j["peak"] = peak_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(peak_path);
  for (const auto& r : policies)
    j[r.policy] = {{"slack", r.slack},
                   {"slack_peak", r.slack_peak},
                   {"time_short", r.time_short},
                   {"time_short_mean", r.time_short_mean},
                   {"disruptive_per_job_hour", r.disruptive_per_job_hour},
                   {"resizes_per_job_hour", r.resizes_per_job_hour},
                   {"disruptive", r.disruptive},
                   {"resizes", r.resizes},
                   {"jobs", r.jobs},
                   {"readings", r.readings}};
  return j;
}

std::string usage_replay_report::table() const {
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-8s %7s %11s %11s %11s %13s %10s\n", "policy", "slack",
                "slack/peak", "short/peak", "short/mean", "disrupt/job-h", "resize/job-h");
  s += buf;
  for (const auto& r : policies) {
    std::snprintf(buf, sizeof buf, "%-8s %6.1f%% %10.1f%% %10.1f%% %10.1f%% %13.4f %10.3f\n",
                  r.policy.c_str(), r.slack * 100, r.slack_peak * 100, r.time_short * 100,
                  r.time_short_mean * 100, r.disruptive_per_job_hour, r.resizes_per_job_hour);
    s += buf;
  }
  if (!policies.empty()) {
    std::snprintf(buf, sizeof buf, "%zu jobs, %zu scored 5-minute readings each policy%s\n",
                  policies.front().jobs, policies.front().readings,
                  peak_path.empty() ? " (no peak series: shortage against the mean)" : "");
    s += buf;
  }
  return s;
}

} // namespace tender

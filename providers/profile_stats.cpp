#include "providers/profile_stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tender {

series_stats describe(std::vector<double> v) {
  series_stats s;
  s.n = v.size();
  if (v.empty())
    return s;
  double sum = 0;
  for (double x : v)
    sum += x;
  s.mean = sum / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v)
    ss += (x - s.mean) * (x - s.mean);
  s.stddev = std::sqrt(ss / static_cast<double>(v.size()));
  std::sort(v.begin(), v.end());
  s.peak = v.back();
  // Nearest rank: the smallest value with at least 95 % of the values at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(0.95 * static_cast<double>(v.size())));
  s.p95 = v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
  return s;
}

line_fit least_squares(const std::vector<double>& t, const std::vector<double>& y) {
  line_fit f;
  const std::size_t n = std::min(t.size(), y.size());
  f.n = n;
  if (n == 0)
    return f;
  double mt = 0, my = 0;
  for (std::size_t i = 0; i < n; ++i) {
    mt += t[i];
    my += y[i];
  }
  mt /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double stt = 0, sty = 0, syy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    stt += (t[i] - mt) * (t[i] - mt);
    sty += (t[i] - mt) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  f.slope = stt > 0 ? sty / stt : 0;
  f.intercept = my - f.slope * mt;
  f.r2 = stt > 0 && syy > 0 ? (sty * sty) / (stt * syy) : 0;
  return f;
}

profile_summary summarize(const std::vector<usage_sample>& v, usec start) {
  profile_summary s;
  s.samples = v.size();
  if (v.empty())
    return s;
  s.start = start > 0 ? start : v.front().at;
  s.duration = std::max<usec>(0, v.back().at - s.start);
  std::vector<double> cpu, rss, threads, rd, wr, net, t;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0)
      cpu.push_back(static_cast<double>(v[i].cpu) / 1000.0);
    rss.push_back(static_cast<double>(v[i].rss));
    threads.push_back(v[i].threads);
    t.push_back(static_cast<double>(v[i].at - s.start) / 1e6);
    if (i > 0 && v[i].at > v[i - 1].at) {
      const double dt = static_cast<double>(v[i].at - v[i - 1].at) / 1e6;
      rd.push_back(static_cast<double>(std::max<bytes_t>(0, v[i].io_read - v[i - 1].io_read)) / dt);
      wr.push_back(static_cast<double>(std::max<bytes_t>(0, v[i].io_write - v[i - 1].io_write)) / dt);
      net.push_back(static_cast<double>(std::max<bytes_t>(0, v[i].net_bytes - v[i - 1].net_bytes)) / dt);
    }
  }
  s.cpu = describe(cpu);
  s.rss = describe(rss);
  s.threads = describe(threads);
  s.io_read_rate = describe(rd);
  s.io_write_rate = describe(wr);
  s.net_rate = describe(net);
  for (auto& x : v) {
    s.io_read = std::max(s.io_read, x.io_read);
    s.io_write = std::max(s.io_write, x.io_write);
    s.net_bytes = std::max(s.net_bytes, x.net_bytes);
  }
  // The second half of the run, by time.
  const double half = t.back() / 2;
  std::vector<double> ht, hy;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (t[i] >= half) {
      ht.push_back(t[i]);
      hy.push_back(rss[i]);
    }
  s.mem_growth = least_squares(ht, hy);
  std::vector<double> at, ay;
  for (std::size_t i = 0; i < t.size(); ++i)
    if (t[i] >= t.back() / 10) {
      at.push_back(t[i]);
      ay.push_back(rss[i]);
    }
  s.mem_growth_all = least_squares(at, ay);
  return s;
}

projection project(const profile_summary& s, usec full_runtime, bool completed,
                   bool scale_up) {
  projection p;
  p.mem_peak = static_cast<bytes_t>(s.rss.peak);
  p.mem_mean = static_cast<bytes_t>(s.rss.mean);
  p.io_read = s.io_read;
  p.io_write = s.io_write;
  p.net_bytes = s.net_bytes;
  if (completed && !scale_up) {
    p.basis = "the profile run completed: measured values";
    return p;
  }
  if (full_runtime <= 0) {
    p.basis = "no runtime estimate: measured values, not extrapolated";
    return p;
  }
  if (s.samples < 2 || s.duration <= 0) {
    p.basis = "too few samples (" + std::to_string(s.samples) + ") to extrapolate: measured values";
    return p;
  }
  if (full_runtime <= s.duration) {
    p.basis = "the runtime estimate is within the profile run: measured values";
    return p;
  }
  const double seen = static_cast<double>(s.duration) / 1e6;
  const double full = static_cast<double>(full_runtime) / 1e6;
  const double scale = full / seen;
  p.io_read = static_cast<bytes_t>(static_cast<double>(s.io_read) * scale);
  p.io_write = static_cast<bytes_t>(static_cast<double>(s.io_write) * scale);
  p.net_bytes = static_cast<bytes_t>(static_cast<double>(s.net_bytes) * scale);

  // Growth counts when the line explains the memory curve and adds at least 5 % of the
  // peak seen by the end of the run; noise around a plateau does neither.
  const auto& g = scale_up ? s.mem_growth_all : s.mem_growth;
  const double min_r2 = scale_up ? 0.6 : 0.8; // steps of a representative run fit less well
  const double at_end = g.intercept + g.slope * full;
  const double at_seen = g.intercept + g.slope * seen;
  if (g.n >= 3 && g.slope > 0 && g.r2 >= min_r2 && at_end - at_seen > 0.05 * s.rss.peak) {
    p.grows = true;
    p.mem_peak = std::max(p.mem_peak, static_cast<bytes_t>(at_end));
    // The mean over the whole run: measured part plus the line's mean over the rest.
    const double rest_mean = (at_seen + at_end) / 2;
    p.mem_mean = static_cast<bytes_t>((s.rss.mean * seen + rest_mean * (full - seen)) / full);
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "memory grows %.1f MB/s (r2 %.2f) over %s %.1f s: peak extrapolated to "
                  "%.0f s",
                  g.slope / 1e6, g.r2, scale_up ? "the whole representative run of" : "the last",
                  scale_up ? seen : seen / 2, full);
    p.basis = buf;
  } else {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "memory flat over the last %.1f s; I/O and network scaled from %.1f s to %.0f s",
                  seen / 2, seen, full);
    p.basis = buf;
  }
  return p;
}

} // namespace tender

#include "tools/profile_cmd.hpp"

#include "config/job_file.hpp"
#include "models/predictor.hpp"
#include "protocol/json.hpp"
#include "providers/profile_cache.hpp"
#include "providers/profiling.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace tender {

namespace {

usec wall_now() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string cores(double c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", c);
  return buf;
}

std::string render(const resource_profile& p, const std::string& name) {
  std::ostringstream o;
  o << "profile of " << name << (p.partial ? " (partial)" : "") << ", took "
    << format_duration(p.profile_time) << "\n";
  o << "  cpu       " << cores(p.cpu_mean) << " cores (stddev " << cores(p.cpu_stddev)
    << ", 90 % " << cores(p.cpu_lo) << " - " << cores(p.cpu_hi) << ")\n";
  o << "  memory    mean " << format_bytes(p.mem_mean) << " (stddev " << format_bytes(p.mem_stddev)
    << "), peak " << format_bytes(p.mem_peak) << ", 90 % " << format_bytes(p.mem_lo) << " - "
    << format_bytes(p.mem_hi) << "\n";
  o << "  io        read " << format_bytes(p.io_read) << ", write " << format_bytes(p.io_write)
    << "\n";
  o << "  network   " << format_bytes(p.net_bytes) << " (" << p.net_bandwidth_bps << " bit/s)\n";
  o << "  gpu       " << (p.gpus > 0 ? p.gpu_type + " x" + std::to_string(p.gpus) : "none")
    << "\n";
  std::string stack;
  for (auto& s : p.software_stack)
    stack += (stack.empty() ? "" : ", ") + s;
  o << "  software  " << (stack.empty() ? "-" : stack) << "\n";
  o << "  runtime   " << format_duration(p.runtime) << " [" << format_duration(p.runtime_lo)
    << " .. " << format_duration(p.runtime_hi) << "] (" << p.model_version << ")\n";
  o << "  source    " << p.source << "\n";
  o << "findings (" << p.findings.size() << "):\n";
  for (auto& f : p.findings)
    o << "  " << f.kind << ": " << f.detail << (f.evidence.empty() ? "" : "\n      <- " + f.evidence)
      << "\n";
  return o.str();
}

} // namespace

int run_profile_cmd(const profile_args& a) {
  const usec now = wall_now();
  auto loaded = load_job_file(a.job_file, now);
  if (auto* e = std::get_if<config_error>(&loaded)) {
    std::cerr << e->to_string() << "\n";
    return 2;
  }
  job_spec spec = std::get<job_spec>(loaded);
  if (!a.budget.empty()) {
    usec b = 0;
    if (!parse_duration(a.budget, b) || b <= 0) {
      std::cerr << "--budget: '" << a.budget << "' is not a positive duration (e.g. 10s)\n";
      return 2;
    }
    spec.profile_budget = b;
  }

  auto report = analyze_job(spec);

  std::string root = a.data_dir;
  bool temp = false;
  if (root.empty()) {
    char tmpl[] = "/tmp/tender-profile-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      std::cerr << "cannot create a temporary directory in /tmp\n";
      return 1;
    }
    root = tmpl;
    temp = true;
  }

  resource_profile p;
  std::optional<profile_run> run;
  std::optional<profile_cache> cache;
  std::string key;
  if (!a.cache.empty()) {
    cache.emplace(a.cache);
    key = profile_cache::key(spec, report);
  }
  // A job whose entry script does not compile is not run: it would only fail the same way.
  const bool blocked = !dynamic_run_blocker(report).empty();
  bool hit = false;
  if (!spec.profile_skip && !blocked && cache) {
    run = cache->get(key);
    hit = run.has_value();
  }
  if (!spec.profile_skip && !blocked && !hit) {
    // Without a [job.profile] command the job itself runs, cut at the budget.
    executor ex(root);
    auto req = profile_request("profile-" + spec.name, spec, report);
    const usec budget = spec.profile_budget > 0 ? spec.profile_budget : profile_limits{}.budget;
    run = run_profile(
        ex, req, budget, 50 * ms_us, [] { return wall_now(); },
        [](usec d) { std::this_thread::sleep_for(std::chrono::microseconds(d)); });
    if (cache)
      cache->put(key, *run);
  }
  p = measure_profile(spec.name, spec, report, run ? &*run : nullptr);
  if (spec.profile_skip)
    p.findings.push_back({"profile", "dynamic profile skipped by the job", a.job_file});
  if (hit)
    p.findings.push_back({"profile", "profile run from the cache (not run again)",
                          a.cache + "/" + key + ".msgpack"});
  baseline_predictor predictor;
  auto pred = predictor.predict(spec, p, wall_now());
  p.runtime = pred.runtime;
  p.runtime_lo = pred.runtime_lo;
  p.runtime_hi = pred.runtime_hi;
  p.model_version = pred.model_version;
  p.source += (p.source.empty() ? "" : "+") + pred.model_version;
  if (run)
    apply_projection(p, spec, *run);
  p.findings.push_back({"runtime", pred.basis, pred.model_version});
  p.profile_time = wall_now() - now;
  if (temp) {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }

  if (a.json)
    std::cout << to_json_value(p).dump(2) << "\n";
  else
    std::cout << render(p, spec.name + " (" + a.job_file + ")");
  return 0;
}

} // namespace tender

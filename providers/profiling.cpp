#include "providers/profiling.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

namespace tender {

namespace {

/// The run's statistics; the shim's final I/O reading (taken after the last sample,
/// just before the job was reaped) completes the totals.
profile_summary summary_of(const profile_run& run) {
  auto s = summarize(run.samples, run.started);
  if (run.exit) {
    s.io_read = std::max(s.io_read, run.exit->io_read);
    s.io_write = std::max(s.io_write, run.exit->io_write);
    s.net_bytes = std::max(s.net_bytes, run.exit->net_bytes);
  }
  return s;
}

} // namespace

static_report analyze_job(const job_spec& spec, static_options opts) {
  opts.env = spec.env;
  opts.workdir = spec.workdir;
  static_analyzer a(opts);
  auto r = a.analyze(spec.profile_command.empty() ? spec.command : spec.profile_command);
  if (spec.profile_command.empty() || spec.profile_command == spec.command)
    return r;
  auto main = a.analyze(spec.command);
  for (auto& f : main.findings)
    if (std::none_of(r.findings.begin(), r.findings.end(), [&](const finding& g) {
          return g.kind == f.kind && g.detail == f.detail;
        }))
      r.findings.push_back(f);
  r.gpu = r.gpu || main.gpu;
  r.network = r.network || main.network;
  r.multi_node = r.multi_node || main.multi_node;
  r.multi_core = r.multi_core || main.multi_core;
  if (r.gpu_vendor.empty())
    r.gpu_vendor = main.gpu_vendor;
  for (auto& s : main.software_stack)
    if (std::find(r.software_stack.begin(), r.software_stack.end(), s) == r.software_stack.end())
      r.software_stack.push_back(s);
  for (auto& f : main.files)
    if (std::find(r.files.begin(), r.files.end(), f) == r.files.end())
      r.files.push_back(f);
  return r;
}

exec_request profile_request(const std::string& run_id, const job_spec& spec,
                             const static_report& report, const profile_limits& limits) {
  exec_request req;
  req.job_id = run_id;
  req.argv = spec.profile_command.empty() ? spec.command : spec.profile_command;
  req.workdir = spec.workdir;
  req.env = spec.env;
  const usec budget = spec.profile_budget > 0 ? spec.profile_budget : limits.budget;
  req.limits.walltime = budget + 2 * sec_us; // backstop: run_profile kills at the budget
  req.limits.memory = spec.hints.memory > 0 ? 2 * spec.hints.memory : limits.memory;
  req.limits.pids = limits.pids;
  req.limits.max_output = limits.max_output;
  req.sandbox.own_network = true;
  req.sandbox.network_link = report.network;
  req.sandbox.mount_view = true;
  return req;
}

std::string over_task_limit(const exec_request& req, const usage_sample& s) {
  if (req.limits.pids <= 0 || s.threads <= req.limits.pids)
    return {};
  return "pids limit exceeded (" + std::to_string(s.threads) + " tasks, limit " +
         std::to_string(req.limits.pids) + ")";
}

profile_run run_profile(executor& ex, const exec_request& req, usec budget, usec period,
                        const std::function<usec()>& clock, const std::function<void(usec)>& sleep,
                        usec kill_grace) {
  profile_run run;
  run.budget = budget;
  run.started = clock();
  auto launched = ex.launch(req, run.started);
  if (auto* e = std::get_if<std::string>(&launched)) {
    run.error = *e;
    run.took = clock() - run.started;
    return run;
  }
  const auto& st = std::get<exec_state>(launched);
  run.sandbox = st.sandbox;
  run.net_link = st.net_link_info;
  run.net_link_error = st.net_link_error;
  bool killed = false;
  // The kill escalates after `kill_grace`; walltime is the executor's own backstop.
  const usec give_up = run.started + budget + kill_grace + 10 * sec_us;
  for (;;) {
    const usec now = clock();
    for (auto& ev : ex.poll(now)) {
      if (ev.job_id != req.job_id)
        continue;
      if (ev.sample) {
        run.samples.push_back(*ev.sample);
        if (auto why = over_task_limit(req, *ev.sample); !why.empty() && !killed) {
          ex.kill(req.job_id, why, 0, now);
          killed = true;
        }
      }
      if (ev.exited)
        run.exit = *ev.exited;
    }
    if (run.exit)
      break;
    if (!killed && now - run.started >= budget) {
      ex.kill(req.job_id, "profile budget reached", kill_grace, now);
      killed = true;
      run.cut = true;
    }
    if (now > give_up) { // never hang: the executor lost the job
      run.exit = exit_info{-1, 0, "lost: no exit after the budget", now};
      break;
    }
    sleep(period);
  }
  if (run.exit && run.exit->reason.find("walltime") != std::string::npos)
    run.cut = true;
  if (run.exit && (run.exit->exit_code != 0 || run.exit->signal != 0)) {
    std::ifstream in(ex.stderr_path(req.job_id), std::ios::binary | std::ios::ate);
    const std::streamoff size = in ? static_cast<std::streamoff>(in.tellg()) : 0;
    std::string tail(static_cast<std::size_t>(std::min<std::streamoff>(size, 4096)), '\0');
    in.seekg(size - static_cast<std::streamoff>(tail.size()));
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' '))
      tail.pop_back();
    tail = tail.substr(tail.find_last_of('\n') == std::string::npos ? 0 : tail.find_last_of('\n') + 1);
    run.stderr_tail = tail.size() > 240 ? tail.substr(0, 240) + "..." : tail;
  }
  run.took = clock() - run.started;
  return run;
}

std::string dynamic_run_blocker(const static_report& report) {
  return report.fatal;
}

finding run_finding(const profile_run& run, const std::string& command) {
  if (!run.error.empty())
    return {"error", "profile run failed to start: " + run.error, command};
  if (!run.exit)
    return {"error", "profile run did not finish", command};
  const auto& x = *run.exit;
  const std::string sandbox = run.sandbox.empty() ? "limits only" : run.sandbox;
  if (run.cut)
    return {"profile",
            "profile run cut at its budget of " + format_duration(run.budget) +
                " (sandbox: " + sandbox + "); totals extrapolated",
            command};
  if (x.reason == "out of memory" || x.reason == "output limit exceeded" ||
      x.reason.find("pids limit exceeded") != std::string::npos)
    return {"error", "profile run exceeded the sandbox's limits: " + x.reason, command};
  if (x.exit_code == 0)
    return {"profile", "profile run completed in " + format_duration(run.took) +
                           " (sandbox: " + sandbox + ")",
            command};
  std::string what = "profile run " + x.reason;
  if (x.exit_code == 127 || x.exit_code == 126)
    what += " (command not found or not executable inside the sandbox)";
  else if (run.samples.size() <= 2)
    what += " almost at once: the job probably fails the same way";
  what += " (sandbox: " + sandbox + ")";
  if (!run.stderr_tail.empty())
    what += "; its stderr ends: " + run.stderr_tail;
  return {"error", what, command};
}

resource_profile measure_profile(const std::string& job_id, const job_spec& spec,
                                 const static_report& report, const profile_run* run) {
  resource_profile p;
  p.job_id = job_id;
  std::vector<std::string> sources;
  if (run && !run->samples.empty()) {
    const auto s = summary_of(*run);
    p.cpu_mean = s.cpu.mean;
    p.cpu_stddev = s.cpu.stddev;
    p.cpu_lo = std::max(0.0, s.cpu.mean - 1.645 * s.cpu.stddev);
    p.cpu_hi = std::max(s.cpu.p95, s.cpu.mean + 1.645 * s.cpu.stddev);
    p.mem_mean = static_cast<bytes_t>(s.rss.mean);
    p.mem_stddev = static_cast<bytes_t>(s.rss.stddev);
    p.mem_peak = static_cast<bytes_t>(s.rss.peak);
    p.mem_lo = static_cast<bytes_t>(std::max(0.0, s.rss.mean - 1.645 * s.rss.stddev));
    p.mem_hi = std::max(p.mem_peak, static_cast<bytes_t>(s.rss.mean + 1.645 * s.rss.stddev));
    p.io_read = s.io_read;
    p.io_write = s.io_write;
    p.net_bytes = s.net_bytes;
    if (s.duration > 0)
      p.net_bandwidth_bps =
          static_cast<std::int64_t>(static_cast<double>(s.net_bytes) * 8e6 / static_cast<double>(s.duration));
    const bool failed = run->exit && run->exit->exit_code != 0 && !run->cut;
    p.partial = run->cut || failed;
    sources.push_back(run->cut ? "sandbox (cut at budget)" : failed ? "sandbox (failed run)" : "sandbox");
  }
  if (spec.hints.cpu > 0 && p.cpu_mean == 0) {
    p.cpu_mean = p.cpu_hi = static_cast<double>(spec.hints.cpu) / 1000.0;
    sources.push_back("hints");
  }
  if (spec.hints.memory > 0 && p.mem_peak == 0) {
    p.mem_mean = p.mem_peak = p.mem_hi = spec.hints.memory;
    if (std::find(sources.begin(), sources.end(), "hints") == sources.end())
      sources.push_back("hints");
  }
  p.gpu_type = spec.hints.gpu_type;
  p.gpus = spec.hints.gpus > 0 ? spec.hints.gpus : (spec.hints.gpu_type.empty() ? 0 : 1);
  if (report.gpu) {
    if (p.gpus == 0)
      p.gpus = 1;
    if (p.gpu_type.empty())
      p.gpu_type = report.gpu_vendor.empty() || report.gpu_vendor == "unknown"
                       ? "any"
                       : report.gpu_vendor;
    sources.push_back("static");
  } else if (!report.findings.empty()) {
    sources.push_back("static");
  }
  p.software_stack = spec.software;
  for (auto& s : report.software_stack)
    if (std::find(p.software_stack.begin(), p.software_stack.end(), s) == p.software_stack.end())
      p.software_stack.push_back(s);
  for (auto& s : sources)
    p.source += (p.source.empty() ? "" : "+") + s;
  p.findings = report.findings;
  if (run && run->error.empty() && report.network) {
    if (run->sandbox.find("link") != std::string::npos)
      p.findings.push_back(
          {"network",
           "network measured on the job's own link (host end plus the job's loopback)",
           run->net_link.empty() ? run->sandbox : run->net_link});
    else
      p.findings.push_back(
          {"profile",
           "the job needs the network but no measured link could be made" +
               (run->net_link_error.empty() ? std::string() : " (" + run->net_link_error + ")") +
               ": it kept the host network and its network bytes were not measured",
           run->sandbox.empty() ? "sandbox: limits only" : "sandbox: " + run->sandbox});
  }
  if (!run && !report.fatal.empty()) {
    p.partial = true;
    p.findings.push_back({"profile", "dynamic run skipped: " + report.fatal,
                          report.fatal_evidence});
  }
  if (run)
    p.findings.push_back(run_finding(*run, (spec.profile_command.empty() ? spec.command
                                                                        : spec.profile_command)
                                               .front()));
  p.profile_time = run ? run->took : 0;
  return p;
}

void apply_projection(resource_profile& p, const job_spec& spec, const profile_run& run) {
  if (run.samples.empty())
    return;
  const auto s = summary_of(run);
  const usec full = std::max(spec.walltime, p.runtime);
  const bool completed = run.exit && !run.cut && run.exit->exit_code == 0;
  const bool representative =
      !spec.profile_command.empty() && spec.profile_command != spec.command;
  const auto proj = project(s, full, completed, completed && representative);
  if (proj.grows) {
    p.mem_peak = std::max(p.mem_peak, proj.mem_peak);
    p.mem_mean = std::max(p.mem_mean, proj.mem_mean);
    p.mem_hi = std::max(p.mem_hi, p.mem_peak);
  }
  p.io_read = proj.io_read;
  p.io_write = proj.io_write;
  p.net_bytes = proj.net_bytes;
  p.findings.push_back(finding{"extrapolation", proj.basis,
                               std::to_string(s.samples) + " samples over " +
                                   format_duration(s.duration)});
}

} // namespace tender

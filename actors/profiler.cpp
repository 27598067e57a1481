// The profiler actor: runs a job's representative workload (its `profile`
// command) in a sandbox for its time budget, sampling usage at 20 Hz, and combines
// the measurement with the user's hints and the predictor into the job's
// resource_profile.
//
//   request --(no profile command / skip)--> profile from hints + predictor
//   request --> running (sampling) --(exit | budget)--> profile

#include "actors/actors.hpp"
#include "providers/executor.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cmath>

namespace tender {

namespace {

struct run {
  job_spec spec;
  caf::response_promise rp;
  std::vector<usage_sample> samples;
  usec started = 0;
  usec budget = 0;
  bool cut = false;
};

struct profiler_state {
  context_ptr ctx;
  std::unique_ptr<executor> exec;
  std::map<std::string, run> runs;
  bool ticking = false;
  static inline const char* name = "profiler";
};

using profiler_actor = caf::stateful_actor<profiler_state>;

constexpr usec sample_period = 50'000; // 20 Hz

template <class F> void stats(const std::vector<usage_sample>& v, F get, double& mean, double& sd,
                              double& peak) {
  mean = sd = peak = 0;
  if (v.empty())
    return;
  for (auto& s : v) {
    double x = get(s);
    mean += x;
    peak = std::max(peak, x);
  }
  mean /= static_cast<double>(v.size());
  for (auto& s : v) {
    double d = get(s) - mean;
    sd += d * d;
  }
  sd = std::sqrt(sd / static_cast<double>(v.size()));
}

resource_profile build(node_context& ctx, const std::string& job_id, const run* r,
                       const job_spec& spec, const std::string& note, usec took) {
  resource_profile p;
  p.job_id = job_id;
  std::vector<std::string> sources;
  if (r && !r->samples.empty()) {
    // The first sample has no CPU delta yet.
    std::vector<usage_sample> v(r->samples.begin() + (r->samples.size() > 1 ? 1 : 0),
                                r->samples.end());
    double m, sd, pk;
    stats(v, [](const usage_sample& s) { return static_cast<double>(s.cpu) / 1000.0; }, m, sd, pk);
    p.cpu_mean = m;
    p.cpu_stddev = sd;
    p.cpu_lo = std::max(0.0, m - 1.645 * sd);
    p.cpu_hi = m + 1.645 * sd;
    stats(r->samples, [](const usage_sample& s) { return static_cast<double>(s.rss); }, m, sd, pk);
    p.mem_mean = static_cast<bytes_t>(m);
    p.mem_stddev = static_cast<bytes_t>(sd);
    p.mem_peak = static_cast<bytes_t>(pk);
    p.mem_lo = static_cast<bytes_t>(std::max(0.0, m - 1.645 * sd));
    p.mem_hi = std::max(p.mem_peak, static_cast<bytes_t>(m + 1.645 * sd));
    p.io_read = r->samples.back().io_read;
    p.io_write = r->samples.back().io_write;
    p.net_bytes = r->samples.back().net_bytes;
    p.partial = r->cut;
    sources.push_back(r->cut ? "sandbox (cut at budget)" : "sandbox");
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
  p.software_stack = spec.software;
  auto pred = ctx.predict(spec, p);
  p.runtime = pred.runtime;
  p.runtime_lo = pred.runtime_lo;
  p.runtime_hi = pred.runtime_hi;
  p.model_version = pred.model_version;
  p.confidence = 0.9;
  sources.push_back(pred.model_version);
  for (auto& s : sources)
    p.source += (p.source.empty() ? "" : "+") + s;
  if (!note.empty())
    p.findings.push_back(finding{"profile", note, spec.profile_command.empty()
                                                    ? std::string()
                                                    : spec.profile_command.front()});
  p.findings.push_back(finding{"runtime", pred.basis, pred.model_version});
  p.profile_time = took;
  return p;
}

/// `key` is the executor's id for the run: "profile-<job id>".
void finish(profiler_actor* self, const std::string& key, const std::string& note) {
  auto& st = self->state;
  auto it = st.runs.find(key);
  if (it == st.runs.end())
    return;
  auto took = st.ctx->now() - it->second.started;
  auto p = build(*st.ctx, key.substr(8), &it->second, it->second.spec, note, took);
  it->second.rp.deliver(p);
  st.runs.erase(it);
}

} // namespace

caf::actor spawn_profiler(caf::actor_system& sys, context_ptr ctx) {
  return sys.spawn([](profiler_actor* self, context_ptr ctx) -> caf::behavior {
    auto& st = self->state;
    st.ctx = ctx;
    st.exec = std::make_unique<executor>(ctx->data_dir + "/profiles");
    return {
      [self](profile_atom, std::string& job_id, job_spec& spec) -> caf::result<resource_profile> {
        auto& st = self->state;
        auto now = st.ctx->now();
        if (spec.profile_command.empty() || spec.profile_skip) {
          return build(*st.ctx, job_id, nullptr, spec,
                       spec.profile_skip ? "dynamic profile skipped by the job"
                                         : "no profile command: hints and history only",
                       st.ctx->now() - now);
        }
        exec_request req;
        req.job_id = "profile-" + job_id;
        req.argv = spec.profile_command;
        req.workdir = spec.workdir;
        req.env = spec.env;
        req.limits.walltime = spec.profile_budget > 0 ? spec.profile_budget : 10 * sec_us;
        req.limits.memory = spec.hints.memory > 0 ? spec.hints.memory * 2 : (2ll << 30);
        req.limits.pids = 512;
        req.limits.max_output = 64ll << 20;
        auto launched = st.exec->launch(req, now);
        if (auto* err = std::get_if<std::string>(&launched)) {
          auto p = build(*st.ctx, job_id, nullptr, spec, "profile run failed: " + *err, 0);
          p.partial = true;
          return p;
        }
        run r;
        r.spec = spec;
        r.rp = self->make_response_promise();
        r.started = now;
        r.budget = req.limits.walltime;
        st.runs[req.job_id] = std::move(r);
        if (!st.ticking) {
          st.ticking = true;
          self->send(self, tick_atom::value);
        }
        return st.runs[req.job_id].rp;
      },
      [self](tick_atom) {
        auto& st = self->state;
        auto now = st.ctx->now();
        for (auto& ev : st.exec->poll(now)) {
          auto it = st.runs.find(ev.job_id);
          if (it == st.runs.end())
            continue;
          if (ev.sample)
            it->second.samples.push_back(*ev.sample);
          if (ev.exited) {
            auto& x = *ev.exited;
            std::string note = "profile run " + x.reason;
            if (x.reason.find("walltime") != std::string::npos) {
              it->second.cut = true;
              note = "profile run cut at its budget of " + format_duration(it->second.budget);
            } else if (x.exit_code != 0) {
              it->second.cut = true;
            }
            finish(self, ev.job_id, note);
          }
        }
        if (st.runs.empty()) {
          st.ticking = false;
          return;
        }
        self->delayed_send(self, std::chrono::microseconds(sample_period), tick_atom::value);
      },
      [self](stop_atom) { self->quit(); },
    };
  }, ctx);
}

} // namespace tender

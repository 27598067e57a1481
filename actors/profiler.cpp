// The profiler actor: analyses the job's command statically (ELF dependencies,
// scripts), runs its representative workload (its `profile` command) in a sandbox
// (own network namespace unless it needs the network, bubblewrap, limits) for its
// time budget, sampling usage at 20 Hz, and combines the measurement, extrapolated to
// the full runtime, with the findings, the user's hints and the predictor into the
// job's resource_profile. The thinking is in providers/profiling.hpp.
//
//   request --(no profile command / skip)--> profile from hints + predictor
//   request --> running (sampling) --(exit | budget)--> profile

#include "actors/actors.hpp"
#include "providers/executor.hpp"
#include "providers/profile_cache.hpp"
#include "providers/profiling.hpp"
#include "providers/static_analysis.hpp"

#include <caf/all.hpp>
#include <fstream>
#include <spdlog/spdlog.h>

#include <cmath>

namespace tender {

namespace {

struct run {
  job_spec spec;
  caf::response_promise rp;
  static_report report;
  profile_run result; ///< samples, exit, sandbox, as run_profile() would fill them
  bool kill_sent = false;
  std::string cache_key;
  exec_request req;
};

struct profiler_state {
  context_ptr ctx;
  std::unique_ptr<executor> exec;
  std::unique_ptr<profile_cache> cache;
  std::map<std::string, run> runs;
  bool ticking = false;
  static inline const char* name = "profiler";
};

using profiler_actor = caf::stateful_actor<profiler_state>;

constexpr usec sample_period = 50'000; // 20 Hz
constexpr usec kill_grace = 500'000;   // SIGTERM to SIGKILL at the budget

/// The measured profile plus the predictor's runtime, extrapolated to that runtime.
resource_profile build(node_context& ctx, const std::string& job_id, const job_spec& spec,
                       const static_report& report, const profile_run* r,
                       const std::string& note, usec took,
                       const std::string& note_evidence = {}) {
  auto p = measure_profile(job_id, spec, report, r);
  auto pred = ctx.predict(spec, p);
  p.runtime = pred.runtime;
  p.runtime_lo = pred.runtime_lo;
  p.runtime_hi = pred.runtime_hi;
  p.model_version = pred.model_version;
  p.confidence = 0.9;
  p.source += (p.source.empty() ? "" : "+") + pred.model_version;
  if (r)
    apply_projection(p, spec, *r);
  if (!note.empty())
    p.findings.push_back(finding{"profile", note,
                                 !note_evidence.empty()          ? note_evidence
                                 : spec.profile_command.empty() ? std::string()
                                                                : spec.profile_command.front()});
  p.findings.push_back(finding{"runtime", pred.basis, pred.model_version});
  p.profile_time = took;
  return p;
}

/// The last non-empty line of a file (at most its final 4 KiB are read).
std::string last_line(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f)
    return {};
  auto size = static_cast<std::streamoff>(f.tellg());
  auto from = std::max<std::streamoff>(0, size - 4096);
  f.seekg(from);
  std::string tail(static_cast<std::size_t>(size - from), '\0');
  f.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r'))
    tail.pop_back();
  auto nl = tail.find_last_of('\n');
  return nl == std::string::npos ? tail : tail.substr(nl + 1);
}

/// `key` is the executor's id for the run: "profile-<job id>".
void finish(profiler_actor* self, const std::string& key) {
  auto& st = self->state;
  auto it = st.runs.find(key);
  if (it == st.runs.end())
    return;
  auto& r = it->second;
  r.result.took = st.ctx->now() - r.result.started;
  if (r.result.exit && r.result.exit->exit_code != 0)
    r.result.stderr_tail = last_line(st.exec->stderr_path(key));
  std::string why;
  if (!st.cache->put(r.cache_key, r.result, &why))
    spdlog::debug("profile of {} not cached: {}", key, why);
  auto p = build(*st.ctx, key.substr(8), r.spec, r.report, &r.result, "", r.result.took);
  r.rp.deliver(p);
  st.runs.erase(it);
}

} // namespace

caf::actor spawn_profiler(caf::actor_system& sys, context_ptr ctx) {
  return sys.spawn([](profiler_actor* self, context_ptr ctx) -> caf::behavior {
    auto& st = self->state;
    st.ctx = ctx;
    st.exec = std::make_unique<executor>(ctx->data_dir + "/profiles");
    st.cache = std::make_unique<profile_cache>(ctx->data_dir + "/profile-cache");
    return {
      [self](profile_atom, std::string& job_id, job_spec& spec) -> caf::result<resource_profile> {
        auto& st = self->state;
        auto now = st.ctx->now();
        auto report = analyze_job(spec);
        if (spec.profile_command.empty() || spec.profile_skip) {
          return build(*st.ctx, job_id, spec, report, nullptr,
                       spec.profile_skip ? "dynamic profile skipped by the job"
                                         : "no profile command: static analysis, hints and history only",
                       st.ctx->now() - now);
        }
        // A job whose entry script does not compile is not run: it would only fail the
        // same way and spend the budget.
        if (auto blocker = dynamic_run_blocker(report); !blocker.empty()) {
          auto p = build(*st.ctx, job_id, spec, report, nullptr, "dynamic run skipped: " + blocker,
                         st.ctx->now() - now);
          p.partial = true;
          return p;
        }
        // A job profiled before with the same command, files and inputs is not run again.
        const auto key = profile_cache::key(spec, report);
        if (auto cached = st.cache->get(key)) {
          auto p = build(*st.ctx, job_id, spec, report, &*cached,
                         "profile from the cache (measured earlier in " +
                             format_duration(cached->took) + ")",
                         st.ctx->now() - now, "profile cache " + key.substr(0, 16));
          return p;
        }
        auto req = profile_request("profile-" + job_id, spec, report);
        auto launched = st.exec->launch(req, now);
        if (auto* err = std::get_if<std::string>(&launched)) {
          profile_run failed;
          failed.error = *err;
          auto p = build(*st.ctx, job_id, spec, report, &failed, "", st.ctx->now() - now);
          p.partial = true;
          return p;
        }
        run r;
        r.spec = spec;
        r.report = std::move(report);
        r.rp = self->make_response_promise();
        r.result.started = now;
        r.result.budget = spec.profile_budget > 0 ? spec.profile_budget : profile_limits{}.budget;
        r.result.sandbox = std::get<exec_state>(launched).sandbox;
        r.result.net_link = std::get<exec_state>(launched).net_link_info;
        r.result.net_link_error = std::get<exec_state>(launched).net_link_error;
        r.cache_key = key;
        r.req = req;
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
        std::vector<std::string> done;
        for (auto& ev : st.exec->poll(now)) {
          auto it = st.runs.find(ev.job_id);
          if (it == st.runs.end())
            continue;
          if (ev.sample) {
            it->second.result.samples.push_back(*ev.sample);
            if (auto why = over_task_limit(it->second.req, *ev.sample);
                !why.empty() && !it->second.kill_sent) {
              st.exec->kill(ev.job_id, why, 0, now);
              it->second.kill_sent = true;
            }
          }
          if (ev.exited) {
            it->second.result.exit = *ev.exited;
            if (ev.exited->reason.find("walltime") != std::string::npos)
              it->second.result.cut = true;
            done.push_back(ev.job_id);
          }
        }
        for (auto& key : done)
          finish(self, key);
        for (auto& [key, r] : st.runs)
          if (!r.kill_sent && now - r.result.started >= r.result.budget) {
            st.exec->kill(key, "profile budget reached", kill_grace, now);
            r.kill_sent = true;
            r.result.cut = true;
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

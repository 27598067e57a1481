// `tender demo`: an embedded node (the dev configuration) runs the example jobs
// end to end, over its own ZeroMQ endpoint, and prints each negotiation and a
// final table of predicted against measured usage.

#include "actors/node.hpp"
#include "config/job_file.hpp"
#include "config/node_config.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"

#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#ifndef TENDER_SOURCE_DIR
#define TENDER_SOURCE_DIR "."
#endif

namespace tender {

namespace fs = std::filesystem;

namespace {

struct demo_job {
  std::string file;
  std::string expect; ///< the state the demo expects it to end in
  std::string id;
  job_status last;
  bool negotiation_shown = false;
};

std::string examples_dir(const std::string& given) {
  if (!given.empty())
    return given;
  for (auto cand : {std::string("examples/jobs"), std::string(TENDER_SOURCE_DIR) + "/examples/jobs"})
    if (fs::exists(cand + "/cpu-burn.toml"))
      return cand;
  return std::string(TENDER_SOURCE_DIR) + "/examples/jobs";
}

} // namespace

int run_demo(const demo_args& a) {
  auto dir = examples_dir(a.examples);
  std::vector<demo_job> jobs = {{dir + "/cpu-burn.toml", "done", {}, {}, false},
                                {dir + "/memory-grow.toml", "done", {}, {}, false},
                                {dir + "/over-budget.toml", "refused", {}, {}, false}};
  auto t0 = wall_now();
  node_options opt;
  opt.listen = "tcp://127.0.0.1:*";
  opt.quiet = a.quiet;
  opt.dev = true; // the embedded dev config, on loopback: plaintext is allowed
  auto started = node::start(dev_config(), opt);
  if (auto* err = std::get_if<std::string>(&started)) {
    std::fprintf(stderr, "tender demo: %s\n", err->c_str());
    return 1;
  }
  auto& nd = *std::get<0>(started);
  std::printf("tender demo: embedded node at %s (data dir %s)\n\n", nd.endpoint().c_str(),
              nd.data_dir().c_str());
  client cl(nd.endpoint(), "demo");
  if (auto r = cl.call(providers_query{}); auto* e = std::get_if<envelope>(&r)) {
    if (auto* l = std::get_if<provider_list>(&e->body)) {
      std::printf("providers:\n");
      for (auto& p : l->providers)
        std::printf("  %-12s %-7s %s\n", p.name.c_str(), p.kind.c_str(),
                    render_capacity(p).c_str());
      std::printf("\n");
    }
  }
  for (auto& j : jobs) {
    auto spec = load_job_file(j.file, wall_now());
    if (auto* err = std::get_if<config_error>(&spec)) {
      std::fprintf(stderr, "tender demo: %s\n", err->to_string().c_str());
      return 1;
    }
    auto& js = std::get<job_spec>(spec);
    if (js.user.empty())
      js.user = login_name();
    auto r = cl.call(job_submit{js, ""});
    if (auto* err = std::get_if<std::string>(&r)) {
      std::fprintf(stderr, "tender demo: %s\n", err->c_str());
      return 1;
    }
    auto& e = std::get<envelope>(r);
    if (auto* s = std::get_if<job_status>(&e.body)) {
      j.id = s->job_id;
      j.last = *s;
      std::printf("submitted %-14s as %s\n", s->name.c_str(), s->job_id.c_str());
    } else {
      std::fprintf(stderr, "tender demo: submission of %s refused\n", j.file.c_str());
      return 1;
    }
  }
  std::printf("\n");
  auto deadline = wall_now() + 50 * sec_us;
  bool all_final = false;
  while (!all_final && wall_now() < deadline) {
    all_final = true;
    for (auto& j : jobs) {
      auto r = cl.call(job_query{j.id});
      if (auto* e = std::get_if<envelope>(&r))
        if (auto* s = std::get_if<job_status>(&e->body)) {
          if (s->state != j.last.state)
            std::printf("[%5.1fs] %-14s %-11s %s\n", static_cast<double>(wall_now() - t0) / 1e6,
                        s->name.c_str(), to_string(s->state), s->reason.c_str());
          j.last = *s;
        }
      auto st = j.last.state;
      if (!j.negotiation_shown && st != job_state::submitted && st != job_state::profiling &&
          st != job_state::negotiating) {
        j.negotiation_shown = true;
        std::printf("\n  negotiation for %s:\n%s", j.last.name.c_str(),
                    render_offers(j.last).c_str());
        if (j.last.has_profile)
          std::printf("  profile: cpu %.2f cores, memory peak %s, run time %s [%s, %s] (%s)\n",
                      j.last.profile.cpu_mean, format_bytes(j.last.profile.mem_peak).c_str(),
                      format_duration(j.last.profile.runtime).c_str(),
                      format_duration(j.last.profile.runtime_lo).c_str(),
                      format_duration(j.last.profile.runtime_hi).c_str(),
                      j.last.profile.source.c_str());
        std::printf("  => %s\n\n", j.last.reason.c_str());
      }
      if (!is_final(j.last.state))
        all_final = false;
    }
    if (!all_final)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("\n%-14s %-9s %-9s %10s | %-30s | %-30s\n", "JOB", "STATE", "PROVIDER", "PRICE",
              "PREDICTED cpu / mem / time", "MEASURED cpu / mem / time");
  int bad = 0;
  for (auto& j : jobs) {
    auto& s = j.last;
    char pred[64] = "-", meas[64] = "-";
    if (s.has_profile)
      std::snprintf(pred, sizeof pred, "%.2f / %s / %s", s.profile.cpu_mean,
                    format_bytes(s.profile.mem_peak).c_str(),
                    format_duration(s.profile.runtime).c_str());
    if (s.started_at && s.finished_at > s.started_at)
      std::snprintf(meas, sizeof meas, "%.2f / %s / %s", s.cpu_used_mean,
                    format_bytes(s.mem_used_peak).c_str(),
                    format_duration(s.finished_at - s.started_at).c_str());
    std::printf("%-14s %-9s %-9s %10s | %-30s | %-30s\n", s.name.c_str(), to_string(s.state),
                s.provider.empty() ? "-" : s.provider.c_str(),
                s.provider.empty() ? "-" : ("$" + format_usd(s.price)).c_str(), pred, meas);
    if (j.expect != to_string(s.state)) {
      ++bad;
      std::printf("  ^ expected %s: %s\n", j.expect.c_str(), s.reason.c_str());
    }
  }
  std::printf("\ntender demo: %zu jobs in %.1f s, %s\n", jobs.size(),
              static_cast<double>(wall_now() - t0) / 1e6,
              bad == 0 ? "all as expected" : "SOME JOBS DID NOT END AS EXPECTED");
  auto data = nd.data_dir();
  nd.stop();
  if (bad == 0) {
    std::error_code ec;
    fs::remove_all(data, ec); // the demo's temporary data dir; kept when something went wrong
  }
  return bad == 0 ? 0 : 1;
}

} // namespace tender

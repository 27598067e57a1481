#include "tools/replay_cmd.hpp"

#include "actors/cost_replay.hpp"
#include "actors/trace_replay.hpp"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <memory>
#include <unistd.h>

namespace tender {

namespace {

struct replay_args {
  std::string swf;
  replay_options opt;
  bool json = false;
  bool quiet = false;
  std::string providers; ///< a providers config: the cost replay
  cost_options cost;
  double memory_per_proc_gib = 2.0;
  std::string attempts_csv;
};

/// A one-line progress bar on stderr, only when stderr is a terminal.
void progress_bar(std::size_t done, std::size_t total) {
  if (!isatty(STDERR_FILENO) || total == 0)
    return;
  const int width = 40;
  const int fill = static_cast<int>(static_cast<double>(done) / static_cast<double>(total) * width);
  std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu jobs", fill, "########################################",
               width - fill, "", done, total);
  if (done >= total)
    std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

int run_cost_replay(const replay_args& a) {
  cost_options opt = a.cost;
  opt.keep_attempts = !a.attempts_csv.empty();
  opt.procs = a.opt.procs;
  opt.seed = a.opt.seed;
  opt.predict = a.opt;
  opt.memory_per_proc = static_cast<bytes_t>(std::llround(a.memory_per_proc_gib * 1073741824.0));
  if (!a.quiet)
    opt.progress = [](const std::string& policy, std::size_t done, std::size_t total) {
      if (isatty(STDERR_FILENO))
        std::fprintf(stderr, "%s: ", policy.c_str());
      progress_bar(done, total);
    };
  auto r = cost_replay_swf(a.swf, a.providers, opt);
  if (auto* e = std::get_if<std::string>(&r)) {
    std::fprintf(stderr, "tender replay: %s\n", e->c_str());
    return 2;
  }
  auto& res = std::get<cost_result>(r);
  if (!a.attempts_csv.empty()) {
    std::FILE* f = std::fopen(a.attempts_csv.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "tender replay: cannot write %s\n", a.attempts_csv.c_str());
      return 2;
    }
    const std::string csv = attempts_csv(res);
    std::fwrite(csv.data(), 1, csv.size(), f);
    std::fclose(f);
  }
  if (a.json)
    std::printf("%s\n", res.to_json().dump(2).c_str());
  else
    std::printf("%s", res.table().c_str());
  return 0;
}

int run_replay(const replay_args& a) {
  if (!a.providers.empty())
    return run_cost_replay(a);
  replay_options opt = a.opt;
  if (!a.quiet)
    opt.progress = progress_bar;
  auto r = replay_swf(a.swf, opt);
  if (auto* e = std::get_if<std::string>(&r)) {
    std::fprintf(stderr, "tender replay: %s\n", e->c_str());
    return 2;
  }
  auto& res = std::get<replay_result>(r);
  if (a.json)
    std::printf("%s\n", res.to_json().dump(2).c_str());
  else
    std::printf("%s", res.table().c_str());
  return 0;
}

} // namespace

void add_replay_commands(CLI::App& app, std::function<int()>& action) {
  auto args = std::make_shared<replay_args>();
  auto* rp = app.add_subcommand(
      "replay", "Replay a job trace (SWF) through the cluster's backfilling on virtual time");
  rp->add_option("--swf", args->swf, "Trace file (SWF, .gz or plain)")->required();
  rp->add_option("--procs", args->opt.procs, "Machine size (default: the trace's MaxProcs)");
  rp->add_option("--policy", args->opt.policy,
                 "easy (requested times), easy-sjbf, easy++ (last-two + correction, SJBF), "
                 "tender (the run-time model, trained online)")
      ->capture_default_str();
  rp->add_option(
        "--plan", args->opt.tender_plan,
        "tender: run time the plan counts on: median, lower80, upper80, upper (90 % bound)")
      ->capture_default_str();
  rp->add_option("--first-train", args->opt.first_train,
                 "tender: finished jobs before the first training")
      ->capture_default_str();
  rp->add_option("--retrain-every", args->opt.retrain_every,
                 "tender: finished jobs between retrainings")
      ->capture_default_str();
  rp->add_option("--providers", args->providers,
                 "Providers config (a node TOML: one local provider = the cluster, markets, "
                 "[scoring]): replay the cost of cluster-only, greedy and tender placement");
  rp->add_option("--deadline-factor", args->cost.deadline_factor,
                 "--providers: deadline = submit + this x the job's run time")
      ->capture_default_str();
  rp->add_option("--budget-factor", args->cost.budget_factor,
                 "--providers: budget = this x the cheapest on-demand price for the requested time")
      ->capture_default_str();
  rp->add_option("--instance-procs", args->cost.instance_procs,
                 "--providers: most processors on one market instance (wider jobs take several)")
      ->capture_default_str();
  rp->add_option("--mem-per-proc", args->memory_per_proc_gib,
                 "--providers: GiB of memory per processor")
      ->capture_default_str();
  rp->add_option("--attempts", args->attempts_csv,
                 "--providers: write every placement of every job to this CSV file");
  rp->add_option("--limit", args->cost.limit, "--providers: replay only the first N jobs (0: all)")
      ->capture_default_str();
  rp->add_option("--seed", args->opt.seed, "Seed of the model and the preemption draws")
      ->capture_default_str();
  rp->add_flag("--json", args->json, "Machine-readable output");
  rp->add_flag("--quiet", args->quiet, "No progress bar");
  rp->callback([args, &action] { action = [args] { return run_replay(*args); }; });
}

} // namespace tender

// tender: one binary for the node, remote providers, the CLI and the demo.

#include "actors/bench.hpp"
#include "tools/bus_cmd.hpp"
#include "tools/commands.hpp"
#include "tools/federation_cmd.hpp"
#include "tools/keygen_cmd.hpp"
#include "tools/model_cmd.hpp"
#include "tools/profile_cmd.hpp"
#include "tools/replay_cmd.hpp"
#include "tools/usage_cmd.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <functional>

int main(int argc, char** argv) {
  using namespace tender;
  // libgomp reads OMP_WAIT_POLICY once, when it is loaded. Its default (spin for a
  // while after every parallel region) made XGBoost training 4x slower on a busy
  // 2-core machine, so unless the caller chose a policy, run again with the passive
  // one. If the exec fails we carry on as we are.
  if (!std::getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0)
    execv("/proc/self/exe", argv);
  CLI::App app{"tender: gets every job the right resources, at the right price, before it runs"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  app.footer(keygen_help_footer());

  agent_args aa;
  auto* agent = app.add_subcommand("agent", "Run a node");
  agent->add_flag("--dev", aa.dev, "Embedded default: local provider and two markets, temporary data dir");
  agent->add_option("--config", aa.config, "Node configuration (TOML)");
  agent->add_option("--data-dir", aa.data_dir, "Where the journal and run directories live");
  agent->add_option("--listen", aa.listen, "ZeroMQ endpoint to bind (tcp://127.0.0.1:7470; port * picks one)");
  agent->add_flag("--quiet", aa.quiet, "Only warnings and errors on stderr");
  agent->add_option("--key", aa.key,
                    "This node's secret key file (CurveZMQ on every TCP endpoint; overrides "
                    "[security] key)");
  agent->add_flag("--insecure", aa.insecure,
                  "Allow plaintext without keys (loopback endpoints only; --dev implies it)");

  provider_args pa;
  auto* prov = app.add_subcommand("provider", "Run a provider in its own process, joining a node over the mesh");
  prov->add_option("--config", pa.config, "Configuration with [[providers]] (TOML)")->required();
  prov->add_option("--name", pa.name, "Which provider of the file (default: the first)");
  prov->add_option("--connect", pa.connect, "The node's endpoint")->required();
  prov->add_option("--data-dir", pa.data_dir, "Where run directories live (default: a temporary dir)");
  prov->add_option("--key", pa.key,
                   "This provider's secret key file (default: the config's [security] key)")
    ->envname("TENDER_KEY");
  prov->add_option("--server-key", pa.server_key, "The node's public key: its .pub file or Z85")
    ->envname("TENDER_SERVER_KEY");

  client_args ca;
  auto add_client = [&ca](CLI::App* c) {
    c->add_option("--connect", ca.connect, "The node's endpoint")->capture_default_str();
    c->add_flag("--json", ca.json, "Machine-readable output");
    c->add_option("--key", ca.key, "This client's secret key file (CurveZMQ; from tender keygen)")
      ->envname("TENDER_KEY");
    c->add_option("--server-key", ca.server_key, "The node's public key: its .pub file or Z85")
      ->envname("TENDER_SERVER_KEY");
  };
  std::string job_file, job_id;
  bool wait = false;
  auto* submit = app.add_subcommand("submit", "Submit a job file");
  submit->add_option("job", job_file, "Job file (TOML)")->required();
  submit->add_flag("--wait", wait, "Wait until the job has ended");
  add_client(submit);
  auto* status = app.add_subcommand("status", "Show one job");
  status->add_option("id", job_id, "Job id")->required();
  add_client(status);
  auto* jobs = app.add_subcommand("jobs", "List jobs");
  add_client(jobs);
  auto* cancel = app.add_subcommand("cancel", "Cancel a job");
  cancel->add_option("id", job_id, "Job id")->required();
  add_client(cancel);
  auto* providers = app.add_subcommand("providers", "List the node's providers");
  add_client(providers);
  auto* schedule = app.add_subcommand(
      "schedule", "Show the plan: running jobs, reservations, predicted ends, free capacity over time");
  add_client(schedule);
  auto* explain = app.add_subcommand(
    "explain", "Show every offer of a job's negotiation, its score breakdown and why the winner won");
  explain->add_option("id", job_id, "Job id")->required();
  add_client(explain);

  profile_args pra;
  auto* prof = app.add_subcommand("profile", "Profile a job file locally: static analysis and a sandboxed run");
  prof->add_option("job", pra.job_file, "Job file (TOML)")->required();
  prof->add_flag("--json", pra.json, "Machine-readable output");
  prof->add_option("--budget", pra.budget, "Time budget of the profile run (e.g. 10s)");
  prof->add_option("--cache", pra.cache, "Profile cache directory");
  prof->add_option("--data-dir", pra.data_dir, "Keep the run directory here");

  demo_args da;
  auto* demo = app.add_subcommand("demo", "Start an embedded node and run the example jobs");
  demo->add_option("--examples", da.examples, "Folder of example job files");
  bool verbose = false;
  demo->add_flag("--verbose", verbose, "Show the node's log");

  std::function<int()> model_action;
  add_model_commands(app, model_action);
  std::function<int()> replay_action;
  add_replay_commands(app, replay_action);
  std::function<int()> usage_action;
  add_usage_commands(app, usage_action);
  std::function<int()> bus_action;
  add_bus_commands(app, bus_action);
  std::function<int()> keygen_action;
  add_keygen_command(app, keygen_action);
  std::function<int()> federation_action;
  add_federation_commands(app, federation_action);
  // The node's own model, asked over the mesh.
  auto* model = app.get_subcommand("model");
  auto* mstatus = model->add_subcommand("status", "Show the model a running node predicts with");
  add_client(mstatus);
  negotiate_bench_options nbo;
  bool nb_json = false;
  auto* bench = app.get_subcommand("bench");
  auto* bneg = bench->add_subcommand(
    "negotiate", "Negotiations per second and submit-to-commit latency of the auction machinery");
  bneg->add_option("--providers", nbo.providers, "Providers bidding")->capture_default_str();
  bneg->add_option("--rounds", nbo.rounds, "Maximum auction rounds")->capture_default_str();
  bneg->add_option("--jobs", nbo.jobs, "Negotiations to run")->capture_default_str();
  bneg->add_option("--transport", nbo.transport, "inproc (one process, CAF messages) or tcp")
    ->capture_default_str();
  bneg->add_option("--rate", nbo.rate, "Offered negotiations/s, open loop (0 = closed loop)")
    ->capture_default_str();
  auto* window_opt = bneg->add_option(
    "--window", nbo.window, "Closed loop: negotiations in flight (default 32 in process, 128 over tcp)");
  bneg->add_flag("--json", nb_json, "Machine-readable output");
  bneg->add_option("--data-dir", nbo.data_dir, "Keep the journal here (default: a temporary dir)");
  double group_commit_ms = static_cast<double>(nbo.group_commit) / 1000.0;
  bneg->add_option("--group-commit-ms", group_commit_ms,
                   "The journal's group commit interval, milliseconds")
    ->capture_default_str();
  bneg->add_option("--raw-messages", nbo.raw_messages,
                   "tcp: messages of the raw ZeroMQ measurement")->capture_default_str();
  bneg->add_flag("--floor", nbo.floor,
                 "The same actors and messages with no bidding, scoring or journal: what the "
                 "actor framework alone costs (closed loop, inproc)");
  // The raw measurement's sender, started by `bench negotiate --transport tcp`.
  std::string raw_connect;
  std::size_t raw_size = 0;
  std::int64_t raw_count = 0;
  auto* braw = bench->add_subcommand("zmq-raw", "")->group("");
  braw->add_option("--connect", raw_connect)->required();
  braw->add_option("--size", raw_size)->required();
  braw->add_option("--count", raw_count)->required();
  auto* mretrain = model->add_subcommand(
    "retrain", "Retrain a running node's model on its finished jobs now (kept only if better)");
  add_client(mretrain);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*braw)
    return run_zmq_raw_sender(raw_connect, raw_size, raw_count);
  if (*bneg) {
    if (window_opt->count() == 0)
      nbo.window = default_window(nbo.transport);
    // Out of range (or not a number) comes out below 1 us: refused by the bench, naming it.
    nbo.group_commit = group_commit_ms >= 0.001 && group_commit_ms <= 60'000.0
                           ? static_cast<usec>(group_commit_ms * 1000.0)
                           : 0;
    auto r = run_negotiate_bench(nbo);
    if (auto* err = std::get_if<std::string>(&r)) {
      std::fprintf(stderr, "tender bench negotiate: %s\n", err->c_str());
      return 2;
    }
    auto& res = std::get<negotiate_bench_result>(r);
    if (nb_json)
      std::printf("%s\n", res.to_json().dump(2).c_str());
    else
      std::printf("%s", res.table().c_str());
    return 0;
  }
  if (*mstatus)
    return run_model_status(ca, false);
  if (*mretrain)
    return run_model_status(ca, true);
  if (model_action)
    return model_action();
  if (replay_action)
    return replay_action();
  if (usage_action)
    return usage_action();
  if (bus_action)
    return bus_action();
  if (keygen_action)
    return keygen_action();
  if (federation_action)
    return federation_action();
  if (*agent)
    return run_agent(aa);
  if (*prov)
    return run_provider(pa);
  if (*submit)
    return run_submit(ca, job_file, wait);
  if (*status)
    return run_status(ca, job_id);
  if (*schedule)
    return run_schedule(ca);
  if (*jobs)
    return run_jobs(ca);
  if (*cancel)
    return run_cancel(ca, job_id);
  if (*providers)
    return run_providers(ca);
  if (*explain)
    return run_explain(ca, job_id);
  if (*prof)
    return run_profile_cmd(pra);
  if (*demo) {
    da.quiet = !verbose;
    return run_demo(da);
  }
  return 2;
}

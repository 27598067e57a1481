#include "tools/federation_cmd.hpp"

#include "actors/node.hpp"
#include "config/node_config.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

namespace tender {

namespace {

namespace fs = std::filesystem;

struct federation_bench_args {
  int jobs = 50;
  bool json = false;
};

std::string site_toml(const std::string& name, int cpus, const std::string& peer_endpoint) {
  std::string t =
      "[security]\ninsecure = true\n[auction]\nround_timeout = \"1s\"\n[node]\nname = \"" + name +
      "\"\n"
      "[[providers]]\nname = \"" +
      name +
      "-local\"\nkind = \"local\"\n"
      "cpus = " +
      std::to_string(cpus) +
      "\nmemory = \"4GiB\"\n"
      "price_per_core_hour = 0.04\nprice_per_gib_hour = 0.005\n"
      "latency = \"1ms\"\navailability = 0.99\nplan_horizon = 0\n";
  if (!peer_endpoint.empty())
    t += "[[peers]]\nname = \"bench-a\"\nendpoint = \"" + peer_endpoint + "\"\n";
  return t;
}

std::variant<std::unique_ptr<node>, std::string> start_site(const std::string& toml,
                                                            const std::string& dir) {
  auto cfg = parse_node_toml(toml, "<bench federation>", dir);
  if (auto* err = std::get_if<config_error>(&cfg))
    return err->to_string();
  node_options opt;
  opt.listen = "tcp://127.0.0.1:*";
  opt.data_dir = dir;
  opt.quiet = true;
  return node::start(std::get<node_config>(std::move(cfg)), opt);
}

/// The first instant the journal saw the job enter `state` (0 = never).
usec entered_at(sqlite3* db, const std::string& job_id, job_state state) {
  sqlite3_stmt* st = nullptr;
  usec at = 0;
  if (sqlite3_prepare_v2(db,
                         "SELECT at FROM transitions WHERE job_id = ? AND to_state = ? "
                         "ORDER BY id LIMIT 1",
                         -1, &st, nullptr) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, job_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, static_cast<int>(state));
    if (sqlite3_step(st) == SQLITE_ROW)
      at = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return at;
}

struct sample_set {
  std::vector<double> ms;        ///< submit -> committed
  std::vector<double> placement; ///< negotiating -> committed (the auctions alone)
  std::map<std::string, int> providers;
  static double pct(std::vector<double> v, double q) {
    if (v.empty())
      return 0;
    std::sort(v.begin(), v.end());
    auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  }
  double pct(double q) const { return pct(ms, q); }
  double place(double q) const { return pct(placement, q); }
};

/// Runs `n` jobs of `cpus` cores one after another through site A; each one's
/// submit-to-commit time is read from A's journal once it has finished.
std::optional<std::string> run_jobs(client& c, sqlite3* db, int n, millicores cpus,
                                    const std::string& tag, sample_set& out) {
  for (int i = 0; i < n; ++i) {
    job_submit sub;
    sub.spec.name = "bench-" + tag + "-" + std::to_string(i);
    sub.spec.user = login_name();
    sub.spec.command = {"true"};
    sub.spec.profile_skip = true;
    sub.spec.walltime = 60 * sec_us;
    sub.spec.hints.cpu = cpus;
    sub.spec.hints.memory = 64LL << 20;
    auto r = c.call(sub);
    if (auto* err = std::get_if<std::string>(&r))
      return *err;
    auto* st = std::get_if<job_status>(&std::get<envelope>(r).body);
    if (!st)
      return "submit answered with " + std::string(type_name(std::get<envelope>(r).body));
    const auto id = st->job_id;
    const auto submitted = st->submitted_at;
    job_status last;
    auto deadline = wall_now() + 60 * sec_us;
    while (true) {
      auto q = c.call(job_query{id});
      if (auto* err = std::get_if<std::string>(&q))
        return *err;
      if (auto* s = std::get_if<job_status>(&std::get<envelope>(q).body))
        last = *s;
      if (is_final(last.state))
        break;
      if (wall_now() > deadline)
        return "job " + id + " did not finish within 60 s (state " + to_string(last.state) + ")";
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (last.state != job_state::done)
      return "job " + id + " ended " + to_string(last.state) + ": " + last.reason;
    auto at = entered_at(db, id, job_state::committed);
    auto negotiating = entered_at(db, id, job_state::negotiating);
    if (at == 0 || negotiating == 0)
      return "job " + id + ": no negotiating or committed transition in the journal";
    out.ms.push_back(static_cast<double>(at - submitted) / 1000.0);
    out.placement.push_back(static_cast<double>(at - negotiating) / 1000.0);
    ++out.providers[last.provider];
  }
  return std::nullopt;
}

int run_federation_bench(const federation_bench_args& a) {
  char tmpl[] = "/tmp/tender-bench-federation-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("tender bench federation: mkdtemp");
    return 1;
  }
  std::string root = tmpl;
  int rc = 1;
  {
    auto na = start_site(site_toml("bench-a", 1, ""), root + "/a");
    if (auto* err = std::get_if<std::string>(&na)) {
      std::fprintf(stderr, "tender bench federation: site A: %s\n", err->c_str());
      return 1;
    }
    auto& A = *std::get<0>(na);
    auto nb = start_site(site_toml("bench-b", 16, A.endpoint()), root + "/b");
    if (auto* err = std::get_if<std::string>(&nb)) {
      std::fprintf(stderr, "tender bench federation: site B: %s\n", err->c_str());
      return 1;
    }
    client c(A.endpoint(), "bench");
    // B joins A's auctions as provider "bench-b".
    bool joined = false;
    for (int i = 0; i < 200 && !joined; ++i) {
      auto r = c.call(providers_query{});
      if (auto* e = std::get_if<envelope>(&r))
        if (auto* l = std::get_if<provider_list>(&e->body))
          for (auto& p : l->providers)
            joined = joined || (p.name == "bench-b" && p.kind == "site");
      if (!joined)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!joined) {
      std::fprintf(stderr, "tender bench federation: site B did not join site A\n");
      return 1;
    }
    sqlite3* db = nullptr;
    if (sqlite3_open_v2((A.data_dir() + "/journal.db").c_str(), &db, SQLITE_OPEN_READONLY,
                        nullptr) != SQLITE_OK) {
      std::fprintf(stderr, "tender bench federation: cannot read A's journal\n");
      return 1;
    }
    sample_set warm, local, cross;
    std::optional<std::string> err;
    // A few of each first: connections, caches and the predictor warm up.
    if (!err)
      err = run_jobs(c, db, 3, 1000, "warm-local", warm);
    if (!err)
      err = run_jobs(c, db, 3, 4000, "warm-cross", warm);
    // Interleaved in blocks so that both see the same machine load.
    for (int done = 0; !err && done < a.jobs; done += 10) {
      int n = std::min(10, a.jobs - done);
      err = run_jobs(c, db, n, 1000, "local", local);
      if (!err)
        err = run_jobs(c, db, n, 4000, "cross", cross);
    }
    sqlite3_close(db);
    if (err) {
      std::fprintf(stderr, "tender bench federation: %s\n", err->c_str());
      return 1;
    }
    auto providers = [](const sample_set& s) {
      std::string out;
      for (auto& [p, n] : s.providers)
        out += (out.empty() ? "" : ", ") + p + " " + std::to_string(n);
      return out;
    };
    if (a.json) {
      nlohmann::json j;
      j["jobs"] = a.jobs;
      auto view = [](const sample_set& s) {
        return nlohmann::json{{"submit_to_commit_p50_ms", s.pct(0.5)},
                              {"submit_to_commit_p99_ms", s.pct(0.99)},
                              {"placement_p50_ms", s.place(0.5)},
                              {"placement_p99_ms", s.place(0.99)},
                              {"providers", s.providers}};
      };
      j["local"] = view(local);
      j["cross_site"] = view(cross);
      j["added_p50_ms"] = cross.pct(0.5) - local.pct(0.5);
      j["added_p99_ms"] = cross.pct(0.99) - local.pct(0.99);
      j["added_placement_p50_ms"] = cross.place(0.5) - local.place(0.5);
      j["added_placement_p99_ms"] = cross.place(0.99) - local.place(0.99);
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("through site A, %d jobs of each kind, one at a time, loopback; milliseconds\n"
                  "(submit -> commit includes profiling; placement is negotiating -> commit)\n",
                  a.jobs);
      std::printf("  %-34s %10s %9s %10s %9s   %s\n", "", "submit p50", "p99", "place p50", "p99",
                  "placed by");
      auto row = [](const char* what, double a50, double a99, double p50, double p99,
                    const std::string& by) {
        std::printf("  %-34s %10.2f %9.2f %10.2f %9.2f   %s\n", what, a50, a99, p50, p99,
                    by.c_str());
      };
      row("local (A's own provider)", local.pct(0.5), local.pct(0.99), local.place(0.5),
          local.place(0.99), providers(local));
      row("cross-site (A cannot, peer B can)", cross.pct(0.5), cross.pct(0.99), cross.place(0.5),
          cross.place(0.99), providers(cross));
      row("added by crossing", cross.pct(0.5) - local.pct(0.5), cross.pct(0.99) - local.pct(0.99),
          cross.place(0.5) - local.place(0.5), cross.place(0.99) - local.place(0.99), "");
    }
    rc = 0;
  }
  std::error_code ec;
  fs::remove_all(root, ec);
  return rc;
}

} // namespace

void add_federation_commands(CLI::App& app, std::function<int()>& action) {
  auto args = std::make_shared<federation_bench_args>();
  auto* bench = app.get_subcommand("bench");
  auto* fed = bench->add_subcommand(
      "federation",
      "Submit-to-commit latency: placed by the site's own provider vs by a peer site");
  fed->add_option("--jobs", args->jobs, "Jobs of each kind")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  fed->add_flag("--json", args->json, "Machine-readable output");
  fed->callback([args, &action] { action = [args] { return run_federation_bench(*args); }; });
}

} // namespace tender

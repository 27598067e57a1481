#include "tools/bus_cmd.hpp"

#include "config/job_file.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"
#include "tools/producer.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace tender {

namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

struct produce_args {
  std::string bus;
  std::string producer;
  std::int64_t jobs = 1;
  std::size_t window = 1000;
  std::uint64_t first_seq = 1;
  std::string job_file;
  std::string key;        ///< --key: this producer's secret key file
  std::string server_key; ///< --server-key: the node's public key
  double timeout = 60;    ///< --timeout: seconds to wait for the last acks
  bool quiet = false;
};

job_spec default_spec(const std::string& name) {
  job_spec s;
  s.name = name;
  s.user = login_name();
  s.command = {"true"};
  s.profile_skip = true;
  return s;
}

int run_produce(const produce_args& a) {
  job_spec spec = default_spec("produced");
  if (!a.job_file.empty()) {
    auto r = load_job_file(a.job_file, wall_now());
    if (auto* err = std::get_if<config_error>(&r)) {
      std::fprintf(stderr, "tender produce: %s\n", err->to_string().c_str());
      return 2;
    }
    spec = std::get<job_spec>(std::move(r));
  }
  auto keys = load_client_keys(a.key, a.server_key);
  if (auto* err = std::get_if<std::string>(&keys)) {
    std::fprintf(stderr, "tender produce: %s\n", err->c_str());
    return 2;
  }
  producer_options o;
  o.endpoint = a.bus;
  o.producer_id = a.producer;
  o.key = std::get<client_keys>(keys).mine;
  o.server_public = std::get<client_keys>(keys).server_public;
  o.window = a.window;
  o.first_seq = a.first_seq;
  producer p(o);
  std::int64_t accepted = 0, refused = 0;
  p.on_result([&](const producer_result& r) {
    if (!r.error.code.empty()) {
      ++refused;
      std::fprintf(stderr, "tender produce: seq %llu refused: %s (%s%s%s)\n",
                   static_cast<unsigned long long>(r.seq), r.error.message.c_str(),
                   r.error.code.c_str(), r.error.field.empty() ? "" : ", field ",
                   r.error.field.c_str());
      return;
    }
    ++accepted;
    if (!a.quiet)
      std::printf("%llu %s%s\n", static_cast<unsigned long long>(r.seq), r.job_id.c_str(),
                  r.duplicate ? " (already accepted)" : "");
  });
  auto t0 = steady::now();
  bool all = false;
  try {
    for (std::int64_t i = 0; i < a.jobs; ++i)
      p.submit(spec);
    // Waits for the last acks up to --timeout; a node that never answers ends it with
    // the count of unacknowledged jobs.
    all = p.flush(std::chrono::milliseconds(static_cast<std::int64_t>(a.timeout * 1000)));
  } catch (const producer_refused& e) {
    std::fprintf(stderr, "tender produce: %s\n", e.what());
    return 1;
  }
  double secs = std::chrono::duration<double>(steady::now() - t0).count();
  std::fprintf(stderr,
               "tender produce: %lld accepted, %lld refused, %zu unacknowledged, %llu resent "
               "in %.2f s\n",
               static_cast<long long>(accepted), static_cast<long long>(refused),
               p.unacknowledged(), static_cast<unsigned long long>(p.resent()), secs);
  return all && refused == 0 ? 0 : 1;
}

// --- tender bench bus ----------------------------------------------------------

struct bus_bench_args {
  int producers = 4;
  std::int64_t jobs = 100000;
  double kill_at = 0.5;
  std::size_t window = 1000;
  int batch = 512;
  bool json = false;
  std::string keep_dir;
};

/// A `tender agent` child with its output in `log`.
struct agent_child {
  pid_t pid = -1;

  bool start(const std::string& config, const std::string& data_dir, const std::string& log) {
    pid = fork();
    if (pid < 0)
      return false;
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl("/proc/self/exe", "tender", "agent", "--config", config.c_str(), "--data-dir",
            data_dir.c_str(), "--quiet", "--insecure", static_cast<char*>(nullptr));
      _exit(127);
    }
    return true;
  }
  void kill_now() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  void stop() {
    if (pid <= 0)
      return;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        pid = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill_now();
  }
  ~agent_child() { kill_now(); }
};

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

void write_config(const std::string& path, const std::string& bus, int batch) {
  std::ofstream f(path);
  f << "# tender bench bus: an agent that only accepts (max_active_jobs = 0)\n"
    << "[node]\nname = \"bus-bench\"\nlisten = \"tcp://127.0.0.1:*\"\n"
    << "[bus]\nlisten = \"" << bus << "\"\nbatch = " << batch << "\nhwm = 20000\n"
    << "[intake]\nmax_active_jobs = 0\n";
}

/// Waits for the agent to write its bus endpoint; "" when it does not within 60 s.
std::string wait_endpoint(const std::string& file, agent_child& a) {
  for (int i = 0; i < 600; ++i) {
    auto ep = read_first_line(file);
    if (!ep.empty())
      return ep;
    if (waitpid(a.pid, nullptr, WNOHANG) == a.pid) {
      a.pid = -1;
      return "";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return "";
}

struct journal_check {
  std::int64_t rows = 0;    ///< bench jobs in the journal
  std::int64_t missing = 0; ///< (producer, seq) with no job
  std::int64_t doubled = 0; ///< (producer, seq) with more than one job
  std::int64_t unexpected = 0;
  std::string error;
  bool ok() const { return error.empty() && missing == 0 && doubled == 0 && unexpected == 0; }
};

/// Reads the journal file itself: every (producer, seq) must be one job.
journal_check check_journal(const std::string& db_path, const std::vector<std::string>& producers,
                            const std::vector<std::int64_t>& counts) {
  journal_check c;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    c.error = "cannot open " + db_path + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return c;
  }
  std::map<std::string, std::int64_t> seen;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT client_key FROM jobs WHERE client_key LIKE 'bus:%'", -1, &st,
                         nullptr) != SQLITE_OK) {
    c.error = std::string("query: ") + sqlite3_errmsg(db);
    sqlite3_close(db);
    return c;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    ++c.rows;
    ++seen[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))];
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  std::int64_t expected = 0;
  for (std::size_t p = 0; p < producers.size(); ++p)
    for (std::int64_t s = 1; s <= counts[p]; ++s) {
      ++expected;
      auto it = seen.find("bus:" + producers[p] + ":" + std::to_string(s));
      if (it == seen.end())
        ++c.missing;
      else if (it->second > 1)
        ++c.doubled;
    }
  c.unexpected = c.rows - (expected - c.missing) - c.doubled;
  return c;
}

int run_bus_bench(const bus_bench_args& a) {
  if (a.producers < 1 || a.jobs < a.producers || a.kill_at < 0 || a.kill_at >= 1) {
    std::fprintf(stderr, "tender bench bus: need --producers >= 1, --jobs >= producers and "
                         "0 <= --kill-at < 1\n");
    return 2;
  }
  std::string dir = a.keep_dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/tender-busbench-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::fprintf(stderr, "tender bench bus: cannot create a temporary dir: %s\n",
                   std::strerror(errno));
      return 1;
    }
    dir = tmpl;
  }
  fs::create_directories(dir + "/data");
  const std::string config = dir + "/agent.toml", data = dir + "/data",
                    ep_file = data + "/bus-endpoint", log = dir + "/agent.log";
  fs::remove(ep_file);
  write_config(config, "tcp://127.0.0.1:*", a.batch);
  agent_child agent;
  if (!agent.start(config, data, log)) {
    std::fprintf(stderr, "tender bench bus: cannot start the agent: %s\n", std::strerror(errno));
    return 1;
  }
  auto endpoint = wait_endpoint(ep_file, agent);
  if (endpoint.empty()) {
    std::fprintf(stderr, "tender bench bus: the agent did not start (see %s)\n", log.c_str());
    return 1;
  }
  // Restarts bind the same port, so producers reconnect to it.
  write_config(config, endpoint, a.batch);

  const auto k = static_cast<std::size_t>(a.producers);
  std::vector<std::string> ids;
  std::vector<std::int64_t> counts;
  for (std::size_t i = 0; i < k; ++i) {
    ids.push_back("bench-" + std::to_string(getpid()) + "-" + std::to_string(i));
    counts.push_back(a.jobs / a.producers + (static_cast<std::int64_t>(i) < a.jobs % a.producers));
  }
  std::atomic<std::int64_t> acked{0};
  std::vector<std::vector<usec>> latencies(k);
  std::vector<std::uint64_t> resent(k), duplicates(k), refused(k);
  std::vector<char> complete(k, 0);
  zmq::context_t zctx(1);
  auto t0 = steady::now();
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < k; ++i)
    threads.emplace_back([&, i] {
      producer_options o;
      o.endpoint = endpoint;
      o.producer_id = ids[i];
      o.window = a.window;
      producer p(o, &zctx);
      auto& lat = latencies[i];
      lat.reserve(static_cast<std::size_t>(counts[i]));
      p.on_result([&](const producer_result& r) {
        lat.push_back(r.latency);
        acked.fetch_add(1, std::memory_order_relaxed);
      });
      auto spec = default_spec("bus-bench");
      try {
        for (std::int64_t n = 0; n < counts[i]; ++n)
          p.submit(spec);
        complete[i] = p.flush(std::chrono::seconds(120));
      } catch (const producer_refused& e) {
        std::fprintf(stderr, "tender bench bus: producer %s: %s\n", ids[i].c_str(), e.what());
        complete[i] = false;
      }
      resent[i] = p.resent();
      duplicates[i] = p.duplicates();
      refused[i] = p.refused();
    });

  double kill_s = 0, ready_s = 0;
  std::int64_t acked_at_kill = 0;
  bool restarted_ok = true;
  if (a.kill_at > 0) {
    auto target = static_cast<std::int64_t>(a.kill_at * static_cast<double>(a.jobs));
    while (acked.load() < target)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    agent.kill_now();
    acked_at_kill = acked.load();
    kill_s = std::chrono::duration<double>(steady::now() - t0).count();
    fs::remove(ep_file);
    restarted_ok = agent.start(config, data, log) && !wait_endpoint(ep_file, agent).empty();
    ready_s = std::chrono::duration<double>(steady::now() - t0).count();
    if (!restarted_ok)
      std::fprintf(stderr, "tender bench bus: the agent did not restart (see %s)\n", log.c_str());
  }
  for (auto& t : threads)
    t.join();
  double total_s = std::chrono::duration<double>(steady::now() - t0).count();
  agent.stop();

  auto check = check_journal(data + "/journal.db", ids, counts);
  std::vector<usec> all;
  for (auto& l : latencies)
    all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double q) -> double {
    if (all.empty())
      return 0;
    auto i = static_cast<std::size_t>(q * static_cast<double>(all.size() - 1));
    return static_cast<double>(all[i]) / 1000.0;
  };
  std::uint64_t n_resent = 0, n_dup = 0, n_refused = 0;
  for (std::size_t i = 0; i < k; ++i) {
    n_resent += resent[i];
    n_dup += duplicates[i];
    n_refused += refused[i];
  }
  bool all_complete = std::all_of(complete.begin(), complete.end(), [](char c) { return c != 0; });
  double before_rate = kill_s > 0 ? static_cast<double>(acked_at_kill) / kill_s : 0;
  double after_rate = a.kill_at > 0 && total_s > ready_s
                          ? static_cast<double>(a.jobs - acked_at_kill) / (total_s - ready_s)
                          : 0;
  nlohmann::json j = {
      {"producers", a.producers},
      {"jobs", a.jobs},
      {"window", a.window},
      {"batch", a.batch},
      {"seconds", total_s},
      {"submissions_per_s", static_cast<double>(a.jobs) / total_s},
      {"submissions_per_s_before_kill", before_rate},
      {"submissions_per_s_after_restart", after_rate},
      {"killed_at_s", kill_s},
      {"restarted_at_s", ready_s},
      {"acked_at_kill", acked_at_kill},
      {"ack_latency_p50_ms", pct(0.5)},
      {"ack_latency_p99_ms", pct(0.99)},
      {"resent", n_resent},
      {"duplicate_acks", n_dup},
      {"refused", n_refused},
      {"all_acknowledged", all_complete},
      {"journal_jobs", check.rows},
      {"journal_missing", check.missing},
      {"journal_doubled", check.doubled},
      {"journal_unexpected", check.unexpected},
      {"exactly_once", check.ok()},
      {"dir", dir},
  };
  if (!check.error.empty())
    j["journal_error"] = check.error;
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("bus bench: %lld submissions from %d producers (window %zu, batch %d), "
                "acknowledged after the journal commit\n",
                static_cast<long long>(a.jobs), a.producers, a.window, a.batch);
    std::printf("  total            %.2f s   %.0f submissions/s%s\n", total_s,
                static_cast<double>(a.jobs) / total_s,
                a.kill_at > 0 ? " (kill and restart included)" : "");
    if (a.kill_at > 0) {
      std::printf("  before the kill  %.0f submissions/s (%lld acked in %.2f s)\n", before_rate,
                  static_cast<long long>(acked_at_kill), kill_s);
      std::printf("  agent down       %.2f s (SIGKILL at %.2f s, bus ready again at %.2f s)\n",
                  ready_s - kill_s, kill_s, ready_s);
      std::printf("  after restart    %.0f submissions/s\n", after_rate);
    }
    std::printf("  ack latency      p50 %.2f ms   p99 %.2f ms\n", pct(0.5), pct(0.99));
    std::printf(
        "  resent           %llu (answered \"already in the journal\": %llu), refused %llu\n",
        static_cast<unsigned long long>(n_resent), static_cast<unsigned long long>(n_dup),
        static_cast<unsigned long long>(n_refused));
    std::printf("  journal          %lld jobs, %lld missing, %lld doubled, %lld unexpected: %s\n",
                static_cast<long long>(check.rows), static_cast<long long>(check.missing),
                static_cast<long long>(check.doubled), static_cast<long long>(check.unexpected),
                check.ok() ? "every submission exactly once" : "FAILED");
    if (!check.error.empty())
      std::printf("  journal error    %s\n", check.error.c_str());
  }
  if (a.keep_dir.empty() && check.ok())
    fs::remove_all(dir);
  return check.ok() && all_complete && restarted_ok ? 0 : 1;
}

} // namespace

void add_bus_commands(CLI::App& app, std::function<int()>& action) {
  auto pa = std::make_shared<produce_args>();
  auto* produce =
      app.add_subcommand("produce", "Stream jobs to a node's message bus ([bus] listen)");
  produce->add_option("--bus", pa->bus, "The node's bus endpoint")->required();
  produce->add_option("--producer", pa->producer, "Producer id (unique per sequence stream)")
      ->required();
  produce->add_option("--jobs", pa->jobs, "How many jobs")->capture_default_str();
  produce->add_option("--window", pa->window, "Unacknowledged submissions at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  produce->add_option("--first-seq", pa->first_seq, "Sequence number of the first job")
      ->capture_default_str();
  produce->add_option("--job", pa->job_file, "Job file (TOML); default: `true`");
  produce->add_option("--key", pa->key, "This producer's secret key file (CurveZMQ)")
      ->envname("TENDER_KEY");
  produce->add_option("--server-key", pa->server_key, "The node's public key: its .pub file or Z85")
      ->envname("TENDER_SERVER_KEY");
  produce->add_option("--timeout", pa->timeout, "Seconds to wait for the last acks")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  produce->add_flag("--quiet", pa->quiet, "No line per acknowledged job");
  produce->callback([&action, pa] { action = [pa] { return run_produce(*pa); }; });

  CLI::App* bench = nullptr;
  for (auto* c : app.get_subcommands([](CLI::App* s) { return s->get_name() == "bench"; }))
    bench = c;
  if (!bench)
    bench = app.add_subcommand("bench", "Benchmarks");
  auto ba = std::make_shared<bus_bench_args>();
  auto* bb = bench->add_subcommand(
      "bus", "Bus submissions/s with acks, a real agent SIGKILLed and restarted midway, then an "
             "exactly-once check of its journal");
  bb->add_option("--producers", ba->producers, "Producer threads")->capture_default_str();
  bb->add_option("--jobs", ba->jobs, "Submissions in all")->capture_default_str();
  bb->add_option("--kill-at", ba->kill_at,
                 "SIGKILL the agent after this share is acked (0 = never)")
      ->capture_default_str();
  bb->add_option("--window", ba->window, "Unacknowledged submissions per producer")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  bb->add_option("--batch", ba->batch, "The agent's [bus] batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  bb->add_option("--keep", ba->keep_dir,
                 "Use and keep this directory (config, journal, agent log)");
  bb->add_flag("--json", ba->json, "Machine-readable output");
  bb->callback([&action, ba] { action = [ba] { return run_bus_bench(*ba); }; });
}

} // namespace tender

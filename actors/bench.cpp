// `tender bench negotiate` (inproc): the agent's negotiation machinery under load.

#include "actors/bench.hpp"
#include "actors/bench_tally.hpp"

#include "actors/actors.hpp"
#include "actors/auction_book.hpp"
#include "actors/scheduler.hpp"
#include "providers/factory.hpp"

#include <caf/all.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <pthread.h>
#include <sstream>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

namespace tender {

namespace {

using steady = std::chrono::steady_clock;

usec wall_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// P providers with the strategies of the dev config, cycled: cost-plus local
/// capacity with utilisation pricing, a spot market following the real price sheet,
/// an on-demand market, a GPU vendor (GPU instance types only: it bids on CPU-only calls too,
/// with instances dearer than the CPU markets').
std::string bench_config(int providers, int rounds) {
  std::ostringstream t;
  t << "[node]\nname = \"bench\"\n\n[auction]\nprotocol = \"iterated\"\nmax_rounds = " << rounds
    << "\nround_timeout = \"2s\"\ncommit_timeout = \"2s\"\n\n";
  for (int i = 0; i < providers; ++i) {
    t << "[[providers]]\n";
    switch (i % 4) {
      case 0:
        t << "name = \"local-" << i << "\"\nkind = \"local\"\ncpus = 100000\nmemory = \"100TiB\"\n"
          << "price_per_core_hour = " << (0.040 + 0.002 * i) << "\nprice_per_gib_hour = 0.005\n"
          << "busy_markup = 1.5\nreserve_price = 0.0001\nlatency = \"1ms\"\n";
        break;
      case 1:
        t << "name = \"spot-" << i << "\"\nkind = \"market\"\ncatalogue = \"embedded:cloud-a\"\n"
          << "offer_spot = true\noffer_on_demand = true\nprovisioning_delay = \"2s\"\n"
          << "preemption_per_hour = 0.05\nspot_follow = true\nlatency = \"20ms\"\nseed = " << i + 1
          << "\nmax_instances = 100000\n";
        break;
      case 2:
        t << "name = \"ondemand-" << i << "\"\nkind = \"market\"\ncatalogue = \"embedded:cloud-b\"\n"
          << "offer_spot = false\noffer_on_demand = true\nprovisioning_delay = \"4s\"\n"
          << "latency = \"30ms\"\nseed = " << i + 1 << "\nmax_instances = 100000\n";
        break;
      default:
        t << "name = \"gpu-" << i << "\"\nkind = \"market\"\ncatalogue = \"embedded:gpu-vendor\"\n"
          << "offer_spot = true\noffer_on_demand = true\nprovisioning_delay = \"5s\"\n"
          << "latency = \"30ms\"\nseed = " << i + 1 << "\nmax_instances = 100000\n";
        break;
    }
    t << "software = [\"sh\", \"python3\"]\n\n";
  }
  return t.str();
}

std::string bench_job_id(int i) {
  return "bench-" + std::to_string(i);
}

using tally = bench_tally;

struct negotiation_args {
  resource_request req;
  provider_directory providers;
  steady::time_point started;
  std::shared_ptr<tally> out;
  std::function<void()> on_done; ///< closed loop: starts the next one
  bool release = true;
};

struct negotiation_state {
  context_ptr ctx;
  negotiation_args args;
  std::shared_ptr<auction_book> book;
  std::int32_t round = 0;
  std::int64_t msgs = 0;
  static inline const char* name = "negotiation";
};
using negotiation_actor = caf::stateful_actor<negotiation_state>;

void next_round(negotiation_actor* self, micros previous_best) {
  auto& st = self->state;
  round_args a;
  a.book = st.book;
  a.providers = st.args.providers;
  a.round = ++st.round;
  a.previous_best = previous_best;
  a.job = caf::actor_cast<caf::actor>(self);
  // A call and an answer for each provider called: not those that declined a round
  // before (see spawn_round).
  for (auto& name : a.providers.names)
    if (!st.book->declines().count(name))
      st.msgs += 2;
  spawn_round(self->system(), st.ctx, std::move(a));
}

caf::behavior negotiation(negotiation_actor* self, context_ptr ctx, negotiation_args args) {
  auto& st = self->state;
  st.ctx = ctx;
  st.args = std::move(args);
  std::set<std::string> names(st.args.providers.names.begin(), st.args.providers.names.end());
  st.book = std::make_shared<auction_book>(st.args.req, std::move(names));
  next_round(self, 0);
  return {
    [self](round_result& r) {
      auto& st = self->state;
      if (r.next_round)
        return next_round(self, r.best_price);
      std::vector<const std::string*> losers; // each told it lost, once
      for (auto& o : r.offers) {
        if (o.verdict == "won" || o.verdict.rfind("refused", 0) == 0)
          st.msgs += 2; // award + confirm/refuse
        if (r.committed && o.provider != r.alloc.provider &&
            std::none_of(losers.begin(), losers.end(),
                         [&](const std::string* p) { return *p == o.provider; }))
          losers.push_back(&o.provider);
      }
      st.msgs += static_cast<std::int64_t>(losers.size());
      if (r.committed && st.args.release) {
        for (std::size_t i = 0; i < st.args.providers.names.size(); ++i)
          if (st.args.providers.names[i] == r.alloc.provider)
            self->send(st.args.providers.actors[i],
                       release{r.alloc.allocation_id, "", r.alloc.job_id, "bench"});
        st.msgs += 1;
      }
      auto ms = std::chrono::duration<double, std::milli>(steady::now() - st.args.started).count();
      bool last = false;
      {
        auto& t = *st.args.out;
        std::lock_guard<std::mutex> g(t.mu);
        t.latency_ms.push_back(ms);
        if (r.committed && !st.args.release)
          t.kept.push_back(r.alloc);
        if (!r.committed)
          t.refusals.push_back(r.reason);
        (r.committed ? t.committed : t.refused)++;
        t.rounds += st.round;
        t.msgs += st.msgs;
        last = ++t.done >= t.expected;
      }
      // Only the last one wakes the waiting main thread (a wake-up each is a syscall).
      if (last)
        st.args.out->cv.notify_all();
      if (st.args.on_done)
        st.args.on_done();
      self->quit();
    },
  };
}

double percentile(std::vector<double> v, double q) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

} // namespace

machine_reading read_machine(const std::vector<int>& others) {
  machine_reading m;
  m.tasks = read_tasks("/proc", ::getpid());
  for (int pid : others) {
    auto more = read_tasks("/proc", pid);
    m.tasks.insert(m.tasks.end(), more.begin(), more.end());
  }
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0)
    m.cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  // "cpu  user nice system idle iowait irq softirq steal ...", in clock ticks.
  std::ifstream stat("/proc/stat");
  std::string name;
  long long v[8];
  if (stat >> name && name == "cpu") {
    int n = 0;
    while (n < 8 && stat >> v[n])
      ++n;
    const long ticks = ::sysconf(_SC_CLK_TCK);
    if (n == 8 && ticks > 0)
      m.steal_s = static_cast<double>(v[7]) / static_cast<double>(ticks);
  }
  std::ifstream io("/proc/self/io");
  for (std::string line; std::getline(io, line);)
    if (line.rfind("write_bytes:", 0) == 0)
      m.write_bytes = std::strtod(line.c_str() + 12, nullptr);
  return m;
}

void set_machine(const machine_reading& before, const machine_reading& after,
                 negotiate_bench_result& res) {
  auto diff = [](double a, double b) { return a >= 0 && b >= 0 ? b - a : -1; };
  res.cpu_s = diff(before.cpu_s, after.cpu_s);
  res.steal_s = diff(before.steal_s, after.steal_s);
  const double bytes = diff(before.write_bytes, after.write_bytes);
  res.write_mb = bytes >= 0 ? bytes / 1e6 : -1;
  const int self = ::getpid();
  res.cpu_parts = cpu_by_part(before.tasks, after.tasks,
                              [self](const task_sample& t) { return bench_part(t, self); });
  res.cpu_all_s = after.tasks.empty() ? -1 : 0;
  for (auto& p : res.cpu_parts)
    res.cpu_all_s += p.cpu_s;
}

std::string bench_part(const task_sample& t, int self) {
  const bool zmq = t.comm.rfind("ZMQbg/IO", 0) == 0;
  if (t.pid != self)
    return zmq ? "providers: ZeroMQ I/O" : "providers";
  if (t.comm == "tender.worker")
    return "CAF workers";
  if (t.comm == "tender.gateway")
    return "gateway I/O";
  if (zmq)
    return "ZeroMQ I/O";
  if (t.comm == "tender.commit")
    return "journal commits";
  if (t.comm == "tender.ckpt")
    return "journal checkpoints";
  if (t.comm == "tender.clock")
    return "CAF clock";
  return "other";
}

void set_latencies(const bench_tally& t, negotiate_bench_result& res) {
  res.p50_ms = percentile(t.latency_ms, 0.50);
  res.p99_ms = percentile(t.latency_ms, 0.99);
  res.max_ms = percentile(t.latency_ms, 1.0);
}

int default_window(const std::string& transport) { return transport == "tcp" ? 128 : 32; }

nlohmann::json negotiate_bench_result::to_json() const {
  auto parts_json = [this] {
    auto o = nlohmann::json::object();
    for (auto& p : cpu_parts)
      o[p.part] = {{"cpu_s", p.cpu_s},
                   {"us_per_negotiation", jobs > 0 ? p.cpu_s * 1e6 / jobs : 0.0},
                   {"runq_wait_s", p.wait_s},
                   {"threads", p.threads}};
    return o;
  };
  auto opt = [](double v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"transport", transport},
          {"floor", floor},
          {"providers", providers},
          {"rounds", rounds},
          {"jobs", jobs},
          {"offered_rate", offered_rate > 0 ? nlohmann::json(offered_rate) : nlohmann::json(nullptr)},
          {"window", window > 0 ? nlohmann::json(window) : nlohmann::json(nullptr)},
          {"seconds", seconds},
          {"negotiations_per_s", negotiations_per_s},
          {"p50_ms", p50_ms},
          {"p99_ms", p99_ms},
          {"max_ms", max_ms},
          {"msgs_per_negotiation", msgs_per_negotiation},
          {"rounds_mean", rounds_mean},
          {"committed", committed},
          {"refused", refused},
          {"journal_commits", journal_commits},
          {"journal_errors", journal_errors},
          {"cpu_s", opt(cpu_s)},
          {"steal_s", opt(steal_s)},
          {"write_mb", opt(write_mb)},
          {"cpu_all_s", opt(cpu_all_s)},
          {"cpu_parts", parts_json()},
          {"zmq_raw_msgs_per_s", opt(zmq_raw_msgs_per_s)},
          {"mesh_efficiency", opt(mesh_efficiency)},
          {"wire_mean_bytes", opt(wire_mean_bytes > 0 ? wire_mean_bytes : -1)},
          {"frames_per_negotiation", opt(frames_per_negotiation)},
          {"provider_pids", provider_pids}};
}

std::string negotiate_bench_result::table() const {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "negotiate (%s%s): %d providers, %d rounds max, %d negotiations%s\n"
                "  negotiations/s        %.0f\n"
                "  submit->commit p50    %.3f ms\n"
                "  submit->commit p99    %.3f ms (max %.3f ms)\n"
                "  messages/negotiation  %.1f\n"
                "  rounds run (mean)     %.2f\n"
                "  committed / refused   %lld / %lld\n"
                "  journal commits       %lld (group commit), %lld failed writes\n",
                transport.c_str(), floor ? ", floor: actors and messages only" : "", providers,
                rounds, jobs,
                offered_rate > 0 ? (", offered " + std::to_string(static_cast<long long>(offered_rate)) + "/s").c_str()
                                 : (" (closed loop, " + std::to_string(window) + " in flight)").c_str(),
                negotiations_per_s, p50_ms, p99_ms, max_ms, msgs_per_negotiation, rounds_mean,
                static_cast<long long>(committed), static_cast<long long>(refused),
                static_cast<long long>(journal_commits), static_cast<long long>(journal_errors));
  std::string s = buf;
  if (journal_errors > 0)
    s += "  first journal error   " + first_journal_error + "\n";
  if (cpu_s >= 0) {
    std::snprintf(buf, sizeof buf, "  this process's CPU    %.2f s (%.0f us per negotiation)\n",
                  cpu_s, jobs > 0 ? cpu_s * 1e6 / jobs : 0.0);
    s += buf;
  }
  if (cpu_all_s > 0) {
    int threads = 0;
    for (auto& p : cpu_parts)
      threads += p.threads;
    std::snprintf(buf, sizeof buf,
                  "  CPU by part           us per negotiation (waiting for a CPU), %d threads\n",
                  threads);
    s += buf;
    for (auto& p : cpu_parts) {
      if (p.cpu_s <= 0 && p.wait_s <= 0)
        continue;
      std::snprintf(buf, sizeof buf, "    %-22s %7.1f (%.1f)\n", p.part.c_str(),
                    jobs > 0 ? p.cpu_s * 1e6 / jobs : 0.0, jobs > 0 ? p.wait_s * 1e6 / jobs : 0.0);
      s += buf;
    }
    std::snprintf(buf, sizeof buf, "    %-22s %7.1f\n", "all",
                  jobs > 0 ? cpu_all_s * 1e6 / jobs : 0.0);
    s += buf;
  }
  if (steal_s >= 0 || write_mb >= 0) {
    std::snprintf(buf, sizeof buf,
                  "  stolen by the VM host %.3f s of CPU; written to disk %.1f MB\n", steal_s,
                  write_mb);
    s += buf;
  }
  if (zmq_raw_msgs_per_s >= 0) {
    std::snprintf(buf, sizeof buf,
                  "  wire message (mean)   %.0f bytes\n"
                  "  wire frames/negotiation %.1f (a batch frame carries several messages)\n"
                  "  raw ZeroMQ msgs/s     %.0f\n"
                  "  mesh efficiency       %.3f\n",
                  wire_mean_bytes, frames_per_negotiation, zmq_raw_msgs_per_s, mesh_efficiency);
    s += buf;
  }
  return s;
}

std::variant<negotiate_bench_result, std::string>
run_negotiate_bench(const negotiate_bench_options& opt) {
  namespace fs = std::filesystem;
  if (opt.transport != "inproc" && opt.transport != "tcp")
    return std::string("transport `" + opt.transport + "`: expected inproc or tcp");
  if (opt.providers < 1 || opt.rounds < 1 || opt.jobs < 1)
    return std::string("providers, rounds and jobs must be at least 1");
  if (!(opt.rate >= 0) || !std::isfinite(opt.rate)) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "rate %g: expected negotiations per second >= 0 (0 = closed loop)",
                  opt.rate);
    return std::string(buf);
  }
  if (opt.rate == 0 && opt.window < 1)
    return "window " + std::to_string(opt.window) +
           ": the closed loop needs at least 1 negotiation in flight";
  if (opt.group_commit < 1)
    return std::string("group-commit-ms: the journal's commit interval must be 0.001 to "
                       "60000 milliseconds");
  if (opt.transport == "tcp" && opt.raw_messages < 1000)
    return "raw-messages " + std::to_string(opt.raw_messages) +
           ": the raw ZeroMQ measurement needs at least 1000 messages";
  const auto config_text =
    opt.config_toml.empty() ? bench_config(opt.providers, opt.rounds) : opt.config_toml;
  auto parsed = parse_node_toml(config_text, "<bench config>", "");
  if (auto* e = std::get_if<config_error>(&parsed))
    return e->to_string();

  auto ctx = std::make_shared<node_context>();
  ctx->cfg = std::get<node_config>(std::move(parsed));
  bool own_dir = opt.data_dir.empty();
  std::string dir = opt.data_dir;
  if (own_dir) {
    char tmpl[] = "/tmp/tender-bench-XXXXXX";
    if (!mkdtemp(tmpl))
      return std::string("cannot create a temporary directory");
    dir = tmpl;
  }
  // The bench records its own jobs (bench-0, bench-1, ...): another run's would collide.
  if (!own_dir && fs::exists(fs::path(dir) / "journal.db"))
    return dir + "/journal.db exists (another run's journal): give a new or empty --data-dir";
  fs::create_directories(dir);
  ctx->data_dir = dir;
  ctx->clock = wall_now;
  ctx->log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
  if (opt.floor) {
    auto r = run_floor_bench(opt, ctx, config_text);
    if (own_dir)
      fs::remove_all(dir);
    return r;
  }
  if (opt.journal) {
    auto j = journal::open(dir + "/journal.db");
    if (auto* err = std::get_if<std::string>(&j))
      return *err;
    ctx->journal = std::move(std::get<0>(j));
  }
  // Every failed journal write is counted (a run that records nothing is no measurement).
  struct failed_writes {
    std::mutex mu;
    std::int64_t count = 0;
    std::string first;
  };
  auto journal_failures = std::make_shared<failed_writes>();
  if (ctx->journal) {
    ctx->journal->set_error_handler([journal_failures](const std::string& e) {
      std::lock_guard<std::mutex> g(journal_failures->mu);
      if (journal_failures->count++ == 0)
        journal_failures->first = e;
    });
  }

  negotiate_bench_result res;
  res.transport = opt.transport;
  res.providers = opt.providers;
  res.rounds = opt.rounds;
  res.jobs = opt.jobs;
  res.offered_rate = opt.rate;
  res.window = opt.rate > 0 ? 0 : opt.window;
  {
    caf::actor_system_config cfg;
    // As the agent runs (node.cpp): one worker per core. CAF's default of at least
    // four workers would time-slice two cores between them.
    cfg.set("scheduler.max-threads", 2);
    use_tender_scheduler(cfg); // as the agent: no clock wake-up per ending actor
    caf::actor_system sys{cfg};
    provider_directory dirs;
    std::vector<caf::actor> actors;
    // On every way out of this block the providers spawned so far are stopped: the
    // system's destructor waits for its actors, so a run giving up with an error (its
    // jobs not recorded, say) would otherwise never end.
    struct stop_on_exit {
      std::vector<caf::actor>& actors;
      ~stop_on_exit() {
        for (auto& a : actors)
          caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      }
    } stopper{actors};
    // tcp: the providers are processes behind a gateway (actors/bench_tcp.cpp).
    std::unique_ptr<bench_wire> wire;
    if (opt.transport == "tcp") {
      auto w = start_bench_wire(sys, ctx, config_text, dirs);
      if (auto* err = std::get_if<std::string>(&w))
        return *err;
      wire = std::move(std::get<0>(w));
    }
    const decltype(ctx->cfg.providers) none;
    for (auto& pc : wire ? none : ctx->cfg.providers) {
      auto made = make_provider(pc, dir, random_token, ctx->cfg.auction.lease_ttl);
      if (auto* err = std::get_if<std::string>(&made))
        return *err;
      auto a = spawn_provider(sys, ctx, std::move(std::get<0>(made)));
      dirs.names.push_back(pc.name);
      dirs.actors.push_back(a);
      dirs.remote.push_back(false);
      actors.push_back(a);
    }

    auto out = std::make_shared<tally>();
    out->latency_ms.reserve(static_cast<std::size_t>(opt.jobs));
    out->expected = opt.jobs;
    if (ctx->journal) {
      // The jobs are known to the journal before they are negotiated, as intake records
      // them at submission (offers, negotiations and awards refer to their job); in
      // batches, before the clock starts: this measures negotiation, not intake.
      const auto submitted = wall_now();
      for (int from = 0; from < opt.jobs; from += 5000) {
        std::vector<journal::job_insert> batch;
        for (int i = from; i < std::min(opt.jobs, from + 5000); ++i) {
          journal::job_insert ji;
          ji.job_id = bench_job_id(i);
          ji.spec.name = ji.job_id;
          ji.spec.command = {"true"};
          ji.submitted_at = submitted;
          batch.push_back(std::move(ji));
        }
        if (!ctx->journal->insert_jobs(batch))
          return "journal: cannot record the benchmark's jobs: " + ctx->journal->last_error();
      }
    }
    std::atomic<bool> stop_commits{false};
    std::atomic<std::int64_t> commits{0};
    std::thread committer;
    // The committer makes the last commit too, then stays until its CPU has been read.
    std::promise<void> last_commit_made, may_exit;
    auto last_commit = last_commit_made.get_future();
    auto exit_allowed = may_exit.get_future();
    if (ctx->journal) {
      ctx->journal->begin_batch();
      committer = std::thread([&] {
        pthread_setname_np(pthread_self(), "tender.commit");
        while (!stop_commits.load()) {
          std::this_thread::sleep_for(std::chrono::microseconds(opt.group_commit));
          ctx->journal->next_batch();
          commits++;
        }
        ctx->journal->commit_batch();
        last_commit_made.set_value();
        exit_allowed.wait();
      });
    }

    std::atomic<int> launched{0};
    std::function<void()> launch_one;
    const usec now0 = wall_now();
    auto make_req = [&](int i) {
      resource_request r;
      r.job_id = bench_job_id(i);
      r.auction_id = "a-" + std::to_string(i);
      r.profile.job_id = r.job_id;
      r.profile.cpu_mean = 0.9;
      r.profile.cpu_hi = 1.0;
      r.profile.mem_peak = 400ll << 20;
      r.profile.runtime = 600 * sec_us;
      r.profile.runtime_lo = 300 * sec_us;
      r.profile.runtime_hi = 1200 * sec_us;
      r.request.cpu = 1000;
      r.request.memory = 512ll << 20;
      r.software = {"sh"};
      r.deadline = now0 + 4 * 3600 * sec_us;
      r.max_cost = 5 * usd;
      r.protocol = ctx->cfg.auction.protocol;
      return r;
    };
    launch_one = [&] {
      int i = launched.fetch_add(1);
      if (i >= opt.jobs)
        return;
      negotiation_args a;
      a.req = make_req(i);
      a.providers = dirs;
      a.started = steady::now();
      a.out = out;
      a.release = opt.release;
      if (opt.rate <= 0)
        a.on_done = launch_one;
      sys.spawn(negotiation, ctx, std::move(a));
    };

    if (wire)
      wire->begin();
    const auto provider_pids = wire ? wire->pids() : std::vector<int>{};
    const auto machine0 = read_machine(provider_pids);
    auto t0 = steady::now();
    if (opt.rate <= 0) {
      for (int i = 0; i < std::min(opt.window, opt.jobs); ++i)
        launch_one();
    } else {
      // Open loop: submissions on a fixed schedule, whatever the answers do.
      auto gap = std::chrono::duration<double>(1.0 / opt.rate);
      for (int i = 0; i < opt.jobs; ++i) {
        auto due = t0 + std::chrono::duration_cast<steady::duration>(gap * i);
        std::this_thread::sleep_until(due);
        launch_one();
      }
    }
    // Every negotiation ends committed or refused (its rounds time out); none finishing for
    // a minute is a stall, reported as an error rather than waited on for ever.
    std::int64_t stalled_at = -1;
    {
      std::unique_lock<std::mutex> g(out->mu);
      std::int64_t seen = -1;
      while (out->done < opt.jobs) {
        if (out->done != seen) {
          seen = out->done;
          out->cv.wait_for(g, std::chrono::seconds(60), [&] { return out->done >= opt.jobs; });
          continue;
        }
        stalled_at = seen;
        break;
      }
    }
    // The clock stops once the journal holds every negotiation: the writes still queued
    // for the group commit are part of the work.
    if (committer.joinable()) {
      stop_commits = true;
      last_commit.wait();
    }
    auto secs = std::chrono::duration<double>(steady::now() - t0).count();
    set_machine(machine0, read_machine(provider_pids), res);
    if (committer.joinable()) {
      may_exit.set_value();
      committer.join();
    }
    for (auto& a : actors)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);

    res.seconds = secs;
    res.negotiations_per_s = static_cast<double>(opt.jobs) / secs;
    set_latencies(*out, res);
    res.msgs_per_negotiation = static_cast<double>(out->msgs) / opt.jobs;
    res.rounds_mean = static_cast<double>(out->rounds) / opt.jobs;
    res.committed = out->committed;
    res.refused = out->refused;
    res.journal_commits = commits.load();
    {
      std::lock_guard<std::mutex> g(journal_failures->mu);
      res.journal_errors = journal_failures->count;
      res.first_journal_error = journal_failures->first;
    }
    res.allocations = std::move(out->kept);
    res.refusals = std::move(out->refusals);
    res.providers = static_cast<int>(dirs.names.size());
    if (wire)
      if (auto err = wire->finish(res, opt))
        return *err;
    if (stalled_at >= 0) {
      sys.await_actors_before_shutdown(false); // the stuck ones would hold the shutdown
      return "stalled: " + std::to_string(opt.jobs - stalled_at) + " of " +
             std::to_string(opt.jobs) + " negotiations had not finished after a minute without progress";
    }
  }
  ctx->journal.reset();
  if (own_dir)
    fs::remove_all(dir);
  return res;
}

} // namespace tender

// `tender bench negotiate --floor`: the negotiation's actors and messages with none of
// its work, to tell what the actor framework costs from what tender's logic costs.
//
// The same shape as the real bench (actors/bench.cpp) on the same scheduler: a
// negotiation actor per job spawns a round actor per round; each round calls every
// provider actor with a resource_request and collects its offer; the iterated protocol
// runs another round while the best price improves (the first round's always counts),
// up to the maximum, as the real round actor decides; the last round awards the cheapest offer, the
// winner confirms, every loser is told so, the negotiation hears the result and releases the
// allocation. The messages are the real types with their real strings. What is left out: validation
// and scoring of offers, the journal, SLA records and the round timers; in process also the bidding
// (an offer is made up, a little cheaper in later rounds).
//
// Over tcp the providers are the real bench's: `tender provider` processes with their
// bidding strategies behind the gateway and their proxies (actors/bench_tcp.cpp), so
// this is the mesh — gateway, codec, ZeroMQ, the provider processes — with none of the
// node's own work on it.

#include "actors/bench.hpp"
#include "actors/bench_tally.hpp"

#include "actors/actors.hpp"
#include "actors/context.hpp"
#include "actors/scheduler.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>

namespace tender {

namespace {

using steady = std::chrono::steady_clock;

struct floor_provider_state {
  std::string id;
  micros price = 0;
  std::int64_t made = 0;
  static inline const char* name = "floor_provider";
};
using floor_provider_actor = caf::stateful_actor<floor_provider_state>;

caf::behavior floor_provider(floor_provider_actor* self, std::string id, micros price) {
  self->state.id = std::move(id);
  self->state.price = price;
  return {
      [self](const resource_request& r) {
        auto& st = self->state;
        offer o;
        o.offer_id = r.job_id + "/" + st.id + "/r" + std::to_string(r.round) + "/" +
                     std::to_string(++st.made);
        o.job_id = r.job_id;
        o.auction_id = r.auction_id;
        o.round = r.round;
        o.provider = st.id;
        o.granted = r.request;
        o.price = st.price - r.round; // a later round improves a little
        o.rate_per_hour = st.price;
        o.terms.availability = 0.99;
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), std::move(o));
      },
      [self](const award& a) {
        commit_confirm c;
        c.offer_id = a.offer_id;
        c.job_id = a.job_id;
        c.alloc.allocation_id = a.offer_id + "/alloc";
        c.alloc.job_id = a.job_id;
        c.alloc.provider = self->state.id;
        c.alloc.price = self->state.price;
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), std::move(c));
      },
      [](const decline&) {},
      [](const release&) {},
  };
}

struct floor_round_state {
  resource_request call;
  provider_directory providers;
  caf::actor job;
  std::int32_t max_rounds = 1;
  micros previous_best = 0;
  std::vector<offer> offers;
  std::size_t answers = 0; ///< offers and declines
  std::size_t best = 0;
  static inline const char* name = "floor_round";
};

void floor_answered(caf::stateful_actor<floor_round_state>* self);
using floor_round_actor = caf::stateful_actor<floor_round_state>;

caf::behavior floor_round(floor_round_actor* self, resource_request call,
                          provider_directory providers, caf::actor job, std::int32_t max_rounds,
                          micros previous_best) {
  auto& st = self->state;
  st.call = std::move(call);
  st.providers = std::move(providers);
  st.job = std::move(job);
  st.max_rounds = max_rounds;
  st.previous_best = previous_best;
  st.offers.reserve(st.providers.actors.size());
  auto msg = caf::make_message(st.call);
  for (auto& p : st.providers.actors)
    self->send(p, msg);
  return {
      [self](offer& o) {
        self->state.offers.push_back(std::move(o));
        floor_answered(self);
      },
      [self](const decline&) { floor_answered(self); },
      [self](const commit_refuse& c) {
        auto& st = self->state;
        round_result r;
        r.auction_id = st.call.auction_id;
        r.round = st.call.round;
        r.reason = c.provider + " refused: " + c.reason;
        self->send(st.job, std::move(r));
        self->quit();
      },
      [self](commit_confirm& c) {
        auto& st = self->state;
        for (std::size_t i = 0; i < st.offers.size(); ++i) {
          if (i == st.best)
            continue;
          auto& o = st.offers[i];
          for (std::size_t k = 0; k < st.providers.names.size(); ++k)
            if (st.providers.names[k] == o.provider)
              self->send(st.providers.actors[k], decline{o.job_id, o.auction_id, o.offer_id,
                                                         o.provider, "another offer won"});
        }
        round_result r;
        r.auction_id = st.call.auction_id;
        r.round = st.call.round;
        r.committed = true;
        r.alloc = std::move(c.alloc);
        self->send(st.job, std::move(r));
        self->quit();
      },
  };
}

void floor_answered(floor_round_actor* self) {
  auto& st = self->state;
  if (++st.answers < st.providers.actors.size())
    return;
  if (st.offers.empty()) {
    round_result r;
    r.auction_id = st.call.auction_id;
    r.round = st.call.round;
    r.reason = "every provider declined";
    self->send(st.job, std::move(r));
    return self->quit();
  }
  for (std::size_t i = 1; i < st.offers.size(); ++i)
    if (st.offers[i].price < st.offers[st.best].price)
      st.best = i;
  const micros best = st.offers[st.best].price;
  const bool improved = st.call.round == 1 || best < st.previous_best;
  if (improved && st.call.round < st.max_rounds) {
    round_result r;
    r.auction_id = st.call.auction_id;
    r.round = st.call.round;
    r.next_round = true;
    r.best_price = best;
    self->send(st.job, std::move(r));
    return self->quit();
  }
  const auto& w = st.offers[st.best];
  award a{w.offer_id, w.job_id, w.auction_id, w.provider, 30 * sec_us, 0};
  for (std::size_t i = 0; i < st.providers.names.size(); ++i)
    if (st.providers.names[i] == w.provider)
      self->send(st.providers.actors[i], std::move(a));
}

struct floor_job_state {
  resource_request req;
  provider_directory providers;
  std::int32_t max_rounds = 1;
  steady::time_point started;
  std::shared_ptr<bench_tally> out;
  std::function<void()> on_done;
  std::int64_t msgs = 0;
  static inline const char* name = "floor_negotiation";
};
using floor_job_actor = caf::stateful_actor<floor_job_state>;

void floor_next_round(floor_job_actor* self, micros previous_best) {
  auto& st = self->state;
  ++st.req.round;
  st.req.price_to_beat = previous_best;
  st.msgs += 2 * static_cast<std::int64_t>(st.providers.actors.size());
  self->spawn(floor_round, st.req, st.providers, caf::actor_cast<caf::actor>(self), st.max_rounds,
              previous_best);
}

caf::behavior floor_job(floor_job_actor* self, resource_request req, provider_directory providers,
                        std::int32_t max_rounds, std::shared_ptr<bench_tally> out,
                        std::function<void()> on_done) {
  auto& st = self->state;
  st.req = std::move(req);
  st.req.round = 0;
  st.providers = std::move(providers);
  st.max_rounds = max_rounds;
  st.started = steady::now();
  st.out = std::move(out);
  st.on_done = std::move(on_done);
  floor_next_round(self, 0);
  return {
      [self](round_result& r) {
        auto& st = self->state;
        if (r.next_round)
          return floor_next_round(self, r.best_price);
        if (r.committed) {
          // award + confirm, a decline to each loser, the release
          st.msgs += 2 + static_cast<std::int64_t>(st.providers.actors.size()) - 1 + 1;
          for (std::size_t i = 0; i < st.providers.names.size(); ++i)
            if (st.providers.names[i] == r.alloc.provider)
              self->send(st.providers.actors[i],
                         release{r.alloc.allocation_id, "", r.alloc.job_id, "bench"});
        }
        const double ms =
            std::chrono::duration<double, std::milli>(steady::now() - st.started).count();
        bool last = false;
        {
          auto& t = *st.out;
          std::lock_guard<std::mutex> g(t.mu);
          t.latency_ms.push_back(ms);
          (r.committed ? t.committed : t.refused)++;
          if (!r.committed)
            t.refusals.push_back(r.reason);
          t.rounds += st.req.round;
          t.msgs += st.msgs;
          last = ++t.done == t.expected;
        }
        if (last)
          st.out->cv.notify_all();
        if (st.on_done)
          st.on_done();
        self->quit();
      },
  };
}

} // namespace

std::variant<negotiate_bench_result, std::string>
run_floor_bench(const negotiate_bench_options& opt, std::shared_ptr<node_context> ctx,
                const std::string& config_toml) {
  if (opt.rate > 0)
    return std::string("--floor runs the closed loop only (no --rate)");
  negotiate_bench_result res;
  res.transport = opt.transport;
  res.floor = true;
  res.providers = opt.providers;
  res.rounds = opt.rounds;
  res.jobs = opt.jobs;
  res.window = opt.window;
  auto out = std::make_shared<bench_tally>();
  out->latency_ms.reserve(static_cast<std::size_t>(opt.jobs));
  out->expected = opt.jobs;
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2); // as the real bench and the agent
    use_tender_scheduler(cfg);
    caf::actor_system sys{cfg};
    provider_directory dirs;
    std::vector<caf::actor> own; ///< the in-process providers, stopped on every way out
    struct stop_on_exit {
      std::vector<caf::actor>& actors;
      ~stop_on_exit() {
        for (auto& a : actors)
          caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      }
    } stopper{own};
    std::unique_ptr<bench_wire> wire;
    if (opt.transport == "tcp") {
      auto w = start_bench_wire(sys, ctx, config_toml, dirs);
      if (auto* err = std::get_if<std::string>(&w))
        return *err;
      wire = std::move(std::get<0>(w));
    } else {
      for (int i = 0; i < opt.providers; ++i) {
        auto name = "floor-" + std::to_string(i);
        dirs.names.push_back(name);
        dirs.actors.push_back(sys.spawn(floor_provider, name, (100 + i) * usd / 100));
        dirs.remote.push_back(false);
        own.push_back(dirs.actors.back());
      }
    }
    const usec now0 = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    std::atomic<int> launched{0};
    std::function<void()> launch_one = [&] {
      const int i = launched.fetch_add(1);
      if (i >= opt.jobs)
        return;
      resource_request r;
      r.job_id = "bench-" + std::to_string(i);
      r.auction_id = "a-" + std::to_string(i);
      r.profile.job_id = r.job_id;
      r.profile.cpu_mean = 0.9;
      r.profile.mem_peak = 400ll << 20;
      r.profile.runtime = 600 * sec_us;
      r.request.cpu = 1000;
      r.request.memory = 512ll << 20;
      r.software = {"sh"};
      r.deadline = now0 + 4 * 3600 * sec_us;
      r.max_cost = 5 * usd;
      sys.spawn(floor_job, std::move(r), dirs, opt.rounds, out, launch_one);
    };
    if (wire)
      wire->begin();
    const auto provider_pids = wire ? wire->pids() : std::vector<int>{};
    const auto machine0 = read_machine(provider_pids);
    const auto t0 = steady::now();
    for (int i = 0; i < std::min(opt.window, opt.jobs); ++i)
      launch_one();
    {
      std::unique_lock<std::mutex> g(out->mu);
      if (!out->cv.wait_for(g, std::chrono::seconds(600), [&] { return out->done >= opt.jobs; })) {
        sys.await_actors_before_shutdown(false); // the stuck ones would hold the shutdown
        return std::string("floor: the negotiations did not finish in 10 minutes");
      }
    }
    res.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    set_machine(machine0, read_machine(provider_pids), res);
    res.negotiations_per_s = static_cast<double>(opt.jobs) / res.seconds;
    set_latencies(*out, res);
    res.msgs_per_negotiation = static_cast<double>(out->msgs) / opt.jobs;
    res.rounds_mean = static_cast<double>(out->rounds) / opt.jobs;
    res.committed = out->committed;
    res.refused = out->refused;
    res.refusals = out->refusals;
    if (wire) // the messages counted on the wire, the raw ZeroMQ rate, the efficiency
      if (auto err = wire->finish(res, opt))
        return *err;
  }
  return res;
}

} // namespace tender

// Provider actors. `spawn_provider` drives a provider plain class inside the node;
// `spawn_remote_provider` stands in for one that lives in another process and is
// reached through the gateway. Both speak the same typed messages to job and
// round actors, so an auction cannot tell them apart.

#include "actors/actors.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <deque>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace tender {

namespace {

struct provider_state {
  context_ptr ctx;
  std::unique_ptr<provider> impl;
  std::map<std::string, caf::actor> jobs; ///< job id -> job actor (usage reports)
  bool drained = false;                   ///< an operator's drain: no offers; running jobs go on
  static inline const char* name = "provider";
};

using provider_actor = caf::stateful_actor<provider_state>;

caf::actor sender_of(caf::local_actor* self) {
  return caf::actor_cast<caf::actor>(self->current_sender());
}

} // namespace

caf::actor spawn_provider(caf::actor_system& sys, context_ptr ctx, std::unique_ptr<provider> p) {
  auto shared = std::make_shared<std::unique_ptr<provider>>(std::move(p));
  return sys.spawn(
      [shared](provider_actor* self, context_ptr ctx) -> caf::behavior {
        auto& st = self->state;
        st.ctx = ctx;
        st.impl = std::move(*shared);
        self->send(self, tick_atom::value);
        return {
            [self](const resource_request& r) {
              auto& st = self->state;
              auto to = sender_of(self);
              if (st.drained) {
                self->send(to, decline{r.job_id, r.auction_id, "", st.impl->name(), "drained"});
                return;
              }
              auto res = st.impl->bid(r, st.ctx->now());
              if (auto* o = std::get_if<offer>(&res))
                self->send(to, std::move(*o));
              else
                self->send(to, std::get<decline>(std::move(res)));
            },
            [self](const award& a) {
              auto& st = self->state;
              auto res = st.impl->hold(a, st.ctx->now());
              auto to = sender_of(self);
              if (auto* c = std::get_if<commit_confirm>(&res))
                self->send(to, std::move(*c));
              else
                self->send(to, std::get<commit_refuse>(std::move(res)));
            },
            [self](const decline& d) {
              // The auction tells us we lost; nothing is held for a lost offer, and the
              // offers made to that auction need not be remembered any longer.
              self->state.impl->lost(d);
            },
            [self](release& r) {
              auto& st = self->state;
              st.impl->release(r, st.ctx->now());
            },
            [self](launch& l) {
              auto& st = self->state;
              auto to = sender_of(self);
              if (auto err = st.impl->start(l, st.ctx->now())) {
                st.ctx->log->warn("provider {}: launch of {} refused: {}", st.impl->name(),
                                  l.job_id, err->message);
                // As a provider process names it over the wire (tools/agent.cpp).
                err->field = "job:" + l.job_id;
                self->send(to, std::move(*err));
                return;
              }
              st.jobs[l.job_id] = to;
            },
            [self](scale_request& r) {
              auto& st = self->state;
              return st.impl->scale(r, st.ctx->now());
            },
            [self](stop_atom, std::string& job_id, std::string& reason) {
              auto& st = self->state;
              st.impl->stop(job_id, reason, st.ctx->now());
            },
            [self](adopt_atom, allocation& a) {
              auto& st = self->state;
              st.jobs[a.job_id] = sender_of(self);
              if (auto rep = st.impl->adopt(a, st.ctx->now())) {
                self->send(st.jobs[a.job_id], std::move(*rep));
                if (rep->final)
                  st.jobs.erase(a.job_id);
              }
            },
            [self](tick_atom) {
              auto& st = self->state;
              for (auto& rep : st.impl->poll(st.ctx->now())) {
                auto it = st.jobs.find(rep.job_id);
                if (it == st.jobs.end())
                  continue;
                bool fin = rep.final;
                self->send(it->second, std::move(rep));
                if (fin)
                  st.jobs.erase(it);
              }
              self->delayed_send(self, std::chrono::microseconds(st.ctx->cfg.sample_interval),
                                 tick_atom::value);
            },
            [self](info_atom) {
              auto& st = self->state;
              auto i = st.impl->info(st.ctx->now());
              i.drained = st.drained;
              return i;
            },
            [self](drain_atom, bool on) {
              auto& st = self->state;
              if (st.drained != on)
                st.ctx->log->info("provider {} {}", st.impl->name(),
                                  on ? "drained: no new offers, running jobs go on" : "re-enabled");
              st.drained = on;
              auto i = st.impl->info(st.ctx->now());
              i.drained = st.drained;
              return i;
            },
            [self](stop_atom) { self->quit(); },
        };
      },
      ctx);
}

namespace {

struct remote_state {
  context_ptr ctx;
  wire_post post; ///< the gateway's outbox
  std::string peer;
  provider_hello hello;
  /// Auction id -> round actor of its latest round, and the number of the call that
  /// set it. Kept after an award or a decline: a late or duplicate offer still reaches
  /// its round, which rejects and counts it. Bounded: past `max_auctions` calls, an
  /// auction whose latest call is the oldest one remembered goes (one called again, by
  /// a later round, stays as of that call).
  struct auction_route {
    caf::actor round;
    std::uint64_t call = 0;
  };
  std::unordered_map<std::string, auction_route> auctions;
  std::deque<std::pair<std::string, std::uint64_t>> auction_order; ///< (id, call), oldest first
  std::uint64_t calls = 0;
  static constexpr std::size_t max_auctions = 4096;
  std::unordered_map<std::string, caf::actor> awards; ///< offer id -> round actor
  std::map<std::string, caf::actor> jobs;     ///< job id -> job actor
  std::unordered_set<std::string> confirmed;  ///< offer ids already confirmed once
  std::deque<std::string> confirmed_order;    ///< bounds `confirmed`
  /// Resize requests waiting for the remote process's scale_offer, by allocation id.
  std::map<std::string, std::deque<caf::response_promise>> scales;
  std::int64_t offers = 0;
  std::int64_t wins = 0;
  bool drained = false; ///< an operator's drain: calls for offers are declined here
  usec last_seen = 0;   ///< when the remote process last said anything (liveness)
  static inline const char* name = "remote_provider";
};

using remote_actor = caf::stateful_actor<remote_state>;

provider_info remote_info(remote_state& st) {
  provider_info i;
  i.name = st.hello.name;
  i.kind = st.hello.kind;
  i.remote = true;
  i.capacity = st.hello.capacity;
  i.offers = st.offers;
  i.wins = st.wins;
  i.gpu_types = st.hello.gpu_types;
  i.risk = st.ctx->breach_probability(st.hello.name);
  i.drained = st.drained;
  return i;
}

/// Encoded here, on this actor's worker, and queued straight for the gateway's I/O
/// thread: no hop through the gateway actor, which would encode every provider's
/// traffic on one worker. Written from `b` where it is (a call for offers is one
/// message shared by every provider's proxy: read, never copied).
template <class T> void forward(remote_actor* self, const T& b) {
  auto& st = self->state;
  auto bytes = encode_message(b, st.ctx->cfg.node_name, st.ctx->now(), st.ctx->new_id("m"));
  if (!st.post(st.peer, std::move(bytes)))
    st.ctx->log->warn("remote provider {}: message dropped: the gateway is stopping or "
                      "100,000 frames are queued",
                      st.hello.name);
}

/// A provider that promised a heartbeat (its hello's `heartbeat`, e.g. a peer site)
/// and has been silent for three periods is gone: a pending award is refused at once
/// (the round tries its next offer), every job it held is told so (the job actor
/// renegotiates it elsewhere) and the provider is told to stop those jobs (in case it
/// is only slow), and the proxy quits, so the intake drops it from the directory and
/// the gateway forgets the peer.
void check_alive(remote_actor* self) {
  auto& st = self->state;
  const auto now = st.ctx->now();
  const auto period = st.hello.heartbeat;
  if (now - st.last_seen <= 3 * period) {
    self->delayed_send(self, std::chrono::microseconds(period), tick_atom::value);
    return;
  }
  const auto why = "provider " + st.hello.name + " is gone: no word from it for " +
                   std::to_string((now - st.last_seen) / 1000) + " ms (heartbeat every " +
                   std::to_string(period / 1000) + " ms)";
  st.ctx->log->warn("{}", why);
  st.ctx->record_sla(st.hello.name, "gone", true);
  for (auto& [offer_id, round] : st.awards)
    self->send(round, commit_refuse{offer_id, "", st.hello.name, "provider gone"});
  for (auto& [job_id, job] : st.jobs) {
    self->send(job, error{"provider_gone", why, "", "job:" + job_id});
    // Should it only be slow, not dead, it must not run the job on: it is placed again.
    forward(self, release{"", "", job_id,
                          "stop: " + st.ctx->cfg.node_name + " declared " + st.hello.name +
                              " gone and placed the job again"});
  }
  self->quit();
}

} // namespace

caf::actor spawn_remote_provider(caf::actor_system& sys, context_ptr ctx, wire_post post,
                                 std::string peer, provider_hello hello) {
  return sys.spawn(
      [=](remote_actor* self, context_ptr ctx) -> caf::behavior {
        auto& st = self->state;
        st.ctx = ctx;
        st.post = post;
        st.peer = peer;
        st.hello = hello;
        st.last_seen = ctx->now();
        if (hello.heartbeat > 0)
          self->delayed_send(self, std::chrono::microseconds(hello.heartbeat), tick_atom::value);
        return {
            [self](tick_atom) { check_alive(self); },
            // node side -> remote process
            [self](const resource_request& r) {
              auto& st = self->state;
              if (st.drained) {
                self->send(sender_of(self),
                           decline{r.job_id, r.auction_id, "", st.hello.name, "drained"});
                return;
              }
              auto& route = st.auctions[r.auction_id];
              route.round = sender_of(self);
              route.call = ++st.calls;
              st.auction_order.emplace_back(r.auction_id, route.call);
              while (st.auction_order.size() > remote_state::max_auctions) {
                // The oldest call goes; its auction too unless a later call renewed it.
                auto& [id, call] = st.auction_order.front();
                if (auto it = st.auctions.find(id);
                    it != st.auctions.end() && it->second.call == call)
                  st.auctions.erase(it);
                st.auction_order.pop_front();
              }
              forward(self, r);
            },
            [self](const award& a) {
              self->state.awards[a.offer_id] = sender_of(self);
              forward(self, a);
            },
            [self](const decline& d) { forward(self, d); },
            [self](const release& r) { forward(self, r); },
            [self](const launch& l) {
              self->state.jobs[l.job_id] = sender_of(self);
              forward(self, l);
            },
            [self](const scale_request& r) -> caf::result<scale_offer> {
              auto rp = self->make_response_promise<scale_offer>();
              self->state.scales[r.allocation_id].push_back(rp);
              forward(self, r);
              return rp;
            },
            [self](stop_atom, std::string& job_id, std::string& reason) {
              forward(self, release{"", "", job_id, "stop: " + reason});
            },
            [self](adopt_atom, allocation& a) { self->state.jobs[a.job_id] = sender_of(self); },
            [self](info_atom) { return remote_info(self->state); },
            [self](drain_atom, bool on) {
              auto& st = self->state;
              if (st.drained != on)
                st.ctx->log->info("provider {} {}", st.hello.name,
                                  on ? "drained: no new offers, running jobs go on" : "re-enabled");
              st.drained = on;
              return remote_info(st);
            },
            // remote process -> node side (via the gateway)
            [self](inbound_atom, envelope& e) {
              auto& st = self->state;
              st.last_seen = st.ctx->now();
              std::visit(
                  [&](auto& b) {
                    using T = std::decay_t<decltype(b)>;
                    if constexpr (std::is_same_v<T, provider_hello>) {
                      // A heartbeat (the gateway passes a known peer's hello on).
                    } else if constexpr (std::is_same_v<T, offer> || std::is_same_v<T, decline>) {
                      if constexpr (std::is_same_v<T, offer>)
                        ++st.offers;
                      auto it = st.auctions.find(b.auction_id);
                      if (it != st.auctions.end())
                        self->send(it->second.round, std::move(b));
                    } else if constexpr (std::is_same_v<T, commit_confirm> ||
                                         std::is_same_v<T, commit_refuse>) {
                      auto it = st.awards.find(b.offer_id);
                      if (it != st.awards.end()) {
                        auto round = it->second;
                        st.awards.erase(it);
                        if constexpr (std::is_same_v<T, commit_confirm>) {
                          ++st.wins;
                          st.confirmed.insert(b.offer_id);
                          st.confirmed_order.push_back(b.offer_id);
                          if (st.confirmed_order.size() > 4096) {
                            st.confirmed.erase(st.confirmed_order.front());
                            st.confirmed_order.pop_front();
                          }
                          // A round that is over cannot release what it never sees: do it here.
                          auto back = release{b.alloc.allocation_id, b.offer_id, b.job_id,
                                              "confirmed after the auction ended"};
                          self->request(round, std::chrono::seconds(30), std::move(b))
                              .then([] {},
                                    [self, back](caf::error&) {
                                      self->state.ctx->log->warn(
                                          "remote provider {}: confirm for {} after its "
                                          "auction ended: released",
                                          self->state.hello.name, back.offer_id);
                                      forward(self, back);
                                    });
                        } else {
                          self->send(round, std::move(b));
                        }
                      } else if constexpr (std::is_same_v<T, commit_confirm>) {
                        if (st.confirmed.count(b.offer_id)) {
                          // The same confirm twice: the first one stands, this one is noise.
                          st.ctx->log->warn("remote provider {}: duplicate confirm for {} ignored",
                                            st.hello.name, b.offer_id);
                          return;
                        }
                        forward(self, release{b.alloc.allocation_id, b.offer_id, b.job_id,
                                              "unknown award"});
                      }
                    } else if constexpr (std::is_same_v<T, usage_report>) {
                      auto it = st.jobs.find(b.job_id);
                      if (it != st.jobs.end()) {
                        bool fin = b.final;
                        self->send(it->second, std::move(b));
                        if (fin)
                          st.jobs.erase(it);
                      }
                    } else if constexpr (std::is_same_v<T, scale_offer>) {
                      auto it = st.scales.find(b.allocation_id);
                      if (it == st.scales.end() || it->second.empty()) {
                        st.ctx->log->warn("remote provider {}: unasked scale_offer for {}",
                                          st.hello.name, b.allocation_id);
                        return;
                      }
                      auto rp = it->second.front();
                      it->second.pop_front();
                      if (it->second.empty())
                        st.scales.erase(it);
                      rp.deliver(std::move(b));
                    } else if constexpr (std::is_same_v<T, error>) {
                      // A launch refusal names the job in `field` as "job:<id>".
                      if (b.field.rfind("job:", 0) == 0) {
                        auto it = st.jobs.find(b.field.substr(4));
                        if (it != st.jobs.end())
                          self->send(it->second, std::move(b));
                      } else {
                        st.ctx->log->warn("remote provider {}: error {}: {}", st.hello.name, b.code,
                                          b.message);
                      }
                    } else {
                      st.ctx->log->warn("remote provider {}: unexpected {}", st.hello.name,
                                        type_name(body{b}));
                    }
                  },
                  e.body);
            },
            [self](gone_atom) { self->quit(); },
        };
      },
      ctx);
}

} // namespace tender

// The job actor: one per job, the job's state machine.
//
//   submitted -> profiling -> negotiating -> committed -> running -> done | failed
//                    |             |             |         |   ^
//                    |             +-> refused   |         v   |
//                    |                           |       rescaling    (a scaling need)
//                    |                           |           |
//                    +------------- (cancel) ----+-----------+-> cancelled
//
// Every transition is journaled before it is announced. After a restart the actor
// resumes from the journaled state: profiling and negotiating start over, a
// committed job is launched on its allocation, a running one is re-adopted.
//
// Scaling. While the job runs, its usage samples feed a `scaler` (actors/scaler.hpp,
// over the deviation detector). A need it plans takes the job to `rescaling`:
//
//   in place:  scale_request --> the allocation's provider --> scale_offer
//                granted --> the allocation grows/shrinks, back to running
//                refused --> (memory growth) a move, else back to running
//   move:      an auction among the other providers for the wanted amounts
//                committed --> stop the old run --> its final report --> launch on the
//                              new allocation (a restart: jobs declare no checkpoint
//                              commands), release the old one, back to running
//                refused   --> back to running (or failed, if the old run has died)
//
// Every decision is journaled (journal::save_scaling) as it is made.

#include "actors/actors.hpp"
#include "actors/auction_book.hpp"
#include "actors/scaler.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <cmath>

namespace tender {

namespace {

struct job_actor_state {
  context_ptr ctx;
  caf::actor intake;
  caf::actor profiler;
  job_record rec;
  std::shared_ptr<auction_book> book;
  provider_directory providers;
  caf::actor provider; ///< the allocation's provider
  std::int32_t round = 0;
  bool round_open = false; ///< a round actor of this job's has not reported yet
  bool cancel_requested = false;
  std::string cancel_reason;
  /// The profiler's prediction counted this job among its user's jobs in flight until
  /// the predictor observes its run; a job that ends without one (refused, cancelled,
  /// failed before it started, lost with its provider) is taken out when it ends.
  bool counted_in_flight = false;
  // usage accumulation
  double cpu_sum = 0;
  std::int64_t cpu_n = 0;
  usec last_journaled_sample = 0;
  // scaling
  std::unique_ptr<scaler> scale;    ///< watches the running job (null: not running, or disabled)
  std::optional<scaling_plan> plan; ///< the change being carried out (state rescaling)
  bool moving = false;              ///< a move is under way
  std::string move_from;            ///< ... from this allocation
  caf::actor old_provider;
  std::optional<allocation> move_alloc; ///< the new allocation, committed, not yet launched
  caf::actor move_provider;
  bool old_ended = false;           ///< the old run has ended (stopped, or by itself)
  std::string old_end;              ///< how it ended
  bool launch_pending = false;      ///< a launch after a move, not yet seen running
  std::vector<offer_summary> offers_before_move;
  // federation: the local providers are asked first, peer sites only if they cannot
  provider_directory bidders;       ///< who the current negotiation's rounds invite
  provider_directory peer_sites;    ///< still to ask when the local negotiation fails
  bool across_peers = false;        ///< the current negotiation is among peer sites
  std::string local_refusal;        ///< why the local providers could not place it
  std::vector<offer_summary> offers_before_peers;
  static inline const char* name = "job";
};

using job_actor = caf::stateful_actor<job_actor_state>;

resources request_from(const job_spec& spec, const resource_profile& p) {
  resources r = spec.hints;
  if (r.cpu <= 0) {
    double cores = std::max(p.cpu_hi, p.cpu_mean);
    r.cpu = cores > 0 ? static_cast<millicores>(std::ceil(cores * 1000.0 / 250.0) * 250) : 1000;
  }
  if (r.memory <= 0) {
    bytes_t m = std::max(p.mem_hi, p.mem_peak);
    r.memory = m > 0 ? (m + m / 4 + (64ll << 20)) : (256ll << 20);
  }
  if (r.gpus <= 0 && !r.gpu_type.empty())
    r.gpus = 1;
  if (r.gpus <= 0 && p.gpus > 0) {
    r.gpus = p.gpus;
    r.gpu_type = p.gpu_type;
  }
  return r;
}

void publish(job_actor* self) {
  auto& st = self->state;
  self->send(st.intake, update_atom::value, st.rec.status);
}

/// Journals the transition, then announces it.
void move_to(job_actor* self, job_state to, const std::string& reason) {
  auto& st = self->state;
  auto from = st.rec.status.state;
  st.rec.status.state = to;
  st.rec.status.reason = reason;
  auto now = st.ctx->now();
  if (is_final(to) && st.rec.status.finished_at == 0)
    st.rec.status.finished_at = now;
  if (is_final(to) && st.counted_in_flight) {
    st.ctx->withdraw(st.rec.spec);
    st.counted_in_flight = false;
  }
  st.ctx->journal->transition(st.rec.job_id, from, to, reason, now);
  st.ctx->journal->save_status(st.rec.status);
  st.ctx->log->info("job {}: {} -> {}{}{}", st.rec.job_id, to_string(from), to_string(to),
                    reason.empty() ? "" : ": ", reason);
  publish(self);
  // With a round still open the actor stays until its result comes, to release what
  // that round may commit (a job that ends during its move's auction).
  if (is_final(to) && !st.round_open)
    self->quit();
}

void start_negotiation(job_actor* self, const std::string& reason = {});
void start_profiling(job_actor* self);
void launch_job(job_actor* self);

void release_allocation(job_actor* self, const std::string& reason) {
  auto& st = self->state;
  if (!st.rec.alloc || !st.provider)
    return;
  release r{st.rec.alloc->allocation_id, st.rec.alloc->offer_id, st.rec.job_id, reason};
  self->send(st.provider, r);
  st.ctx->journal->save_release(r, st.ctx->now());
}

caf::actor find_provider(const provider_directory& d, const std::string& name) {
  for (std::size_t i = 0; i < d.names.size(); ++i)
    if (d.names[i] == name)
      return d.actors[i];
  return {};
}

void start_profiling(job_actor* self) {
  auto& st = self->state;
  move_to(self, job_state::profiling, "");
  usec budget = st.rec.spec.profile_budget > 0 ? st.rec.spec.profile_budget : 10 * sec_us;
  self->request(st.profiler, std::chrono::microseconds(budget + 30 * sec_us), profile_atom::value,
                st.rec.job_id, st.rec.spec)
    .then(
      [self](resource_profile& p) {
        auto& st = self->state;
        st.counted_in_flight = true; // the profiler's prediction announced the job
        if (st.cancel_requested)
          return move_to(self, job_state::cancelled, st.cancel_reason);
        st.rec.status.profile = p;
        st.rec.status.has_profile = true;
        st.ctx->journal->save_profile(st.rec.job_id, p);
        start_negotiation(self);
      },
      [self](caf::error& e) {
        move_to(self, job_state::failed, "profiler: " + self->system().render(e));
      });
}

void start_round(job_actor* self, micros previous_best) {
  auto& st = self->state;
  ++st.round;
  round_args a;
  a.book = st.book;
  a.providers = st.bidders;
  a.round = st.round;
  a.previous_best = previous_best;
  a.job = caf::actor_cast<caf::actor>(self);
  st.round_open = true;
  spawn_round(self->system(), st.ctx, std::move(a));
}

/// Splits a directory into this site's own providers and peer sites.
std::pair<provider_directory, provider_directory> split_sites(const provider_directory& d) {
  provider_directory local, sites;
  for (std::size_t i = 0; i < d.names.size(); ++i) {
    auto& to = d.is_site(i) ? sites : local;
    to.names.push_back(d.names[i]);
    to.actors.push_back(d.actors[i]);
    to.remote.push_back(d.remote[i]);
    to.site.push_back(d.is_site(i));
  }
  return {std::move(local), std::move(sites)};
}

/// A negotiation among `bidders`: a fresh auction id and book, round 1.
void negotiate_among(job_actor* self, provider_directory bidders) {
  auto& st = self->state;
  st.bidders = std::move(bidders);
  resource_request req;
  req.job_id = st.rec.job_id;
  req.auction_id = st.ctx->new_id("a");
  req.profile = st.rec.status.profile;
  req.profile.job_id = st.rec.job_id;
  req.request = request_from(st.rec.spec, st.rec.status.profile);
  req.software = st.rec.spec.software;
  req.deadline = st.rec.spec.deadline;
  req.max_cost = st.rec.spec.max_cost;
  req.protocol = st.ctx->cfg.auction.protocol;
  req.path = {st.ctx->cfg.node_name};
  std::set<std::string> names(st.bidders.names.begin(), st.bidders.names.end());
  st.book = std::make_shared<auction_book>(req, names);
  st.round = 0;
  start_round(self, 0);
}

/// Negotiates with this site's own providers first; peer sites (federation) are asked
/// only when those cannot place the job (capacity, price, deadline): a job is never
/// sent across for a reason its own site would not have. `reason` goes on the
/// transition to negotiating (a renegotiation says why).
void start_negotiation(job_actor* self, const std::string& reason) {
  auto& st = self->state;
  move_to(self, job_state::negotiating, reason);
  self->request(st.intake, std::chrono::seconds(5), providers_atom::value)
    .then(
      [self](provider_directory& d) {
        auto& st = self->state;
        if (d.names.empty())
          return move_to(self, job_state::refused, "no providers are connected");
        st.providers = d;
        auto [local, sites] = split_sites(d);
        st.local_refusal.clear();
        st.offers_before_peers.clear();
        st.across_peers = local.names.empty();
        st.peer_sites = st.across_peers ? provider_directory{} : std::move(sites);
        negotiate_among(self, st.across_peers ? std::move(sites) : std::move(local));
      },
      [self](caf::error& e) {
        move_to(self, job_state::failed, "provider directory: " + self->system().render(e));
      });
}

void launch_job(job_actor* self) {
  auto& st = self->state;
  if (!st.provider) {
    return move_to(self, job_state::failed,
                   "provider " + st.rec.alloc->provider + " is not connected");
  }
  launch l;
  l.job_id = st.rec.job_id;
  l.allocation_id = st.rec.alloc->allocation_id;
  l.lease_token = st.rec.alloc->lease_token;
  l.spec = st.rec.spec;
  self->send(st.provider, l);
}

// --- scaling ---------------------------------------------------------------------

std::string mib_text(bytes_t b) { return std::to_string(b >> 20) + " MiB"; }

std::string cores_text(millicores c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f cores", static_cast<double>(c) / 1000.0);
  return buf;
}

/// "memory 200 MiB -> 800 MiB", naming only what changes.
std::string change_text(const resources& from, const resources& to) {
  std::string out;
  if (from.memory != to.memory)
    out += "memory " + mib_text(from.memory) + " -> " + mib_text(to.memory);
  if (from.cpu != to.cpu)
    out += (out.empty() ? "" : ", ") + std::string("CPU ") + cores_text(from.cpu) + " -> " +
           cores_text(to.cpu);
  if (from.gpu_memory != to.gpu_memory || from.gpu_type != to.gpu_type) {
    auto gpu = [](const resources& r) {
      return (r.gpu_type.empty() ? std::string("any GPU") : r.gpu_type) + " " +
             mib_text(r.gpu_memory);
    };
    out += (out.empty() ? "" : ", ") + std::string("GPU ") + gpu(from) + " -> " + gpu(to);
  }
  return out.empty() ? "no change" : out;
}

void journal_decision(job_actor* self, const scaling_decision& d) {
  auto& st = self->state;
  st.ctx->journal->save_scaling(d);
  st.ctx->log->info("job {}: scaling: {} ({}) {} by {}: {}", st.rec.job_id, d.need, d.action,
                    d.outcome, d.by, d.detail);
}

/// Back to running after a change (or an attempt at one).
void end_rescaling(job_actor* self, const std::string& reason) {
  auto& st = self->state;
  st.plan.reset();
  st.moving = false;
  st.move_alloc.reset();
  st.move_provider = caf::actor{};
  st.old_provider = caf::actor{};
  if (st.rec.status.state == job_state::rescaling)
    move_to(self, job_state::running, reason);
}

void move_failed(job_actor* self, const std::string& why) {
  auto& st = self->state;
  if (st.plan)
    journal_decision(self, st.scale->move_failed(*st.plan, why, st.ctx->now()));
  if (st.old_ended) {
    st.moving = false;
    st.plan.reset();
    return move_to(self, job_state::failed,
                   st.old_end + "; the move to a larger allocation failed: " + why);
  }
  end_rescaling(self, "move failed: " + why);
}

/// The old run is over and the new allocation committed: launch the job on it.
void finish_move(job_actor* self) {
  auto& st = self->state;
  const auto now = st.ctx->now();
  const allocation to = *st.move_alloc;
  const allocation from = *st.rec.alloc;
  st.ctx->journal->save_release(
    release{from.allocation_id, from.offer_id, st.rec.job_id, "moved to " + to.provider}, now);
  st.rec.alloc = to;
  st.provider = st.move_provider;
  st.rec.status.provider = to.provider;
  st.rec.status.allocation_id = to.allocation_id;
  st.rec.status.price += to.price; // the old allocation is paid for too
  st.rec.status.allocated = to.granted;
  if (!st.provider) {
    st.old_ended = true;
    return move_failed(self, "provider " + to.provider + " is not connected");
  }
  const std::string detail = "restarted on " + to.provider + " (" + change_text(from.granted,
                             to.granted) + "): the job declares no checkpoint/restart commands, "
                             "so it starts over; the run on " + from.provider + " ended: " +
                             st.old_end;
  journal_decision(self, st.scale->moved(*st.plan, to, detail, now));
  st.launch_pending = true;
  launch_job(self);
  end_rescaling(self, "moved to " + to.provider + " (" + change_text(from.granted, to.granted) +
                        "), restarted");
}

/// A round of the move's auction has ended.
void on_move_round(job_actor* self, round_result& r) {
  auto& st = self->state;
  std::vector<offer_summary> all = st.offers_before_move;
  all.insert(all.end(), r.offers.begin(), r.offers.end());
  st.rec.status.offers = std::move(all);
  if (r.next_round && !st.cancel_requested)
    return start_round(self, r.best_price);
  if (st.cancel_requested) {
    if (r.committed) {
      self->send(find_provider(st.providers, r.alloc.provider),
                 release{r.alloc.allocation_id, r.alloc.offer_id, st.rec.job_id, st.cancel_reason});
      st.ctx->journal->save_release(
        release{r.alloc.allocation_id, r.alloc.offer_id, st.rec.job_id, st.cancel_reason},
        st.ctx->now());
    }
    st.moving = false;
    if (st.old_ended)
      move_to(self, job_state::cancelled, st.cancel_reason);
    return; // the old run's final report ends the job
  }
  if (!r.committed)
    return move_failed(self, "no other provider took it: " + r.reason);
  st.ctx->journal->save_allocation(r.alloc, st.ctx->now());
  st.move_alloc = r.alloc;
  st.move_provider = find_provider(st.providers, r.alloc.provider);
  if (st.old_ended)
    return finish_move(self);
  // Stop the old run; its final report finishes the move.
  if (st.old_provider)
    self->send(st.old_provider, stop_atom::value, st.rec.job_id,
               "moving to " + r.alloc.provider + " for " +
                 change_text(st.plan->held, st.plan->wanted));
}

/// Negotiates a new allocation with every provider but the current one. `old_end` is
/// how the current run ended when it already has (a move after the fact), else empty.
void start_move(job_actor* self, const std::string& old_end = {}) {
  auto& st = self->state;
  st.moving = true;
  st.move_from = st.rec.alloc->allocation_id;
  st.old_provider = st.provider;
  st.old_ended = !old_end.empty();
  st.old_end = old_end;
  st.move_alloc.reset();
  st.offers_before_move = st.rec.status.offers;
  self->request(st.intake, std::chrono::seconds(5), providers_atom::value)
    .then(
      [self](provider_directory& d) {
        auto& st = self->state;
        if (!st.moving)
          return;
        provider_directory others;
        for (std::size_t i = 0; i < d.names.size(); ++i)
          if (d.names[i] != st.rec.alloc->provider) {
            others.names.push_back(d.names[i]);
            others.actors.push_back(d.actors[i]);
            others.remote.push_back(d.remote[i]);
          }
        if (others.names.empty())
          return move_failed(self, "no other provider is connected");
        st.providers = d; // the new allocation's provider is looked up here
        st.bidders = others; // later rounds of the move invite the same
        resource_request req;
        req.job_id = st.rec.job_id;
        req.auction_id = st.ctx->new_id("a");
        req.profile = st.rec.status.profile;
        req.profile.job_id = st.rec.job_id;
        req.profile.mem_peak = std::max(req.profile.mem_peak, st.rec.status.mem_used_peak);
        req.request = st.scale->move_target(*st.plan);
        req.software = st.rec.spec.software;
        req.deadline = st.rec.spec.deadline;
        req.max_cost = st.rec.spec.max_cost;
        req.protocol = st.ctx->cfg.auction.protocol;
        std::set<std::string> names(others.names.begin(), others.names.end());
        st.book = std::make_shared<auction_book>(req, names);
        st.round = 0;
        ++st.round;
        round_args a;
        a.book = st.book;
        a.providers = others;
        a.round = st.round;
        a.previous_best = 0;
        a.job = caf::actor_cast<caf::actor>(self);
        st.round_open = true;
        spawn_round(self->system(), st.ctx, std::move(a));
      },
      [self](caf::error& e) { move_failed(self, "provider directory: " + self->system().render(e)); });
}

void on_scale_answer(job_actor* self, const scale_offer* o, const std::string& err) {
  auto& st = self->state;
  // The job may have ended, or been cancelled, while the provider thought.
  if (!st.plan || st.moving || st.rec.status.state != job_state::rescaling)
    return;
  const auto now = st.ctx->now();
  const scaling_plan p = *st.plan;
  auto a = o ? st.scale->answered(p, *o, now) : st.scale->unanswered(p, err, now);
  journal_decision(self, a.decision);
  if (a.decision.outcome == "granted") {
    st.rec.alloc->granted = a.decision.granted;
    st.rec.status.allocated = a.decision.granted;
    st.rec.status.price = std::max<micros>(0, st.rec.status.price + a.decision.price_delta);
    st.ctx->journal->save_allocation(*st.rec.alloc, now);
    return end_rescaling(self, "in place by " + a.decision.by + ": " +
                                 change_text(p.held, a.decision.granted));
  }
  if (a.move && !st.cancel_requested) {
    st.plan->action = scaling_action::move;
    return start_move(self);
  }
  end_rescaling(self, "in place refused by " + a.decision.by + ": " + a.decision.detail);
}

/// Carries out what the scaler planned.
void act_on(job_actor* self, scaling_plan p) {
  auto& st = self->state;
  const auto now = st.ctx->now();
  switch (p.action) {
    case scaling_action::extend:
      return journal_decision(self, st.scale->extended(p, now));
    case scaling_action::none:
      return journal_decision(self, st.scale->not_acted(p, now));
    case scaling_action::move:
    case scaling_action::in_place:
      break;
  }
  const std::string why = std::string(to_string(p.need.kind)) + ": " + p.need.reason;
  st.plan = p;
  move_to(self, job_state::rescaling, why);
  if (p.action == scaling_action::move)
    return start_move(self); // in place is known to be impossible here
  if (!st.provider)
    return on_scale_answer(self, nullptr, "provider " + st.rec.alloc->provider +
                                            " is not connected");
  self->request(st.provider, std::chrono::microseconds(st.ctx->cfg.scaling.answer_timeout),
                st.scale->request(p))
    .then([self](scale_offer& o) { on_scale_answer(self, &o, ""); },
          [self](caf::error& e) { on_scale_answer(self, nullptr, self->system().render(e)); });
}

/// Feeds the running job's samples to its scaler and acts on what it plans.
void watch(job_actor* self, const usage_report& r) {
  auto& st = self->state;
  auto& s = st.rec.status;
  if (!st.ctx->cfg.scaling.enabled || !st.rec.alloc)
    return;
  if (!st.scale && s.state == job_state::running) {
    st.scale = std::make_unique<scaler>(st.rec.job_id, *st.rec.alloc,
                                        s.started_at > 0 ? s.started_at : st.ctx->now(),
                                        s.profile.runtime_hi, st.ctx->cfg.scaling);
  }
  if (!st.scale || r.allocation_id != st.scale->allocation_id())
    return;
  for (auto& x : r.samples)
    st.scale->observe(x);
  if (r.final || s.state != job_state::running || st.plan)
    return;
  if (auto p = st.scale->check(st.ctx->now()))
    act_on(self, std::move(*p));
}

/// The run ended out of GPU memory: moves the job to a GPU with more memory (a
/// restart), if the scaler allows one now. False: the job ends as its run did.
bool move_for_gpu_memory(job_actor* self, const usage_report& r) {
  auto& st = self->state;
  const auto now = st.ctx->now();
  scaling_plan p = st.scale->gpu_memory_short(r.gpu_memory_needed, r.reason, now);
  if (p.action != scaling_action::move) {
    journal_decision(self, st.scale->not_acted(p, now));
    return false;
  }
  st.plan = p;
  move_to(self, job_state::rescaling,
          std::string(to_string(p.need.kind)) + ": " + p.need.reason);
  start_move(self, r.reason.empty() ? "exit " + std::to_string(r.exit_code) : r.reason);
  return true;
}

void on_usage(job_actor* self, usage_report& r) {
  auto& st = self->state;
  auto& s = st.rec.status;
  const bool current = st.rec.alloc && (r.allocation_id.empty() ||
                                        r.allocation_id == st.rec.alloc->allocation_id);
  if (!current && !(st.moving && r.allocation_id == st.move_from)) {
    // A run the job has left (its provider was lost and it was placed again).
    st.ctx->log->warn("job {}: usage from allocation {} ignored: not the job's allocation",
                      st.rec.job_id, r.allocation_id);
    return;
  }
  if (st.moving && r.final && r.allocation_id == st.move_from) {
    // The old run of a move has ended. Unless it finished its work (or the job was
    // cancelled), the job restarts on the new allocation.
    for (auto& x : r.samples) {
      s.mem_used_peak = std::max(s.mem_used_peak, x.rss);
      st.ctx->journal->save_usage(st.rec.job_id, x);
    }
    if (r.exit_code != 0 && !st.cancel_requested) {
      st.old_ended = true;
      st.old_end = r.reason.empty() ? "exit " + std::to_string(r.exit_code) : r.reason;
      if (st.move_alloc)
        finish_move(self);
      return;
    }
    if (st.move_alloc) {
      release rel{st.move_alloc->allocation_id, st.move_alloc->offer_id, st.rec.job_id,
                  st.cancel_requested ? st.cancel_reason : "the job finished before the move"};
      if (st.move_provider)
        self->send(st.move_provider, rel);
      st.ctx->journal->save_release(rel, st.ctx->now());
    }
    st.moving = false;
    st.move_alloc.reset();
    // ... and it ends here like any job.
  }
  if (st.launch_pending && !r.final && r.allocation_id == st.rec.alloc->allocation_id)
    st.launch_pending = false;
  if (r.started_at > 0 && s.started_at == 0)
    s.started_at = r.started_at;
  for (auto& x : r.samples) {
    st.cpu_sum += static_cast<double>(x.cpu) / 1000.0;
    st.cpu_n++;
    s.mem_used_peak = std::max(s.mem_used_peak, x.rss);
    s.io_read = std::max(s.io_read, x.io_read);
    s.io_write = std::max(s.io_write, x.io_write);
    st.ctx->journal->save_usage(st.rec.job_id, x);
  }
  if (st.cpu_n > 0)
    s.cpu_used_mean = st.cpu_sum / static_cast<double>(st.cpu_n);
  // A job that ended before its first sample still ran: it passes through running.
  if (s.state == job_state::committed && (!r.final || r.started_at > 0)) {
    move_to(self, job_state::running, "started on " + st.rec.alloc->provider);
  } else if (s.state == job_state::rescaling && !st.plan && !r.final) {
    // Journaled as rescaling by a node that then stopped: the change was lost with it.
    move_to(self, job_state::running, "re-adopted; an interrupted resize is looked at again");
  } else if (!r.samples.empty()) {
    publish(self);
  }
  watch(self, r);
  if (r.final && r.exit_code != 0 && r.gpu_memory_needed > 0 && !st.cancel_requested &&
      !st.moving && st.scale && move_for_gpu_memory(self, r))
    return;
  if (r.final) {
    s.exit_code = r.exit_code;
    if (r.finished_at > 0)
      s.finished_at = r.finished_at;
    if (s.started_at > 0) {
      finished_job f;
      f.spec = st.rec.spec;
      f.submitted_at = s.submitted_at;
      f.runtime = (s.finished_at > 0 ? s.finished_at : st.ctx->now()) - s.started_at;
      f.finished_at = s.finished_at > 0 ? s.finished_at : st.ctx->now();
      f.cpu_mean = s.cpu_used_mean;
      f.mem_peak = s.mem_used_peak;
      st.ctx->observe(f);
      st.counted_in_flight = false;
    }
    st.ctx->journal->save_release(
      release{st.rec.alloc ? st.rec.alloc->allocation_id : "", "", st.rec.job_id, r.reason},
      st.ctx->now());
    if (st.cancel_requested)
      move_to(self, job_state::cancelled, st.cancel_reason + " (" + r.reason + ")");
    else if (r.exit_code == 0)
      move_to(self, job_state::done, r.reason);
    else
      move_to(self, job_state::failed, r.reason);
  }
}

/// The allocation's provider is gone (a peer site that stopped answering): the
/// allocation is written off and the job negotiated again among the providers still
/// connected. The lost run cannot come back: its reports no longer match the job's
/// allocation (on_usage), and a site that returns stops what it ran for others
/// (actors/federation.hpp).
void provider_lost(job_actor* self, const std::string& why) {
  auto& st = self->state;
  const auto state = st.rec.status.state;
  if (state != job_state::committed && state != job_state::running &&
      state != job_state::rescaling) {
    st.ctx->log->warn("job {}: {}", st.rec.job_id, why);
    return;
  }
  if (st.cancel_requested) {
    if (st.rec.alloc)
      st.ctx->journal->save_release(
        release{st.rec.alloc->allocation_id, st.rec.alloc->offer_id, st.rec.job_id, why},
        st.ctx->now());
    return move_to(self, job_state::cancelled, st.cancel_reason + " (" + why + ")");
  }
  if (st.rec.alloc)
    st.ctx->journal->save_release(release{st.rec.alloc->allocation_id, st.rec.alloc->offer_id,
                                          st.rec.job_id, "provider lost: " + why},
                                  st.ctx->now());
  st.rec.alloc.reset();
  st.provider = caf::actor{};
  st.scale.reset();
  st.plan.reset();
  st.moving = false;
  st.move_alloc.reset();
  st.launch_pending = false;
  st.rec.status.provider.clear();
  st.rec.status.allocation_id.clear();
  st.rec.status.started_at = 0;
  start_negotiation(self, "renegotiating: " + why);
}

/// After a restart: find the allocation's provider and re-adopt the job. A remote
/// provider may take a moment to introduce itself again, so a missing one is
/// looked for once a second for a while before the job is failed.
void readopt(job_actor* self, int attempt) {
  constexpr int max_attempts = 15;
  auto& st = self->state;
  auto state = st.rec.status.state;
  self->request(st.intake, std::chrono::seconds(5), providers_atom::value)
    .then(
      [self, state, attempt](provider_directory& d) {
        auto& st = self->state;
        st.providers = d;
        if (!st.rec.alloc)
          return move_to(self, job_state::failed,
                         "restart: no allocation journaled for a " +
                           std::string(to_string(state)) + " job");
        st.provider = find_provider(d, st.rec.alloc->provider);
        if (!st.provider) {
          if (attempt < max_attempts) {
            self->delayed_send(self, std::chrono::seconds(1), resume_atom::value, attempt + 1);
            return;
          }
          return move_to(self, job_state::failed,
                         "restart: provider " + st.rec.alloc->provider + " did not come back");
        }
        self->send(st.provider, adopt_atom::value, *st.rec.alloc);
        if (state == job_state::committed)
          launch_job(self);
      },
      [self](caf::error& e) {
        move_to(self, job_state::failed, "restart: " + self->system().render(e));
      });
}

} // namespace

caf::actor spawn_job(caf::actor_system& sys, context_ptr ctx, job_record rec, caf::actor intake,
                     caf::actor profiler, bool resume) {
  return sys.spawn([=](job_actor* self, context_ptr ctx) mutable -> caf::behavior {
    auto& st = self->state;
    st.ctx = ctx;
    st.intake = intake;
    st.profiler = profiler;
    st.rec = std::move(rec);
    // Kick off in the first message so that the behaviour is installed.
    self->send(self, start_atom::value, resume);
    return {
      [self](start_atom, bool resume) {
        auto& st = self->state;
        auto state = st.rec.status.state;
        if (!resume || state == job_state::submitted || state == job_state::profiling) {
          return start_profiling(self);
        }
        if (state == job_state::negotiating)
          return start_negotiation(self);
        // committed / running / rescaling: find the provider and re-adopt.
        readopt(self, 1);
      },
      [self](resume_atom, int attempt) { readopt(self, attempt); },
      [self](round_result& r) {
        auto& st = self->state;
        st.round_open = false;
        if (is_final(st.rec.status.state)) {
          // The job ended while this round ran: what it committed is not needed.
          if (r.committed) {
            release rel{r.alloc.allocation_id, r.alloc.offer_id, st.rec.job_id,
                        "the job ended (" + std::string(to_string(st.rec.status.state)) +
                          ") before its auction did"};
            if (auto p = find_provider(st.providers, r.alloc.provider))
              self->send(p, rel);
            st.ctx->journal->save_release(rel, st.ctx->now());
            st.ctx->log->info("job {}: released {} on {}: {}", st.rec.job_id,
                              r.alloc.allocation_id, r.alloc.provider, rel.reason);
          }
          return self->quit();
        }
        if (st.moving)
          return on_move_round(self, r);
        st.rec.status.offers = r.offers;
        if (st.cancel_requested && !r.committed)
          return move_to(self, job_state::cancelled, st.cancel_reason);
        if (!st.offers_before_peers.empty())
          st.rec.status.offers.insert(st.rec.status.offers.begin(), st.offers_before_peers.begin(),
                                      st.offers_before_peers.end());
        if (r.next_round)
          return start_round(self, r.best_price);
        if (!r.committed && !st.across_peers && !st.peer_sites.names.empty()) {
          // This site cannot place it: negotiate across the peer sites.
          st.across_peers = true;
          st.local_refusal = r.reason;
          st.offers_before_peers = st.rec.status.offers;
          st.ctx->log->info("job {}: not placed locally ({}); negotiating across {} peer site(s)",
                            st.rec.job_id, r.reason, st.peer_sites.names.size());
          return negotiate_among(self, std::move(st.peer_sites));
        }
        if (!r.committed)
          return move_to(self, job_state::refused,
                         st.local_refusal.empty()
                           ? r.reason
                           : "locally: " + st.local_refusal + "; across peer sites: " + r.reason);
        st.rec.alloc = r.alloc;
        st.provider = find_provider(st.providers, r.alloc.provider);
        st.rec.status.provider = r.alloc.provider;
        st.rec.status.allocation_id = r.alloc.allocation_id;
        st.rec.status.price = r.alloc.price;
        st.rec.status.allocated = r.alloc.granted;
        st.ctx->journal->save_allocation(r.alloc, st.ctx->now());
        if (st.cancel_requested) {
          release_allocation(self, st.cancel_reason);
          return move_to(self, job_state::cancelled, st.cancel_reason);
        }
        move_to(self, job_state::committed, r.reason);
        launch_job(self);
      },
      [self](usage_report& r) { on_usage(self, r); },
      [self](error& e) {
        // The provider refused the launch (lease) or something went wrong.
        auto& st = self->state;
        if (e.code == "provider_gone") {
          // Only the allocation's own provider going matters (not one the job has left).
          if (st.provider && self->current_sender() == st.provider.address())
            return provider_lost(self, e.message);
          return;
        }
        if (st.rec.status.state == job_state::committed || st.launch_pending) {
          st.launch_pending = false;
          release_allocation(self, "launch refused");
          move_to(self, job_state::failed, "launch refused: " + e.message);
        } else {
          st.ctx->log->warn("job {}: provider error: {}", st.rec.job_id, e.message);
        }
      },
      [self](cancel_atom, std::string& reason) {
        auto& st = self->state;
        st.cancel_requested = true;
        st.cancel_reason = reason;
        switch (st.rec.status.state) {
          case job_state::submitted:
            move_to(self, job_state::cancelled, reason);
            break;
          case job_state::committed:
            release_allocation(self, reason);
            move_to(self, job_state::cancelled, reason);
            break;
          case job_state::running:
          case job_state::rescaling:
            if (st.provider)
              self->send(st.provider, stop_atom::value, st.rec.job_id, reason);
            break;
          default:
            break; // profiling / negotiating: finishes the stage, then cancels
        }
      },
      [self](status_atom) { return self->state.rec.status; },
    };
  }, ctx);
}

} // namespace tender

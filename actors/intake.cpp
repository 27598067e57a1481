// The intake actor: accepts job_submit, answers queries, keeps the provider
// directory and the latest status of every job.

#include "actors/actors.hpp"
#include "actors/auction_book.hpp"
#include "actors/bus.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <deque>

namespace tender {

namespace {

struct provider_entry {
  std::string name;
  caf::actor handle;
  bool remote = false;
  bool site = false; ///< a peer site (federation): negotiated with after the local providers
};

struct intake_state {
  context_ptr ctx;
  caf::actor profiler;
  caf::actor trainer;                        ///< retrains the run-time model
  std::map<std::string, job_status> status;  ///< every job
  std::map<std::string, caf::actor> live;    ///< jobs with an actor
  std::vector<std::string> order;            ///< submission order
  std::deque<std::string> waiting; ///< accepted, `submitted`, no actor yet (admission control)
  std::vector<provider_entry> providers;
  static inline const char* name = "intake";
};

using intake_actor = caf::stateful_actor<intake_state>;

error make_error(std::string code, std::string message, std::string type = {},
                 std::string field = {}) {
  return error{std::move(code), std::move(message), std::move(type), std::move(field)};
}

provider_directory directory(const intake_state& st) {
  provider_directory d;
  for (auto& p : st.providers) {
    d.names.push_back(p.name);
    d.actors.push_back(p.handle);
    d.remote.push_back(p.remote);
    d.site.push_back(p.site);
  }
  return d;
}

/// Retrains the run-time model on the node's finished jobs, on a schedule
/// (`[models] retrain_every`) and on demand (model_query{retrain}). Training takes
/// seconds, so this actor runs on its own thread (detached) and never holds up the
/// scheduler's workers.
caf::behavior trainer(caf::event_based_actor* self, context_ptr ctx) {
  auto every = ctx->cfg.models_retrain_every;
  if (every > 0)
    self->delayed_send(self, std::chrono::microseconds(every), retrain_atom::value);
  return {
    [self, ctx, every](retrain_atom) {
      ctx->retrain();
      self->delayed_send(self, std::chrono::microseconds(every), retrain_atom::value);
    },
    [ctx](model_query&) -> body { return ctx->retrain(); },
  };
}

/// Starts waiting jobs, oldest first, while fewer than `[intake] max_active_jobs`
/// jobs have an actor. A waiting job is re-read from the journal when it starts.
void admit(intake_actor* self) {
  auto& st = self->state;
  auto limit = static_cast<std::size_t>(st.ctx->cfg.max_active_jobs);
  while (!st.waiting.empty() && st.live.size() < limit) {
    auto id = std::move(st.waiting.front());
    st.waiting.pop_front();
    auto s = st.status.find(id);
    if (s == st.status.end() || s->second.state != job_state::submitted)
      continue; // cancelled while waiting
    auto rec = st.ctx->journal->load_job(id);
    if (!rec) {
      st.ctx->log->error("job {} could not be read back from the journal to start: {}", id,
                         st.ctx->journal->last_error());
      continue;
    }
    auto job = spawn_job(self->system(), st.ctx, std::move(*rec),
                         caf::actor_cast<caf::actor>(self), st.profiler, false);
    self->monitor(job);
    st.live[id] = job;
  }
}

} // namespace

std::optional<error> validate_spec(const job_spec& s, const std::string& type) {
  if (s.command.empty())
    return make_error("invalid", "job has no command", type, "spec.command");
  if (s.command.front().empty())
    return make_error("invalid", "job command's program is empty", type, "spec.command");
  if (s.max_cost < 0)
    return make_error("invalid", "max_cost must not be negative", type, "spec.max_cost");
  if (s.walltime < 0)
    return make_error("invalid", "walltime must not be negative", type, "spec.walltime");
  if (s.hints.cpu < 0 || s.hints.memory < 0 || s.hints.gpus < 0)
    return make_error("invalid", "hints must not be negative", type, "spec.hints");
  return std::nullopt;
}

caf::actor spawn_intake(caf::actor_system& sys, context_ptr ctx, caf::actor profiler) {
  return sys.spawn([profiler](intake_actor* self, context_ptr ctx) -> caf::behavior {
    self->state.ctx = ctx;
    self->state.profiler = profiler;
    self->state.trainer = self->spawn<caf::linked + caf::detached>(trainer, ctx);
    self->set_down_handler([self](caf::down_msg& dm) {
      auto& ps = self->state.providers;
      for (auto it = ps.begin(); it != ps.end();) {
        if (it->handle.address() == dm.source) {
          self->state.ctx->log->warn("provider {} is gone", it->name);
          it = ps.erase(it);
        } else {
          ++it;
        }
      }
      for (auto it = self->state.live.begin(); it != self->state.live.end();) {
        if (it->second.address() == dm.source)
          it = self->state.live.erase(it);
        else
          ++it;
      }
      admit(self);
    });
    auto start_job = [self](job_record rec, bool resume) {
      auto& st = self->state;
      auto id = rec.job_id;
      if (!st.status.count(id))
        st.order.push_back(id);
      st.status[id] = rec.status;
      if (rec.status.state == job_state::submitted) {
        // Queued behind the jobs already waiting; admission control starts it.
        st.waiting.push_back(id);
        admit(self);
      } else if (!is_final(rec.status.state)) {
        auto job = spawn_job(self->system(), st.ctx, std::move(rec), caf::actor_cast<caf::actor>(self),
                             st.profiler, resume);
        self->monitor(job);
        st.live[id] = job;
      }
    };
    return {
      [self, start_job](job_submit& sub) -> body {
        auto& st = self->state;
        if (auto bad = validate_spec(sub.spec, "job_submit")) // the CLI checked its file too
          return *bad;
        auto now = st.ctx->now();
        auto id = st.ctx->new_id("j");
        std::string existing;
        if (!st.ctx->journal->insert_job(id, sub.client_key, sub.spec, now, &existing)) {
          if (!existing.empty() && st.status.count(existing))
            return st.status[existing]; // idempotent resubmission
          return make_error("journal", "could not record the job; nothing was accepted",
                            "job_submit");
        }
        job_record rec;
        rec.job_id = id;
        rec.client_key = sub.client_key;
        rec.spec = sub.spec;
        rec.status.job_id = id;
        rec.status.name = sub.spec.name;
        rec.status.user = sub.spec.user;
        rec.status.state = job_state::submitted;
        rec.status.submitted_at = now;
        st.ctx->journal->transition(id, job_state::submitted, job_state::submitted, "accepted",
                                    now);
        st.ctx->log->info("job {} ({}) submitted by {}", id, sub.spec.name, sub.spec.user);
        auto reply = rec.status;
        start_job(std::move(rec), false);
        return reply;
      },
      [self](job_query& q) -> body {
        auto& st = self->state;
        auto it = st.status.find(q.job_id);
        if (it == st.status.end())
          return make_error("not_found", "no job " + q.job_id, "job_query", "job_id");
        return it->second;
      },
      [self](explain_query& q) -> body {
        auto& st = self->state;
        // From the journal, not the status board: it holds every score term, and it
        // is the same after a restart.
        auto rec = st.ctx->journal->load_job(q.job_id);
        if (!rec)
          return make_error("not_found", "no job " + q.job_id, "explain_query", "job_id");
        explanation x;
        x.job_id = rec->job_id;
        x.state = rec->status.state;
        x.reason = rec->status.reason;
        x.offers = st.ctx->journal->offer_explanations(q.job_id);
        for (auto& n : st.ctx->journal->negotiations(q.job_id)) {
          x.protocol = n.protocol;
          x.rounds = n.rounds;
          x.declines.insert(x.declines.end(), n.declines.begin(), n.declines.end());
          for (auto& [reason, count] : n.rejected)
            x.rejected[reason] += count;
        }
        if (rec->alloc) {
          x.winner = rec->alloc->provider;
          x.offer_id = rec->alloc->offer_id;
          x.price = rec->alloc->price;
        }
        x.why = explain_outcome(x);
        x.scaling = st.ctx->journal->scaling(q.job_id);
        return x;
      },
      [self](jobs_query& q) -> body {
        auto& st = self->state;
        job_list l;
        for (auto& id : st.order)
          l.jobs.push_back(st.status[id]);
        if (q.limit > 0 && static_cast<std::size_t>(q.limit) < l.jobs.size())
          l.jobs.erase(l.jobs.begin(), l.jobs.end() - q.limit);
        return l;
      },
      [self](job_cancel& c) -> body {
        auto& st = self->state;
        auto it = st.status.find(c.job_id);
        if (it == st.status.end())
          return make_error("not_found", "no job " + c.job_id, "job_cancel", "job_id");
        if (is_final(it->second.state))
          return it->second;
        auto live = st.live.find(c.job_id);
        if (live == st.live.end() && it->second.state == job_state::submitted) {
          // Waiting for admission: no actor to tell; admit() skips it.
          auto reason = c.reason.empty() ? std::string("cancelled by user") : c.reason;
          auto now = st.ctx->now();
          if (!st.ctx->journal->transition(c.job_id, job_state::submitted, job_state::cancelled,
                                           reason, now))
            return make_error("journal", "could not record the cancellation", "job_cancel");
          it->second.state = job_state::cancelled;
          it->second.reason = reason;
          it->second.finished_at = now;
          return it->second;
        }
        if (live != st.live.end())
          self->send(live->second, cancel_atom::value,
                     c.reason.empty() ? std::string("cancelled by user") : c.reason);
        return it->second;
      },
      [self](model_query& q) -> caf::result<body> {
        if (!q.retrain)
          return body{self->state.ctx->model_info()};
        auto rp = self->make_response_promise<body>();
        self->request(self->state.trainer, std::chrono::seconds(900), std::move(q))
          .then([rp](body& b) mutable { rp.deliver(std::move(b)); },
                [self, rp](caf::error& e) mutable {
                  rp.deliver(body{error{"internal", "retraining: " + self->system().render(e),
                                        "model_query", ""}});
                });
        return rp;
      },
      [self](providers_query&) -> caf::result<body> {
        auto& st = self->state;
        auto rp = self->make_response_promise<body>();
        if (st.providers.empty()) {
          rp.deliver(body{provider_list{}});
          return rp;
        }
        auto acc = std::make_shared<provider_list>();
        auto pending = std::make_shared<std::size_t>(st.providers.size());
        for (auto& p : st.providers) {
          auto name = p.name;
          auto remote = p.remote;
          self->request(p.handle, std::chrono::seconds(2), info_atom::value)
            .then(
              [=](provider_info& info) mutable {
                info.remote = remote;
                acc->providers.push_back(std::move(info));
                if (--*pending == 0)
                  rp.deliver(body{*acc});
              },
              [=](caf::error&) mutable {
                provider_info info;
                info.name = name;
                info.remote = remote;
                info.connected = false;
                acc->providers.push_back(std::move(info));
                if (--*pending == 0)
                  rp.deliver(body{*acc});
              });
        }
        return rp;
      },
      [self](update_atom, job_status& s) {
        auto& st = self->state;
        if (!st.status.count(s.job_id))
          st.order.push_back(s.job_id);
        st.status[s.job_id] = std::move(s);
      },
      [self](register_atom, std::string& name, caf::actor& handle, bool remote) {
        auto& ps = self->state.providers;
        if (remote) {
          // A peer site says so in its hello's kind (federation): ask it once.
          self->request(handle, std::chrono::seconds(5), info_atom::value)
            .then(
              [self, handle](provider_info& i) {
                for (auto& p : self->state.providers)
                  if (p.handle == handle)
                    p.site = i.kind == "site";
              },
              [](caf::error&) {});
        }
        for (auto& p : ps)
          if (p.name == name) {
            p.handle = handle;
            p.remote = remote;
            p.site = false;
            self->monitor(handle);
            return;
          }
        self->monitor(handle);
        ps.push_back(provider_entry{name, handle, remote});
      },
      [self](providers_atom) { return directory(self->state); },
      [self, start_job](resume_atom, job_record& rec) { start_job(std::move(rec), true); },
      [self](accepted_jobs& a) {
        auto& st = self->state;
        for (auto& s : a.jobs) {
          auto id = s.job_id;
          if (st.status.count(id))
            continue;
          st.order.push_back(id);
          st.status.emplace(id, std::move(s));
          st.waiting.push_back(std::move(id));
        }
        admit(self);
      },
      [self](stop_atom) { self->quit(); },
    };
  }, ctx);
}

} // namespace tender

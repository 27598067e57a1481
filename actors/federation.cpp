// The peer link: this node as one provider in a peer site's auctions (see
// actors/federation.hpp for the message flow and actors/site_broker.hpp for the
// plain logic).
//
// An I/O thread owns the DEALER connected to the peer's gateway; decoded frames come
// to the link actor as `inbound`, and the actor's envelopes go out through an inproc
// PUSH socket the thread forwards. No CAF worker blocks on ZeroMQ.
//
//   per call for offers:  collecting (own providers, sub-budget) --> answered
//   per award:            awarding (own provider) --> confirmed (a forwarded run) | refused
//   per forwarded run:    confirmed --> launched --> final usage report (forgotten)
//                         any --> released by the peer

#include "actors/federation.hpp"

#include "actors/auction_book.hpp"
#include "actors/site_broker.hpp"
#include "protocol/curve.hpp"
#include "providers/leasing.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace tender {

namespace {

namespace fs = std::filesystem;

using fed_tick_atom = caf::atom_constant<caf::atom("fedtick")>;
using fed_close_atom = caf::atom_constant<caf::atom("fedclose")>;
using fed_fence_atom = caf::atom_constant<caf::atom("fedfence")>;

std::atomic<int> link_counter{0};

/// The DEALER towards the peer, served by its own thread.
class peer_socket {
public:
  explicit peer_socket(context_ptr ctx) : ctx_(std::move(ctx)) {}
  ~peer_socket() { stop(); }

  std::optional<std::string> open(const peer_config& peer) {
    const auto& endpoint = peer.endpoint;
    // CurveZMQ when this node has a key: the peer's public key is `server_key` and this
    // node's public key must be on the peer's allow list. Plaintext only under the
    // listening rule (loopback, with --dev or --insecure).
    const auto* sec = ctx_->security.get();
    bool have_key = sec && sec->keys;
    std::optional<curve::key_pair> server;
    if (have_key && !peer.server_key.empty()) {
      auto k = curve::load_public_key(peer.server_key);
      if (auto* err = std::get_if<std::string>(&k))
        return "server_key: " + *err;
      server = std::get<curve::key_pair>(std::move(k));
    } else if (have_key) {
      return "server_key missing: this node has a [security] key, so its peer links use "
             "CurveZMQ; give the peer's public key ([[peers]] server_key = \"PEER.pub\")";
    } else if (!peer.server_key.empty()) {
      return "server_key is set but this node has no [security] key to connect with";
    } else if (auto mode = curve::listen_rule(endpoint, false, sec && sec->plaintext_ok);
               std::holds_alternative<std::string>(mode)) {
      return "plaintext link refused: " + std::get<std::string>(mode);
    }
    try {
      dealer_ = zmq::socket_t(zctx_, zmq::socket_type::dealer);
      dealer_.set(zmq::sockopt::linger, 0);
      // Queue nothing for a peer that is not connected: a heartbeat or offer sent into
      // the void would reach it stale when it comes back.
      dealer_.set(zmq::sockopt::immediate, 1);
      dealer_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(default_max_frame) * 4);
      if (server)
        curve::secure_client(dealer_, *sec->keys, server->public_key);
      dealer_.connect(endpoint);
      inproc_ = "inproc://tender-peer-out-" + std::to_string(++link_counter);
      pull_ = zmq::socket_t(zctx_, zmq::socket_type::pull);
      pull_.set(zmq::sockopt::linger, 0);
      pull_.bind(inproc_);
    } catch (const zmq::error_t& e) {
      return "cannot connect to " + endpoint + ": " + e.what();
    }
    return std::nullopt;
  }

  void run(caf::actor link) {
    link_ = std::move(link);
    thread_ = std::thread([this] { loop(); });
  }

  void stop() {
    running_ = false;
    if (thread_.joinable())
      thread_.join();
  }

  const std::string& inproc() const { return inproc_; }
  zmq::context_t& zctx() { return zctx_; }

private:
  void loop() {
    zmq::pollitem_t items[] = {{static_cast<void*>(dealer_), 0, ZMQ_POLLIN, 0},
                               {static_cast<void*>(pull_), 0, ZMQ_POLLIN, 0}};
    while (running_) {
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(100));
        if (items[0].revents & ZMQ_POLLIN)
          drain_dealer();
        if (items[1].revents & ZMQ_POLLIN)
          drain_pull();
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM)
          break;
        ctx_->log->error("peer link: {}", e.what());
      }
    }
    dealer_.close();
    pull_.close();
  }

  void drain_dealer() {
    for (int n = 0; n < 1024; ++n) {
      std::vector<zmq::message_t> frames;
      auto got =
          zmq::recv_multipart(dealer_, std::back_inserter(frames), zmq::recv_flags::dontwait);
      if (!got)
        return;
      if (frames.empty())
        continue;
      auto& payload = frames.back();
      auto d = decode(std::string_view(static_cast<const char*>(payload.data()), payload.size()));
      if (!d) {
        ctx_->log->warn("peer link: bad message from the peer: {} ({}{}{})", d.failure.message,
                        d.failure.code, d.failure.field.empty() ? "" : ", field ", d.failure.field);
        continue;
      }
      caf::anon_send(link_, inbound{"", std::move(*d.message)});
    }
  }

  void drain_pull() {
    for (int n = 0; n < 1024; ++n) {
      zmq::message_t m;
      if (!pull_.recv(m, zmq::recv_flags::dontwait))
        return;
      try {
        // Dropped when the peer is not connected (immediate): heartbeats say when.
        (void)dealer_.send(m, zmq::send_flags::dontwait);
      } catch (const zmq::error_t&) {
      }
    }
  }

  context_ptr ctx_;
  zmq::context_t zctx_{1};
  zmq::socket_t dealer_;
  zmq::socket_t pull_;
  std::string inproc_;
  caf::actor link_;
  std::thread thread_;
  std::atomic<bool> running_{true};
};

/// A call for offers from the peer, while this site's providers answer.
struct sub_auction {
  std::string corr;   ///< the call's envelope id (our answer correlates to it)
  std::string caller; ///< the peer site
  resource_request call;
  std::shared_ptr<auction_book> book;
  std::map<std::string, caf::actor> invited;
  std::set<std::string> answered;
  usec opened_at = 0;
  usec reply_by = 0;
};

/// An offer we made to the peer, backed by one of our providers' offers.
struct forwarded_offer {
  std::string caller;
  resource_request call;
  offer inner;
  caf::actor provider;
  usec made_at = 0;
};

/// An award from the peer, passed on to our provider.
struct pending_award {
  std::string outer_offer_id;
  std::string corr;
  std::string caller;
  std::string job_id; ///< the peer's job id
  micros price = 0;   ///< the peer's clearing price (0 = the offer's own)
  caf::actor provider;
};

/// An allocation we granted the peer.
struct forwarded_run {
  forwarded_run_record rec;
  caf::actor provider;
  bool launched = false;
};

struct link_state {
  context_ptr ctx;
  caf::actor intake;
  peer_config peer;
  std::string self_name;
  std::shared_ptr<peer_socket> io;
  std::unique_ptr<zmq::socket_t> push;
  std::string dir; ///< DATA_DIR/federation/<peer>
  bool welcomed = false;
  std::map<std::string, sub_auction> subs;       ///< inner auction id ->
  std::map<std::string, forwarded_offer> offers; ///< our offer id ->
  std::map<std::string, pending_award> awards;   ///< inner offer id ->
  std::map<std::string, forwarded_run> runs;     ///< our allocation id ->
  std::map<std::string, std::string> confirmed;  ///< our offer id -> our allocation id
  static inline const char* name = "peer_link";
};

using link_actor = caf::stateful_actor<link_state>;

void send_peer(link_actor* self, body b, const std::string& corr = {}) {
  auto& st = self->state;
  auto e = make_envelope(std::move(b), st.self_name, st.ctx->now(), st.ctx->new_id("m"), corr);
  auto bytes = encode(e);
  try {
    // Never blocks a CAF worker: after node::stop joined the I/O thread a PUSH
    // without its peer would wait forever (and the node would never exit).
    if (!st.push->send(zmq::buffer(bytes), zmq::send_flags::dontwait))
      st.ctx->log->warn("peer link {}: message dropped: the link is stopping or 100,000 "
                        "messages are queued",
                        st.peer.name);
  } catch (const zmq::error_t& err) {
    st.ctx->log->error("peer link {}: cannot send: {}", st.peer.name, err.what());
  }
}

void hello(link_actor* self) {
  auto& st = self->state;
  provider_hello h;
  h.name = st.self_name;
  h.kind = "site";
  h.protocols = {protocols::iterated, protocols::vickrey};
  h.heartbeat = st.ctx->cfg.federation.heartbeat;
  send_peer(self, h);
}

std::string run_file(const link_state& st, const std::string& allocation_id) {
  return st.dir + "/" + allocation_id + ".run";
}

/// Written before the peer hears of the allocation: a crash after this point leaves
/// a record the next start fences.
bool save_run(const link_state& st, const forwarded_run_record& r) {
  auto path = run_file(st, r.outer.allocation_id);
  auto tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    auto bytes = encode_record(r);
    if (!f || !f.write(bytes.data(), static_cast<std::streamsize>(bytes.size())) || !f.flush())
      return false;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  return !ec;
}

void forget_run(link_actor* self, const std::string& allocation_id) {
  auto& st = self->state;
  std::error_code ec;
  fs::remove(run_file(st, allocation_id), ec);
  if (auto it = st.runs.find(allocation_id); it != st.runs.end()) {
    st.confirmed.erase(it->second.rec.outer.offer_id);
    st.runs.erase(it);
  }
}

forwarded_run* run_of_inner_job(link_state& st, const std::string& inner_job) {
  for (auto& [id, r] : st.runs)
    if (r.rec.inner.job_id == inner_job)
      return &r;
  return nullptr;
}

// --- calls for offers ---------------------------------------------------------------

void conclude(link_actor* self, const std::string& inner_auction) {
  auto& st = self->state;
  auto it = st.subs.find(inner_auction);
  if (it == st.subs.end())
    return;
  sub_auction sub = std::move(it->second);
  st.subs.erase(it);
  auto now = st.ctx->now();
  auto ctx = st.ctx;
  auto& book = *sub.book;
  auto rk = book.rank(
      offer_scorer{ctx->cfg.scoring},
      [ctx](const std::string& p) { return ctx->breach_probability(p); }, now);
  if (rk.feasible.empty()) {
    std::string why;
    for (auto* e : rk.infeasible)
      why += (why.empty() ? "" : "; ") + e->o.provider + ": " + e->score.why;
    for (auto& [p, reason] : book.declines())
      why += (why.empty() ? "" : "; ") + p + " declined: " + reason;
    if (why.empty())
      why = "none of its providers answered in time";
    send_peer(self,
              decline{sub.call.job_id, sub.call.auction_id, "", st.self_name,
                      "no acceptable offer at " + st.self_name + ": " + why},
              sub.corr);
    return;
  }
  const auto* best = rk.feasible.front();
  auto outer =
      outward_offer(best->o, sub.call, st.self_name, st.ctx->new_id("fo"), now - sub.opened_at);
  forwarded_offer f;
  f.caller = sub.caller;
  f.call = sub.call;
  f.inner = best->o;
  f.provider = sub.invited[best->o.provider];
  f.made_at = now;
  st.offers[outer.offer_id] = f;
  // Our other providers lost this call; nothing is held for an offer.
  for (auto* e : rk.feasible)
    if (e != best)
      if (auto p = sub.invited[e->o.provider])
        self->send(p, decline{e->o.job_id, e->o.auction_id, e->o.offer_id, e->o.provider,
                              "another offer was chosen"});
  st.ctx->log->debug("peer link {}: call {} round {}: offered {} from {} at ${}", st.peer.name,
                     sub.call.auction_id, sub.call.round, outer.offer_id, best->o.provider,
                     format_usd(outer.price));
  send_peer(self, outer, sub.corr);
}

void on_call(link_actor* self, const envelope& e, const resource_request& call) {
  auto& st = self->state;
  const auto caller = e.sender;
  if (auto why = refuse_call(call, caller, st.self_name, st.ctx->cfg.federation.hop_limit)) {
    st.ctx->log->info("peer link {}: declined call {} for job {}: {}", st.peer.name,
                      call.auction_id, call.job_id, *why);
    send_peer(self, decline{call.job_id, call.auction_id, "", st.self_name, *why}, e.id);
    return;
  }
  auto corr = e.id;
  self->request(st.intake, std::chrono::seconds(5), providers_atom::value)
      .then(
          [self, corr, caller, call](provider_directory& d) {
            auto& st = self->state;
            auto now = st.ctx->now();
            auto path = arrived_path(call, caller);
            auto who = invitees(d.names, path, st.self_name);
            if (who.empty()) {
              send_peer(self,
                        decline{call.job_id, call.auction_id, "", st.self_name,
                                st.self_name + " has no provider to ask"},
                        corr);
              return;
            }
            auto budget = sub_budget(call.reply_by, now, st.ctx->cfg.auction.round_timeout);
            auto inner =
                onward_call(call, caller, st.self_name, st.ctx->new_id("fa"), now + budget);
            sub_auction sub;
            sub.corr = corr;
            sub.caller = caller;
            sub.call = call;
            sub.opened_at = now;
            sub.reply_by = inner.reply_by;
            std::set<std::string> names;
            for (auto i : who) {
              names.insert(d.names[i]);
              sub.invited[d.names[i]] = d.actors[i];
            }
            sub.book = std::make_shared<auction_book>(inner, names);
            auto id = inner.auction_id;
            for (auto& [n, a] : sub.invited)
              self->send(a, inner);
            st.subs.emplace(id, std::move(sub));
            self->delayed_send(self, std::chrono::microseconds(budget), fed_close_atom::value, id);
          },
          [self, corr, call](caf::error& err) {
            auto& st = self->state;
            send_peer(self,
                      decline{call.job_id, call.auction_id, "", st.self_name,
                              "provider directory: " + self->system().render(err)},
                      corr);
          });
}

// --- two-phase commit -------------------------------------------------------------

void on_award(link_actor* self, const envelope& e, const award& a) {
  auto& st = self->state;
  if (auto c = st.confirmed.find(a.offer_id); c != st.confirmed.end()) {
    // The same award again: the same allocation (hold is idempotent by offer id).
    auto& r = st.runs.at(c->second);
    send_peer(self, commit_confirm{a.offer_id, a.job_id, r.rec.outer}, e.id);
    return;
  }
  auto it = st.offers.find(a.offer_id);
  if (it == st.offers.end()) {
    for (auto& [inner_id, p] : st.awards)
      if (p.outer_offer_id == a.offer_id)
        return; // already passed on; its confirm answers both
    send_peer(
        self,
        commit_refuse{a.offer_id, a.job_id, st.self_name, "unknown or expired offer " + a.offer_id},
        e.id);
    return;
  }
  auto f = it->second;
  st.offers.erase(it);
  pending_award p;
  p.outer_offer_id = a.offer_id;
  p.corr = e.id;
  p.caller = e.sender;
  p.job_id = a.job_id;
  p.price = a.price;
  p.provider = f.provider;
  st.awards[f.inner.offer_id] = p;
  award inner;
  inner.offer_id = f.inner.offer_id;
  inner.job_id = f.inner.job_id;
  inner.auction_id = f.inner.auction_id;
  inner.provider = f.inner.provider;
  inner.hold_ttl = a.hold_ttl;
  self->send(f.provider, inner);
}

void on_inner_confirm(link_actor* self, const commit_confirm& c) {
  auto& st = self->state;
  auto it = st.awards.find(c.offer_id);
  if (it == st.awards.end()) {
    // Not (or no longer) ours to take: give it back.
    if (auto p = caf::actor_cast<caf::actor>(self->current_sender()))
      self->send(p, release{c.alloc.allocation_id, c.offer_id, c.job_id, "not awarded (anymore)"});
    return;
  }
  auto p = it->second;
  st.awards.erase(it);
  forwarded_run r;
  r.rec.caller = p.caller;
  r.rec.inner = c.alloc;
  r.rec.outer = outward_allocation(c.alloc, p.job_id, p.outer_offer_id, st.self_name,
                                   st.ctx->new_id("fal"), random_token(), p.price);
  r.provider = p.provider;
  if (!save_run(st, r.rec)) {
    st.ctx->log->error("peer link {}: cannot record allocation {} in {}: refused", st.peer.name,
                       r.rec.outer.allocation_id, st.dir);
    self->send(p.provider, release{c.alloc.allocation_id, c.offer_id, c.job_id,
                                   "the site could not record it"});
    send_peer(self,
              commit_refuse{p.outer_offer_id, p.job_id, st.self_name,
                            "the site could not record the allocation"},
              p.corr);
    return;
  }
  auto outer = r.rec.outer;
  st.confirmed[p.outer_offer_id] = outer.allocation_id;
  st.runs[outer.allocation_id] = std::move(r);
  st.ctx->log->info("peer link {}: job {} committed on {} as {} for {}", st.peer.name, p.job_id,
                    c.alloc.provider, outer.allocation_id, p.caller);
  send_peer(self, commit_confirm{p.outer_offer_id, p.job_id, outer}, p.corr);
}

void on_inner_refuse(link_actor* self, const commit_refuse& c) {
  auto& st = self->state;
  auto it = st.awards.find(c.offer_id);
  if (it == st.awards.end())
    return;
  auto p = it->second;
  st.awards.erase(it);
  send_peer(self,
            commit_refuse{p.outer_offer_id, p.job_id, st.self_name,
                          st.self_name + "'s provider " + c.provider + " refused: " + c.reason},
            p.corr);
}

// --- running ------------------------------------------------------------------------

void on_launch(link_actor* self, const envelope& e, const launch& l) {
  auto& st = self->state;
  auto refuse = [&](const std::string& why) {
    send_peer(self, error{"lease", why, "launch", "job:" + l.job_id}, e.id);
  };
  auto it = st.runs.find(l.allocation_id);
  if (it == st.runs.end())
    return refuse("no allocation " + l.allocation_id + " at site " + st.self_name);
  auto& r = it->second;
  if (!same_token(r.rec.outer.lease_token, l.lease_token)) // constant time
    return refuse("the lease token does not match allocation " + l.allocation_id);
  if (l.job_id != r.rec.outer.job_id)
    return refuse("allocation " + l.allocation_id + " is not for job " + l.job_id);
  if (r.launched)
    return; // the same launch again
  r.launched = true;
  launch inner = l;
  inner.job_id = r.rec.inner.job_id;
  inner.allocation_id = r.rec.inner.allocation_id;
  inner.lease_token = r.rec.inner.lease_token;
  self->send(r.provider, inner);
}

void on_release(link_actor* self, const release& rel) {
  auto& st = self->state;
  const bool stop = rel.reason.rfind("stop: ", 0) == 0 && rel.allocation_id.empty();
  for (auto& [id, r] : st.runs) {
    bool match = (!rel.allocation_id.empty() && rel.allocation_id == id) ||
                 (rel.allocation_id.empty() && !rel.offer_id.empty() &&
                  rel.offer_id == r.rec.outer.offer_id) ||
                 (stop && rel.job_id == r.rec.outer.job_id);
    if (!match)
      continue;
    if (stop) {
      self->send(r.provider, stop_atom::value, r.rec.inner.job_id, rel.reason.substr(6));
      return;
    }
    self->send(r.provider, release{r.rec.inner.allocation_id, r.rec.inner.offer_id,
                                   r.rec.inner.job_id, rel.reason});
    // A run ends with its final report; a hold or unlaunched allocation ends here.
    if (!r.launched)
      forget_run(self, id);
    return;
  }
  // A hold the peer gave up on before our confirm arrived.
  for (auto it = st.awards.begin(); it != st.awards.end(); ++it)
    if (it->second.outer_offer_id == rel.offer_id) {
      self->send(it->second.provider, release{"", it->first, "", rel.reason});
      st.awards.erase(it);
      return;
    }
}

void on_usage(link_actor* self, usage_report& u) {
  auto& st = self->state;
  auto* r = run_of_inner_job(st, u.job_id);
  if (!r)
    return; // a fenced run's last report
  auto outer = r->rec.outer;
  bool fin = u.final;
  send_peer(self, outward_usage(std::move(u), outer, st.self_name));
  if (fin)
    forget_run(self, outer.allocation_id);
}

void on_inner_error(link_actor* self, error& err) {
  auto& st = self->state;
  // A launch refusal names the job in `field` ("job:<id>"), from an in-process
  // provider actor and from a provider process alike.
  for (auto& [id, r] : st.runs) {
    if (err.field != "job:" + r.rec.inner.job_id)
      continue;
    err.field = "job:" + r.rec.outer.job_id;
    send_peer(self, err);
    forget_run(self, id);
    return;
  }
  st.ctx->log->warn("peer link {}: provider error: {}", st.peer.name, err.message);
}

void on_scale(link_actor* self, const envelope& e, const scale_request& s) {
  auto& st = self->state;
  auto it = st.runs.find(s.allocation_id);
  if (it == st.runs.end()) {
    scale_offer no;
    no.job_id = s.job_id;
    no.allocation_id = s.allocation_id;
    no.provider = st.self_name;
    no.reason = "no allocation " + s.allocation_id + " at site " + st.self_name;
    send_peer(self, no, e.id);
    return;
  }
  auto outer = it->second.rec.outer;
  scale_request inner = s;
  inner.job_id = it->second.rec.inner.job_id;
  inner.allocation_id = it->second.rec.inner.allocation_id;
  auto corr = e.id;
  self->request(it->second.provider, std::chrono::seconds(30), inner)
      .then(
          [self, outer, corr](scale_offer& o) {
            o.job_id = outer.job_id;
            o.allocation_id = outer.allocation_id;
            o.provider = self->state.self_name;
            send_peer(self, o, corr);
          },
          [self, outer, corr](caf::error& err) {
            scale_offer no;
            no.job_id = outer.job_id;
            no.allocation_id = outer.allocation_id;
            no.provider = self->state.self_name;
            no.reason = "no answer: " + self->system().render(err);
            send_peer(self, no, corr);
          });
}

// --- after a crash --------------------------------------------------------------------

/// Stops and releases every run recorded before a crash. The peer has declared this
/// site gone and placed those jobs again (or will, when its heartbeat check fires), so
/// resuming them here could run a job twice.
void fence(link_actor* self, int attempt) {
  auto& st = self->state;
  std::vector<forwarded_run_record> recs;
  std::error_code ec;
  for (auto it = fs::directory_iterator(st.dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (it->path().extension() != ".run")
      continue;
    std::ifstream f(it->path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::string why;
    if (auto r = decode_record(bytes, &why)) {
      if (!st.runs.count(r->outer.allocation_id))
        recs.push_back(std::move(*r));
    } else {
      st.ctx->log->error("peer link {}: {}: {}; left alone", st.peer.name, it->path().string(),
                         why);
    }
  }
  if (recs.empty())
    return;
  self->request(st.intake, std::chrono::seconds(5), providers_atom::value)
      .then(
          [self, recs, attempt](provider_directory& d) {
            auto& st = self->state;
            bool missing = false;
            for (auto& r : recs) {
              caf::actor p;
              for (std::size_t i = 0; i < d.names.size(); ++i)
                if (d.names[i] == r.inner.provider)
                  p = d.actors[i];
              if (!p) {
                missing = true;
                continue;
              }
              const std::string why = "site " + st.self_name + " restarted: " + r.caller +
                                      " has placed job " + r.outer.job_id + " again";
              st.ctx->log->warn("peer link {}: stopping {} on {} ({})", st.peer.name,
                                r.inner.job_id, r.inner.provider, why);
              self->send(p, adopt_atom::value, r.inner);
              self->send(p, stop_atom::value, r.inner.job_id, why);
              self->send(p, release{r.inner.allocation_id, r.inner.offer_id, r.inner.job_id, why});
              std::error_code ec;
              fs::remove(run_file(st, r.outer.allocation_id), ec);
            }
            // A remote provider may take a moment to introduce itself again.
            if (missing && attempt < 30)
              self->delayed_send(self, std::chrono::seconds(1), fed_fence_atom::value, attempt + 1);
            else if (missing)
              st.ctx->log->error("peer link {}: some runs recorded before the restart could not be "
                                 "stopped: their provider did not come back",
                                 st.peer.name);
          },
          [](caf::error&) {});
}

void tick(link_actor* self) {
  auto& st = self->state;
  hello(self);
  // Offers the peer never awarded are forgotten once they are no longer valid.
  auto now = st.ctx->now();
  for (auto it = st.offers.begin(); it != st.offers.end();) {
    auto until = it->second.inner.valid_until > 0 ? it->second.inner.valid_until
                                                  : it->second.made_at + 600 * sec_us;
    it = until < now ? st.offers.erase(it) : std::next(it);
  }
  self->delayed_send(self, std::chrono::microseconds(st.ctx->cfg.federation.heartbeat),
                     fed_tick_atom::value);
}

} // namespace

std::variant<peer_link_handle, std::string> start_peer_link(caf::actor_system& sys, context_ptr ctx,
                                                            caf::actor intake,
                                                            const peer_config& peer) {
  auto io = std::make_shared<peer_socket>(ctx);
  if (auto err = io->open(peer))
    return "peer " + peer.name + ": " + *err;
  auto dir = ctx->data_dir + "/federation/" + peer.name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return "peer " + peer.name + ": cannot create " + dir + ": " + ec.message();
  auto actor = sys.spawn(
      [intake, io, peer, dir](link_actor* self, context_ptr ctx) -> caf::behavior {
        auto& st = self->state;
        st.ctx = ctx;
        st.intake = intake;
        st.peer = peer;
        st.self_name = ctx->cfg.node_name;
        st.io = io;
        st.dir = dir;
        st.push = std::make_unique<zmq::socket_t>(io->zctx(), zmq::socket_type::push);
        st.push->set(zmq::sockopt::linger, 0);
        st.push->set(zmq::sockopt::sndhwm, 100000);
        st.push->connect(io->inproc());
        self->set_exception_handler(
            [self](caf::scheduled_actor*, std::exception_ptr& ep) -> caf::error {
              try {
                std::rethrow_exception(ep);
              } catch (const std::exception& e) {
                self->state.ctx->log->error("peer link {}: {}", self->state.peer.name, e.what());
              }
              return caf::none;
            });
        self->send(self, fed_tick_atom::value);
        self->send(self, fed_fence_atom::value, 1);
        return {
            [self](fed_tick_atom) { tick(self); },
            [self](fed_fence_atom, int attempt) { fence(self, attempt); },
            [self](fed_close_atom, std::string& id) { conclude(self, id); },
            // from the peer
            [self](inbound& in) {
              auto& st = self->state;
              const auto& e = in.msg;
              std::visit(
                  [&](const auto& b) {
                    using T = std::decay_t<decltype(b)>;
                    if constexpr (std::is_same_v<T, welcome>) {
                      if (!st.welcomed)
                        st.ctx->log->info("peer link: joined {} at {} as provider {}", b.node,
                                          st.peer.endpoint, b.provider);
                      st.welcomed = true;
                    } else if constexpr (std::is_same_v<T, resource_request>) {
                      on_call(self, e, b);
                    } else if constexpr (std::is_same_v<T, award>) {
                      on_award(self, e, b);
                    } else if constexpr (std::is_same_v<T, decline>) {
                      // We lost the peer's auction: tell the provider behind the offer.
                      auto it = st.offers.find(b.offer_id);
                      if (it != st.offers.end()) {
                        auto& f = it->second;
                        self->send(f.provider,
                                   decline{f.inner.job_id, f.inner.auction_id, f.inner.offer_id,
                                           f.inner.provider, b.reason});
                        st.offers.erase(it);
                      }
                    } else if constexpr (std::is_same_v<T, release>) {
                      on_release(self, b);
                    } else if constexpr (std::is_same_v<T, launch>) {
                      on_launch(self, e, b);
                    } else if constexpr (std::is_same_v<T, scale_request>) {
                      on_scale(self, e, b);
                    } else if constexpr (std::is_same_v<T, error>) {
                      if (b.code == "unknown_peer") {
                        // The peer restarted (or declared us gone): introduce ourselves again.
                        st.welcomed = false;
                        hello(self);
                      } else {
                        st.ctx->log->warn("peer link {}: peer says {}: {}", st.peer.name, b.code,
                                          b.message);
                      }
                    } else {
                      send_peer(self,
                                error{"unexpected",
                                      std::string("a site does not accept ") +
                                          message_name<T>::value + " messages",
                                      message_name<T>::value, ""},
                                e.id);
                    }
                  },
                  e.body);
            },
            // from this site's providers
            [self](offer& o) {
              auto& st = self->state;
              auto it = st.subs.find(o.auction_id);
              if (it == st.subs.end())
                return; // the call was answered already
              auto& sub = it->second;
              if (auto why = sub.book->add(o, st.ctx->now(), sub.reply_by)) {
                st.ctx->log->warn("peer link {}: offer {} from {} rejected: {}", st.peer.name,
                                  o.offer_id, o.provider, *why);
                return;
              }
              sub.answered.insert(o.provider);
              if (sub.answered.size() >= sub.invited.size())
                conclude(self, o.auction_id);
            },
            [self](decline& d) {
              auto& st = self->state;
              auto it = st.subs.find(d.auction_id);
              if (it == st.subs.end())
                return;
              it->second.book->add_decline(d, 1);
              it->second.answered.insert(d.provider);
              if (it->second.answered.size() >= it->second.invited.size())
                conclude(self, d.auction_id);
            },
            [self](commit_confirm& c) { on_inner_confirm(self, c); },
            [self](commit_refuse& c) { on_inner_refuse(self, c); },
            [self](usage_report& u) { on_usage(self, u); },
            [self](error& e) { on_inner_error(self, e); },
            [self](stop_atom) { self->quit(); },
        };
      },
      ctx);
  io->run(actor);
  ctx->log->info("peer link: offering {}'s providers to {} at {}", ctx->cfg.node_name, peer.name,
                 peer.endpoint);
  peer_link_handle h;
  h.actor = actor;
  h.stop_io = [io] { io->stop(); };
  h.keep = io;
  return h;
}

} // namespace tender

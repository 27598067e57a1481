// The console actor: turns the HTTP server's requests into requests to the node's
// actors and journal reads, and their answers into JSON (or Prometheus text).

#include "actors/console.hpp"

#include "actors/actors.hpp"
#include "actors/console_http.hpp"
#include "protocol/json.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <mutex>
#include <sstream>

namespace tender {

namespace {

using json = nlohmann::json;
using console::http_request;
using console::http_response;
using console::responder;

/// One HTTP request on its way through the console actor.
struct console_call {
  http_request req;
  responder respond;
};

} // namespace
} // namespace tender

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::console_call)

namespace tender {

namespace {

constexpr auto ask_timeout = std::chrono::seconds(5);

/// The server, for `/metrics`' request counts; null once stopped.
struct server_ref {
  std::mutex mu;
  console::http_server* srv = nullptr;
};

struct console_state {
  std::shared_ptr<node_context> ctx;
  caf::actor intake;
  std::shared_ptr<server_ref> server;
  bool weights_changed = false;
  static inline const char* name = "console";
};

using console_actor = caf::stateful_actor<console_state>;

http_response json_response(int status, const json& j) {
  return http_response{status, "application/json", j.dump(), {}};
}

http_response fail(int status, const std::string& code, const std::string& message,
                   const std::string& field = {}) {
  json e{{"code", code}, {"message", message}};
  if (!field.empty())
    e["field"] = field;
  return json_response(status, json{{"error", e}});
}

/// An error from the node's actors, as HTTP.
http_response from_error(const error& e) {
  int status = e.code == "not_found" ? 404 : e.code == "invalid" ? 400 : 500;
  json j{{"code", e.code}, {"message", e.message}};
  if (!e.field.empty())
    j["field"] = e.field;
  return json_response(status, json{{"error", j}});
}

/// A failed CAF request: the node was too slow (504) or the actor is gone (503).
http_response from_caf(console_actor* self, const caf::error& e, const std::string& what) {
  if (e == caf::sec::request_timeout)
    return fail(504, "timeout",
                what + " did not answer within " + std::to_string(ask_timeout.count()) + " s");
  return fail(503, "unavailable", what + " is not available: " + self->system().render(e));
}

/// `?name=N` as a count in [lo, hi]; `dflt` when absent.
std::optional<std::int64_t> count_param(const http_request& r, const std::string& name,
                                        std::int64_t dflt, std::int64_t lo, std::int64_t hi,
                                        http_response& bad) {
  auto it = r.query.find(name);
  if (it == r.query.end())
    return dflt;
  std::int64_t v = 0;
  auto& s = it->second;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
    bad = fail(400, "invalid",
               name + " must be a whole number from " + std::to_string(lo) + " to " +
                   std::to_string(hi) + ", got '" + s + "'",
               name);
    return std::nullopt;
  }
  return v;
}

json weights_json(const scoring_config& w) {
  return {{"w_cost", w.w_cost},
          {"w_deadline", w.w_deadline},
          {"w_risk", w.w_risk},
          {"deadline_target", w.deadline_target}};
}

/// Applies a JSON object of weights to `w`; an error names the field.
std::optional<http_response> apply_weights(const std::string& body, scoring_config& w) {
  json j;
  try {
    j = json::parse(body);
  } catch (const std::exception& e) {
    return fail(400, "invalid", std::string("the body is not JSON: ") + e.what(), "body");
  }
  if (!j.is_object() || j.empty())
    return fail(400, "invalid",
                "expected a JSON object with some of w_cost, w_deadline, w_risk, deadline_target",
                "body");
  for (auto& [key, v] : j.items()) {
    double* slot = key == "w_cost"            ? &w.w_cost
                   : key == "w_deadline"      ? &w.w_deadline
                   : key == "w_risk"          ? &w.w_risk
                   : key == "deadline_target" ? &w.deadline_target
                                              : nullptr;
    if (!slot)
      return fail(400, "invalid",
                  "unknown weight (expected w_cost, w_deadline, w_risk or deadline_target)", key);
    if (!v.is_number())
      return fail(400, "invalid", "expected a number, got " + std::string(v.type_name()), key);
    double x = v.get<double>();
    double hi = key == "deadline_target" ? 1.0 : 1e9;
    if (!std::isfinite(x) || x < 0 || x > hi)
      return fail(400, "invalid",
                  "must be from 0 to " + std::string(hi == 1.0 ? "1" : "1e9") + ", got " + v.dump(),
                  key);
    *slot = x;
  }
  return std::nullopt;
}

/// A job without its bulky parts, for the jobs table.
json job_row(const job_status& s) {
  auto j = to_json_value(s);
  j.erase("offers");
  j.erase("profile");
  j["offers_count"] = s.offers.size();
  return j;
}

json usage_json(const job_status& s, const std::vector<usage_sample>& all, std::size_t points) {
  json band = nullptr;
  if (s.has_profile) {
    auto& p = s.profile;
    band = {{"cpu_lo", p.cpu_lo},
            {"cpu_hi", p.cpu_hi},
            {"cpu_mean", p.cpu_mean},
            {"mem_lo_bytes", p.mem_lo},
            {"mem_hi_bytes", p.mem_hi},
            {"mem_mean_bytes", p.mem_mean},
            {"runtime_s", static_cast<double>(p.runtime) / 1e6},
            {"runtime_hi_s", static_cast<double>(p.runtime_hi) / 1e6}};
  }
  usec t0 = s.started_at > 0 ? s.started_at : (all.empty() ? 0 : all.front().at);
  // Buckets of equal sample counts: mean CPU, peak memory, the bucket's last instant.
  json samples = json::array();
  std::size_t n = all.size();
  std::size_t per = n > points ? (n + points - 1) / points : 1;
  for (std::size_t i = 0; i < n; i += per) {
    double cpu = 0;
    bytes_t rss = 0;
    std::size_t k = 0;
    usec at = 0;
    for (; k < per && i + k < n; ++k) {
      cpu += static_cast<double>(all[i + k].cpu) / 1000.0;
      rss = std::max(rss, all[i + k].rss);
      at = all[i + k].at;
    }
    samples.push_back({{"t_s", static_cast<double>(at - t0) / 1e6},
                       {"at", time_json(at)},
                       {"cpu", cpu / static_cast<double>(k)},
                       {"rss_bytes", rss}});
  }
  return {{"job_id", s.job_id},
          {"state", to_string(s.state)},
          {"started_at", time_json(s.started_at)},
          {"allocated", to_json_value(s.allocated)},
          {"band", band},
          {"total_samples", n},
          {"samples", samples}};
}

std::string prom_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string prom_number(double v) {
  if (std::isnan(v))
    return "NaN";
  std::ostringstream os;
  os.precision(12);
  os << v;
  return os.str();
}

/// The metrics page from what the node answered.
std::string metrics_text(const job_list& jobs, const provider_list& providers,
                         const journal::totals_view& t, const scoring_config& w,
                         const std::map<int, std::int64_t>& answered) {
  std::ostringstream o;
  auto head = [&](const char* name, const char* type, const char* help) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  std::map<std::string, std::int64_t> by_state;
  for (int s = 0; s <= static_cast<int>(job_state::cancelled); ++s)
    by_state[to_string(static_cast<job_state>(s))] = 0;
  for (auto& j : jobs.jobs)
    by_state[to_string(j.state)]++;
  head("tender_jobs", "gauge", "Jobs the node knows, by state.");
  for (auto& [s, n] : by_state)
    o << "tender_jobs{state=\"" << s << "\"} " << n << '\n';
  head("tender_negotiations_total", "counter", "Auctions run (journaled negotiations).");
  o << "tender_negotiations_total " << t.negotiations << '\n';
  head("tender_offers_total", "counter", "Offers received, by verdict.");
  for (auto& [v, n] : t.offers_by_verdict)
    o << "tender_offers_total{verdict=\"" << prom_escape(v) << "\"} " << n << '\n';
  head("tender_sla_events_total", "counter", "Provider SLA events, breaches and kept promises.");
  o << "tender_sla_events_total{breach=\"true\"} " << t.sla_breaches << '\n';
  o << "tender_sla_events_total{breach=\"false\"} " << t.sla_kept << '\n';
  head("tender_scaling_decisions_total", "counter", "Scaling decisions, by outcome.");
  for (auto& [v, n] : t.scaling_by_outcome)
    o << "tender_scaling_decisions_total{outcome=\"" << prom_escape(v) << "\"} " << n << '\n';
  head("tender_provider_breach_probability", "gauge",
       "Posterior probability that the provider breaks its next promise.");
  for (auto& p : providers.providers)
    o << "tender_provider_breach_probability{provider=\"" << prom_escape(p.name) << "\"} "
      << prom_number(p.risk) << '\n';
  head("tender_provider_drained", "gauge", "1 when an operator drained the provider.");
  for (auto& p : providers.providers)
    o << "tender_provider_drained{provider=\"" << prom_escape(p.name) << "\"} "
      << (p.drained ? 1 : 0) << '\n';
  head("tender_provider_connected", "gauge", "1 when the provider answers.");
  for (auto& p : providers.providers)
    o << "tender_provider_connected{provider=\"" << prom_escape(p.name) << "\"} "
      << (p.connected ? 1 : 0) << '\n';
  head("tender_provider_offers_total", "counter", "Offers the provider made.");
  for (auto& p : providers.providers)
    o << "tender_provider_offers_total{provider=\"" << prom_escape(p.name) << "\"} " << p.offers
      << '\n';
  head("tender_provider_wins_total", "counter", "Auctions the provider won.");
  for (auto& p : providers.providers)
    o << "tender_provider_wins_total{provider=\"" << prom_escape(p.name) << "\"} " << p.wins
      << '\n';
  head("tender_provider_free_cpu_cores", "gauge", "Free CPU cores the provider reports.");
  for (auto& p : providers.providers)
    o << "tender_provider_free_cpu_cores{provider=\"" << prom_escape(p.name) << "\"} "
      << prom_number(static_cast<double>(p.free.cpu) / 1000.0) << '\n';
  head("tender_scoring_weight", "gauge", "Offer-scoring weights in use.");
  o << "tender_scoring_weight{weight=\"w_cost\"} " << prom_number(w.w_cost) << '\n';
  o << "tender_scoring_weight{weight=\"w_deadline\"} " << prom_number(w.w_deadline) << '\n';
  o << "tender_scoring_weight{weight=\"w_risk\"} " << prom_number(w.w_risk) << '\n';
  o << "tender_scoring_weight{weight=\"deadline_target\"} " << prom_number(w.deadline_target)
    << '\n';
  head("tender_console_requests_total", "counter",
       "Console HTTP requests answered, by status code (before this one).");
  for (auto& [code, n] : answered)
    o << "tender_console_requests_total{code=\"" << code << "\"} " << n << '\n';
  return o.str();
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < path.size()) {
    auto slash = path.find('/', at);
    if (slash == std::string::npos)
      slash = path.size();
    if (slash > at)
      out.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  return out;
}

void get_jobs(console_actor* self, http_request& r, responder& respond) {
  http_response bad;
  auto limit = count_param(r, "limit", 500, 1, 100000, bad);
  if (!limit)
    return respond(std::move(bad));
  self->request(self->state.intake, ask_timeout, jobs_query{0})
      .then(
          [respond, limit](body& b) {
            auto* l = std::get_if<job_list>(&b);
            if (!l)
              return respond(
                  fail(500, "internal", std::string("the intake answered ") + type_name(b)));
            json counts = json::object();
            for (int s = 0; s <= static_cast<int>(job_state::cancelled); ++s)
              counts[to_string(static_cast<job_state>(s))] = 0;
            for (auto& j : l->jobs)
              counts[to_string(j.state)] = counts[to_string(j.state)].get<std::int64_t>() + 1;
            json rows = json::array();
            std::int64_t n = 0;
            for (auto it = l->jobs.rbegin(); it != l->jobs.rend() && n < *limit; ++it, ++n)
              rows.push_back(job_row(*it));
            respond(json_response(
                200, json{{"jobs", rows}, {"total", l->jobs.size()}, {"counts", counts}}));
          },
          [self, respond](caf::error& e) { respond(from_caf(self, e, "the intake")); });
}

/// Asks the intake for job `id` and calls `then(status)`; an error, an unknown job or an
/// unexpected answer is answered here.
template <class F>
void with_job(console_actor* self, const std::string& id, const responder& respond, F then) {
  self->request(self->state.intake, ask_timeout, job_query{id})
      .then(
          [respond, then](body& b) {
            if (auto* e = std::get_if<error>(&b))
              return respond(from_error(*e));
            auto* s = std::get_if<job_status>(&b);
            if (!s)
              return respond(
                  fail(500, "internal", std::string("the intake answered ") + type_name(b)));
            then(*s);
          },
          [self, respond](caf::error& e) { respond(from_caf(self, e, "the intake")); });
}

void get_job(console_actor* self, const std::string& id, responder& respond) {
  with_job(self, id, respond, [self, id, respond](const job_status& s) {
    json job = to_json_value(s);
    self->request(self->state.intake, ask_timeout, explain_query{id})
        .then(
            [respond, job](body& x) {
              json out{{"job", job}, {"explanation", nullptr}};
              if (auto* ex = std::get_if<explanation>(&x))
                out["explanation"] = to_json_value(*ex);
              respond(json_response(200, out));
            },
            [self, respond](caf::error& e) { respond(from_caf(self, e, "the intake")); });
  });
}

void get_usage(console_actor* self, http_request& r, const std::string& id, responder& respond) {
  http_response bad;
  auto points = count_param(r, "points", 400, 2, 20000, bad);
  if (!points)
    return respond(std::move(bad));
  with_job(self, id, respond, [self, id, respond, points](const job_status& s) {
    auto samples = self->state.ctx->journal->usage(id);
    respond(json_response(200, usage_json(s, samples, static_cast<std::size_t>(*points))));
  });
}

void cancel_job(console_actor* self, http_request& r, const std::string& id, responder& respond) {
  std::string reason = "cancelled from the console";
  if (!r.body.empty()) {
    try {
      auto j = json::parse(r.body);
      if (!j.is_object())
        return respond(fail(400, "invalid", "expected a JSON object", "body"));
      if (j.contains("reason")) {
        if (!j["reason"].is_string())
          return respond(fail(400, "invalid", "expected a string", "reason"));
        reason = j["reason"].get<std::string>();
      }
    } catch (const std::exception& e) {
      return respond(
          fail(400, "invalid", std::string("the body is not JSON: ") + e.what(), "body"));
    }
  }
  self->state.ctx->log->info("console: cancel of job {} asked", id);
  self->request(self->state.intake, ask_timeout, job_cancel{id, reason})
      .then(
          [respond](body& b) {
            if (auto* e = std::get_if<error>(&b))
              return respond(from_error(*e));
            if (auto* s = std::get_if<job_status>(&b))
              return respond(json_response(200, json{{"job", to_json_value(*s)}}));
            respond(fail(500, "internal", std::string("the intake answered ") + type_name(b)));
          },
          [self, respond](caf::error& e) { respond(from_caf(self, e, "the intake")); });
}

json provider_json(console_actor* self, const provider_info& p) {
  auto j = to_json_value(p);
  // What auctions use: the posterior over the node's own SLA record of the provider.
  j["risk"] = self->state.ctx->breach_probability(p.name);
  auto events = self->state.ctx->journal->sla_events(p.name);
  std::int64_t breaches = 0;
  for (auto& e : events)
    breaches += e.breach ? 1 : 0;
  json recent = json::array();
  std::size_t from = events.size() > 50 ? events.size() - 50 : 0;
  for (std::size_t i = from; i < events.size(); ++i)
    recent.push_back(
        {{"kind", events[i].kind}, {"breach", events[i].breach}, {"at", time_json(events[i].at)}});
  j["sla"] = {{"events", events.size()},
              {"breaches", breaches},
              {"kept", static_cast<std::int64_t>(events.size()) - breaches},
              {"recent", recent}};
  return j;
}

void get_providers(console_actor* self, responder& respond) {
  self->request(self->state.intake, ask_timeout, providers_query{})
      .then(
          [self, respond](body& b) {
            auto* l = std::get_if<provider_list>(&b);
            if (!l)
              return respond(
                  fail(500, "internal", std::string("the intake answered ") + type_name(b)));
            json rows = json::array();
            for (auto& p : l->providers)
              rows.push_back(provider_json(self, p));
            respond(json_response(200, json{{"providers", rows}}));
          },
          [self, respond](caf::error& e) { respond(from_caf(self, e, "the intake")); });
}

void drain_provider(console_actor* self, const std::string& name, bool on, responder& respond) {
  self->request(self->state.intake, ask_timeout, providers_atom::value)
      .then(
          [self, name, on, respond](provider_directory& d) {
            for (std::size_t i = 0; i < d.names.size(); ++i) {
              if (d.names[i] != name)
                continue;
              self->state.ctx->log->info("console: provider {} {}", name,
                                         on ? "to be drained" : "to be re-enabled");
              bool remote = d.remote[i];
              self->request(d.actors[i], ask_timeout, drain_atom::value, on)
                  .then(
                      [self, respond, remote](provider_info& info) {
                        info.remote = remote;
                        respond(json_response(200, json{{"provider", provider_json(self, info)}}));
                      },
                      [self, respond, name](caf::error& e) {
                        respond(from_caf(self, e, "provider " + name));
                      });
              return;
            }
            respond(fail(404, "not_found", "no provider " + name, "name"));
          },
          [self, respond](caf::error& e) { respond(from_caf(self, e, "the intake")); });
}

void get_metrics(console_actor* self, responder& respond) {
  auto intake = self->state.intake;
  self->request(intake, ask_timeout, jobs_query{0})
      .then(
          [self, intake, respond](body& jb) {
            auto jobs = std::make_shared<job_list>();
            if (auto* l = std::get_if<job_list>(&jb))
              *jobs = std::move(*l);
            self->request(intake, ask_timeout, providers_query{})
                .then(
                    [self, jobs, respond](body& pb) {
                      provider_list providers;
                      if (auto* l = std::get_if<provider_list>(&pb))
                        providers = std::move(*l);
                      auto& st = self->state;
                      for (auto& p : providers.providers)
                        p.risk = st.ctx->breach_probability(p.name);
                      std::map<int, std::int64_t> answered;
                      {
                        std::lock_guard lock(st.server->mu);
                        if (st.server->srv)
                          answered = st.server->srv->answered();
                      }
                      respond(
                          http_response{200,
                                        "text/plain; version=0.0.4; charset=utf-8",
                                        metrics_text(*jobs, providers, st.ctx->journal->totals(),
                                                     st.ctx->scoring(), answered),
                                        {}});
                    },
                    [self, respond](caf::error& e) { respond(from_caf(self, e, "the intake")); });
          },
          [self, respond](caf::error& e) { respond(from_caf(self, e, "the intake")); });
}

http_response not_allowed(const std::string& allow) {
  auto r = fail(405, "method_not_allowed", "use " + allow);
  r.headers.emplace_back("Allow", allow);
  return r;
}

void route(console_actor* self, http_request& r, responder& respond) {
  auto& st = self->state;
  auto seg = split_path(r.path);
  const auto& m = r.method;
  auto need = [&](const char* method) {
    if (m == method)
      return true;
    respond(not_allowed(method));
    return false;
  };
  if (seg.size() == 1 && seg[0] == "metrics") {
    if (need("GET"))
      get_metrics(self, respond);
    return;
  }
  if (seg.empty() || seg[0] != "api")
    return respond(fail(404, "not_found", "no such page: " + r.path));
  if (seg.size() == 1) {
    if (need("GET"))
      respond(json_response(
          200,
          json{{"node", st.ctx->cfg.node_name},
               {"routes",
                {"GET /api/jobs", "GET /api/jobs/ID", "GET /api/jobs/ID/usage",
                 "POST /api/jobs/ID/cancel", "GET /api/providers", "POST /api/providers/NAME/drain",
                 "POST /api/providers/NAME/enable", "GET /api/scaling", "GET /api/weights",
                 "POST /api/weights", "GET /metrics"}}}));
    return;
  }
  const auto& what = seg[1];
  if (what == "jobs") {
    if (seg.size() == 2) {
      if (need("GET"))
        get_jobs(self, r, respond);
      return;
    }
    const auto& id = seg[2];
    if (seg.size() == 3) {
      if (need("GET"))
        get_job(self, id, respond);
      return;
    }
    if (seg.size() == 4 && seg[3] == "usage") {
      if (need("GET"))
        get_usage(self, r, id, respond);
      return;
    }
    if (seg.size() == 4 && seg[3] == "cancel") {
      if (need("POST"))
        cancel_job(self, r, id, respond);
      return;
    }
  } else if (what == "providers") {
    if (seg.size() == 2) {
      if (need("GET"))
        get_providers(self, respond);
      return;
    }
    if (seg.size() == 4 && (seg[3] == "drain" || seg[3] == "enable")) {
      if (need("POST"))
        drain_provider(self, seg[2], seg[3] == "drain", respond);
      return;
    }
  } else if (what == "scaling" && seg.size() == 2) {
    if (!need("GET"))
      return;
    http_response bad;
    auto limit = count_param(r, "limit", 200, 1, 100000, bad);
    if (!limit)
      return respond(std::move(bad));
    json rows = json::array();
    for (auto& d : st.ctx->journal->recent_scaling(static_cast<std::size_t>(*limit)))
      rows.push_back(to_json_value(d));
    return respond(json_response(200, json{{"scaling", rows}}));
  } else if (what == "weights" && seg.size() == 2) {
    if (m == "GET")
      return respond(json_response(200, json{{"weights", weights_json(st.ctx->scoring())},
                                             {"changed", st.weights_changed}}));
    if (m != "POST")
      return respond(not_allowed("GET, POST"));
    auto w = st.ctx->scoring();
    auto before = w;
    if (auto bad = apply_weights(r.body, w))
      return respond(std::move(*bad));
    st.ctx->set_scoring(w);
    st.weights_changed = true;
    st.ctx->log->info("console: scoring weights changed from w_cost={} w_deadline={} w_risk={} "
                      "deadline_target={} to w_cost={} w_deadline={} w_risk={} "
                      "deadline_target={}; later auctions use them",
                      before.w_cost, before.w_deadline, before.w_risk, before.deadline_target,
                      w.w_cost, w.w_deadline, w.w_risk, w.deadline_target);
    return respond(json_response(200, json{{"weights", weights_json(w)}, {"changed", true}}));
  }
  respond(fail(404, "not_found", "no such API route: " + r.path));
}

bool is_loopback(const std::string& host) {
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return host == "::1";
}

} // namespace

std::variant<console_handle, std::string>
start_console(caf::actor_system& sys, std::shared_ptr<node_context> ctx, caf::actor intake) {
  auto server = std::make_shared<server_ref>();
  auto actor = sys.spawn<caf::detached>(
      [server](console_actor* self, std::shared_ptr<node_context> ctx,
               caf::actor intake) -> caf::behavior {
        self->state.ctx = std::move(ctx);
        self->state.intake = std::move(intake);
        self->state.server = server;
        return {
            [self](console_call& c) { route(self, c.req, c.respond); },
            [self](stop_atom) { self->quit(); },
        };
      },
      ctx, intake);
  console::http_server::options opt;
  opt.host = ctx->cfg.console.host;
  opt.port = ctx->cfg.console.port;
  opt.token = ctx->cfg.console.token;
  opt.log = ctx->log;
  auto page = std::make_shared<const std::string>(console_page());
  auto started =
      console::http_server::start(std::move(opt), [actor, page](http_request r, responder respond) {
        if (r.path == "/" || r.path == "/index.html") {
          if (r.method != "GET")
            return respond(not_allowed("GET"));
          return respond(http_response{
              200,
              "text/html; charset=utf-8",
              *page,
              {{"Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'"}}});
        }
        caf::anon_send(actor, console_call{std::move(r), std::move(respond)});
      });
  if (auto* err = std::get_if<std::string>(&started)) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return *err;
  }
  auto srv = std::shared_ptr<console::http_server>(
      std::get<std::unique_ptr<console::http_server>>(std::move(started)).release());
  {
    std::lock_guard lock(server->mu);
    server->srv = srv.get();
  }
  console_handle h;
  h.actor = actor;
  h.address = srv->address();
  h.stop = [srv, server] {
    {
      std::lock_guard lock(server->mu);
      server->srv = nullptr;
    }
    srv->stop();
  };
  if (!is_loopback(ctx->cfg.console.host))
    ctx->log->warn("console: listening on {}, which is not a loopback address: anyone who can "
                   "reach it and has the token can cancel jobs and drain providers",
                   h.address);
  return h;
}

} // namespace tender

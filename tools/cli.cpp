// The client subcommands: submit, status, jobs, cancel, providers, explain.

#include "config/job_file.hpp"
#include "protocol/json.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <thread>

namespace tender {

namespace {

std::string cores(double c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", c);
  return buf;
}

std::string cores_m(millicores m) { return cores(static_cast<double>(m) / 1000.0); }

/// Calls the node and expects an answer of type `T`; prints the failure and returns
/// nullopt on transport errors, node errors and answers of another type.
template <class T> std::optional<T> ask(const client_args& c, body req, const char* what) {
  auto keys = load_client_keys(c.key, c.server_key);
  if (auto* err = std::get_if<std::string>(&keys)) {
    std::fprintf(stderr, "tender %s: %s\n", what, err->c_str());
    return std::nullopt;
  }
  client cl(c.connect, "cli", std::get<client_keys>(keys));
  auto r = cl.call(std::move(req), c.timeout);
  if (auto* err = std::get_if<std::string>(&r)) {
    std::fprintf(stderr, "tender %s: %s\n", what, err->c_str());
    return std::nullopt;
  }
  auto& e = std::get<envelope>(r);
  if (auto* err = std::get_if<error>(&e.body)) {
    if (c.json)
      std::cout << to_json_value(*err).dump(2) << "\n";
    std::fprintf(stderr, "tender %s: %s (%s%s%s)\n", what, err->message.c_str(), err->code.c_str(),
                 err->field.empty() ? "" : ", field ", err->field.c_str());
    return std::nullopt;
  }
  if (auto* answer = std::get_if<T>(&e.body))
    return std::move(*answer);
  std::fprintf(stderr, "tender %s: unexpected answer %s\n", what, type_name(e.body));
  return std::nullopt;
}

/// Prints a list of protocol values as one JSON array.
template <class T> void print_json_array(const std::vector<T>& xs) {
  auto arr = nlohmann::json::array();
  for (auto& x : xs)
    arr.push_back(to_json_value(x));
  std::cout << arr.dump(2) << "\n";
}

} // namespace

std::string login_name() {
  if (auto* u = std::getenv("USER"); u && *u)
    return u;
  if (auto* pw = getpwuid(getuid()))
    return pw->pw_name;
  return "unknown";
}

std::string render_capacity(const provider_info& p) {
  std::string gpus;
  for (auto& g : p.gpu_types)
    gpus += (gpus.empty() ? ", GPUs: " : " ") + g;
  if (p.capacity.cpu == 0 && p.capacity.memory == 0)
    return "on demand from its catalogue" + gpus;
  return cores_m(p.capacity.cpu) + " cores, " + format_bytes(p.capacity.memory) + gpus;
}

std::string render_offers(const job_status& s) {
  std::ostringstream o;
  if (s.offers.empty())
    return "  no offers\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-5s %-12s %12s %14s  %s\n", "round", "provider", "price",
                "risk-adj cost", "verdict");
  o << line;
  for (auto& x : s.offers) {
    std::snprintf(line, sizeof line, "  %-5d %-12s %12s %14s  %s\n", x.round, x.provider.c_str(),
                  ("$" + format_usd(x.price)).c_str(),
                  ("$" + format_usd(static_cast<micros>(x.score))).c_str(), x.verdict.c_str());
    o << line;
  }
  return o.str();
}

std::string render_status(const job_status& s, bool offers) {
  std::ostringstream o;
  o << "job " << s.job_id << " (" << s.name << ", " << s.user << "): " << to_string(s.state);
  if (!s.reason.empty())
    o << " - " << s.reason;
  o << "\n";
  if (!s.provider.empty())
    o << "  provider " << s.provider << ", price $" << format_usd(s.price) << ", "
      << cores_m(s.allocated.cpu) << " cores, " << format_bytes(s.allocated.memory)
      << (s.allocated.gpus > 0 ? ", " + std::to_string(s.allocated.gpus) + "x " + s.allocated.gpu_type
                               : std::string())
      << "\n";
  o << "  submitted " << format_time(s.submitted_at);
  if (s.started_at)
    o << ", started " << format_time(s.started_at);
  if (s.finished_at)
    o << ", finished " << format_time(s.finished_at);
  if (s.exit_code >= 0)
    o << ", exit " << s.exit_code;
  o << "\n";
  if (s.has_profile) {
    auto& p = s.profile;
    o << "  predicted: cpu " << cores(p.cpu_mean) << " +- " << cores(p.cpu_stddev)
      << " cores, memory peak " << format_bytes(p.mem_peak) << ", run time "
      << format_duration(p.runtime) << " [" << format_duration(p.runtime_lo) << ", "
      << format_duration(p.runtime_hi) << "] (" << p.source << ")\n";
  }
  if (s.started_at)
    o << "  measured:  cpu " << cores(s.cpu_used_mean) << " cores mean, memory peak "
      << format_bytes(s.mem_used_peak) << ", read " << format_bytes(s.io_read) << ", written "
      << format_bytes(s.io_write)
      << (s.finished_at > s.started_at ? ", ran " + format_duration(s.finished_at - s.started_at)
                                       : std::string())
      << "\n";
  if (offers)
    o << render_offers(s);
  return o.str();
}

int run_submit(const client_args& c, const std::string& job_file, bool wait) {
  auto spec = load_job_file(job_file, wall_now());
  if (auto* err = std::get_if<config_error>(&spec)) {
    std::fprintf(stderr, "tender submit: %s\n", err->to_string().c_str());
    return 2;
  }
  auto& js = std::get<job_spec>(spec);
  if (js.user.empty())
    js.user = login_name();
  auto got = ask<job_status>(c, job_submit{js, ""}, "submit");
  if (!got)
    return 1;
  job_status s = *got;
  if (wait) {
    while (!is_final(s.state)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      auto again = ask<job_status>(c, job_query{s.job_id}, "submit");
      if (!again)
        return 1;
      s = *again;
    }
  }
  if (c.json)
    std::cout << to_json_value(s).dump(2) << "\n";
  else if (wait)
    std::cout << render_status(s, true);
  else
    std::cout << s.job_id << " " << to_string(s.state) << "\n";
  return wait && s.state != job_state::done ? 3 : 0;
}

int run_status(const client_args& c, const std::string& job_id) {
  auto got = ask<job_status>(c, job_query{job_id}, "status");
  if (!got)
    return 1;
  auto& s = *got;
  if (c.json)
    std::cout << to_json_value(s).dump(2) << "\n";
  else
    std::cout << render_status(s, true);
  return 0;
}

int run_jobs(const client_args& c) {
  auto got = ask<job_list>(c, jobs_query{}, "jobs");
  if (!got)
    return 1;
  auto& l = *got;
  if (c.json) {
    print_json_array(l.jobs);
    return 0;
  }
  std::printf("%-20s %-16s %-10s %-10s %12s  %s\n", "ID", "NAME", "STATE", "PROVIDER", "PRICE",
              "REASON");
  for (auto& s : l.jobs)
    std::printf("%-20s %-16s %-10s %-10s %12s  %s\n", s.job_id.c_str(), s.name.c_str(),
                to_string(s.state), s.provider.c_str(),
                s.provider.empty() ? "" : ("$" + format_usd(s.price)).c_str(),
                s.reason.substr(0, 60).c_str());
  return 0;
}

int run_cancel(const client_args& c, const std::string& job_id) {
  auto got = ask<job_status>(c, job_cancel{job_id, "cancelled by user"}, "cancel");
  if (!got)
    return 1;
  auto& s = *got;
  if (c.json)
    std::cout << to_json_value(s).dump(2) << "\n";
  else
    std::cout << s.job_id << " " << to_string(s.state)
              << (is_final(s.state) ? " (already ended)" : " (cancelling)") << "\n";
  return 0;
}

int run_providers(const client_args& c) {
  auto got = ask<provider_list>(c, providers_query{}, "providers");
  if (!got)
    return 1;
  auto& l = *got;
  if (c.json) {
    print_json_array(l.providers);
    return 0;
  }
  std::printf("%-12s %-8s %-7s %6s %6s %6s  %s\n", "NAME", "KIND", "WHERE", "OFFERS", "WINS",
              "RISK", "CAPACITY (FREE)");
  for (auto& p : l.providers) {
    auto free = p.capacity.cpu == 0 && p.capacity.memory == 0
                  ? std::string()
                  : " (free " + cores_m(p.free.cpu) + " cores, " + format_bytes(p.free.memory) + ")";
    std::printf("%-12s %-8s %-7s %6lld %6lld %6.3f  %s%s%s\n", p.name.c_str(), p.kind.c_str(),
                p.remote ? "remote" : "local", static_cast<long long>(p.offers),
                static_cast<long long>(p.wins), p.risk, render_capacity(p).c_str(), free.c_str(),
                p.drained ? "  DRAINED (no offers)" : "");
  }
  return 0;
}

int run_schedule(const client_args& c) {
  auto got = ask<provider_list>(c, providers_query{}, "providers");
  if (!got)
    return 1;
  if (c.json) {
    auto out = nlohmann::json::array();
    for (auto& p : got->providers)
      if (p.plan_at != 0)
        out.push_back({{"provider", p.name}, {"plan", to_json_plan(p)}});
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  bool any = false;
  for (auto& p : got->providers) {
    if (p.plan_at == 0)
      continue;
    any = true;
    auto rel = [&](usec t) {
      return t <= p.plan_at ? std::string("now")
                            : "+" + format_duration((t - p.plan_at + sec_us / 2) / sec_us * sec_us);
    };
    std::printf("%s: %s, plan at %s, offers starts up to %s ahead\n", p.name.c_str(),
                render_capacity(p).c_str(), format_time(p.plan_at).c_str(),
                format_duration(p.plan_horizon).c_str());
    if (p.plan.empty()) {
      std::printf("  no jobs\n");
    } else {
      std::printf("  %-24s %-9s %6s %10s %12s %14s\n", "JOB", "STATE", "CORES", "MEMORY", "START",
                  "PREDICTED END");
      for (auto& e : p.plan)
        std::printf("  %-24s %-9s %6s %10s %12s %14s\n", e.job_id.c_str(), e.state.c_str(),
                    cores_m(e.granted.cpu).c_str(), format_bytes(e.granted.memory).c_str(),
                    rel(e.start).c_str(), rel(e.end).c_str());
    }
    std::printf("  free over time:");
    for (auto& f : p.free_over_time)
      std::printf(" %s: %s cores, %s;", rel(f.at).c_str(), cores_m(f.free.cpu).c_str(),
                  format_bytes(f.free.memory).c_str());
    std::printf("\n");
  }
  if (!any)
    std::printf("no provider plans ahead (set plan_horizon on a local provider)\n");
  return 0;
}

std::string render_explanation(const explanation& x) {
  std::ostringstream o;
  auto usd_of = [](double micro) { return "$" + format_usd(static_cast<micros>(std::llround(micro))); };
  o << "job " << x.job_id << ": " << to_string(x.state);
  if (!x.winner.empty())
    o << " on " << x.winner << " at $" << format_usd(x.price);
  o << "\n";
  if (x.rounds > 0)
    o << "  " << x.protocol << " auction, " << x.rounds << (x.rounds == 1 ? " round" : " rounds")
      << "\n";
  o << "  why: " << x.why << "\n";
  if (x.offers.empty()) {
    o << "  no offers\n";
  } else {
    char line[640];
    std::snprintf(line, sizeof line, "  %-5s %-12s %11s %11s %6s %7s %11s %11s %11s %12s  %s\n",
                  "round", "provider", "price", "E[cost]", "P(ddl)", "P(brch)", "cost term",
                  "ddl term", "risk term", "risk-adj", "verdict");
    o << line;
    for (auto& e : x.offers) {
      auto& t = e.score;
      if (t.scored)
        std::snprintf(line, sizeof line,
                      "  %-5d %-12s %11s %11s %6.3f %7.3f %11s %11s %11s %12s  %s\n", e.round,
                      e.provider.c_str(), ("$" + format_usd(e.price)).c_str(),
                      usd_of(t.expected_cost).c_str(), t.p_deadline, t.breach_probability,
                      usd_of(t.cost_term).c_str(), ("+" + usd_of(t.deadline_term)).c_str(),
                      ("+" + usd_of(t.risk_term)).c_str(), usd_of(t.risk_adjusted).c_str(),
                      e.verdict.c_str());
      else
        std::snprintf(line, sizeof line, "  %-5d %-12s %11s %11s %6s %7s %11s %11s %11s %12s  %s\n",
                      e.round, e.provider.c_str(), ("$" + format_usd(e.price)).c_str(), "-", "-",
                      "-", "-", "-", "-", "-", e.verdict.c_str());
      o << line;
    }
  }
  for (auto& d : x.declines)
    o << "  declined (round " << d.round << "): " << d.provider << ": " << d.reason << "\n";
  if (!x.rejected.empty()) {
    o << "  rejected offers:";
    bool first = true;
    for (auto& [reason, n] : x.rejected) {
      o << (first ? " " : ", ") << reason << " " << n;
      first = false;
    }
    o << "\n";
  }
  for (auto& d : x.scaling) {
    o << "  scaling at " << format_time(d.at) << ": " << d.need << " -> " << d.action << " "
      << d.outcome << (d.by.empty() ? "" : " by " + d.by) << ": " << cores_m(d.held.cpu)
      << " cores, " << format_bytes(d.held.memory) << " -> " << cores_m(d.granted.cpu)
      << " cores, " << format_bytes(d.granted.memory);
    if (d.price_delta != 0)
      o << " (" << (d.price_delta > 0 ? "+$" : "-$")
        << format_usd(d.price_delta > 0 ? d.price_delta : -d.price_delta) << ")";
    o << "\n    why: " << d.reason;
    if (!d.detail.empty())
      o << "; " << d.detail;
    o << "\n";
  }
  return o.str();
}

int run_explain(const client_args& c, const std::string& job_id) {
  auto got = ask<explanation>(c, explain_query{job_id}, "explain");
  if (!got)
    return 1;
  if (c.json)
    std::cout << to_json_value(*got).dump(2) << "\n";
  else
    std::cout << render_explanation(*got);
  return 0;
}

int run_model_status(const client_args& c, bool retrain) {
  client_args longer = c;
  if (retrain)
    longer.timeout = 900 * sec_us; // training on a long history takes a while
  auto got = ask<model_status>(longer, model_query{retrain}, retrain ? "model retrain" : "model status");
  if (!got)
    return 1;
  auto& m = *got;
  if (c.json) {
    std::cout << to_json_value(m).dump(2) << "\n";
    return 0;
  }
  std::cout << "model:         " << m.version << " (" << m.source << ")\n";
  if (!m.load_error.empty())
    std::cout << "not loaded:    " << m.load_error << "\n";
  std::cout << "learned from:  " << m.finished_jobs << " finished jobs\n";
  std::cout << "retrainings:   " << m.retrains << " (" << m.replaced << " replaced the model)\n";
  if (m.last_retrain_at > 0)
    std::cout << "last:          " << m.last_retrain << "\n";
  return 0;
}

} // namespace tender

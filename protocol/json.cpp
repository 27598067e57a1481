#include "protocol/json.hpp"

namespace tender {

namespace {

double seconds(usec d) {
  return static_cast<double>(d / sec_us) + static_cast<double>(d % sec_us) / 1e6;
}

double cores(millicores m) {
  return static_cast<double>(m) / 1000.0;
}

template <class T> nlohmann::json array_of(const std::vector<T>& items) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& i : items)
    a.push_back(to_json_value(i));
  return a;
}

} // namespace

nlohmann::json time_json(usec t) {
  return t == 0 ? nlohmann::json(nullptr) : nlohmann::json(format_time(t));
}

nlohmann::json to_json_value(const resources& r) {
  return {{"cpu", cores(r.cpu)},
          {"memory_bytes", r.memory},
          {"gpus", r.gpus},
          {"gpu_type", r.gpu_type},
          {"gpu_memory_bytes", r.gpu_memory}};
}

nlohmann::json to_json_value(const sla& s) {
  return {{"availability", s.availability},
          {"preemption_probability", s.preemption_probability},
          {"latency_s", seconds(s.latency)}};
}

nlohmann::json to_json_value(const finding& f) {
  return {{"kind", f.kind}, {"detail", f.detail}, {"evidence", f.evidence}};
}

nlohmann::json to_json_value(const resource_profile& p) {
  return {{"job_id", p.job_id},
          {"cpu_mean", p.cpu_mean},
          {"cpu_stddev", p.cpu_stddev},
          {"cpu_lo", p.cpu_lo},
          {"cpu_hi", p.cpu_hi},
          {"mem_mean_bytes", p.mem_mean},
          {"mem_stddev_bytes", p.mem_stddev},
          {"mem_peak_bytes", p.mem_peak},
          {"mem_lo_bytes", p.mem_lo},
          {"mem_hi_bytes", p.mem_hi},
          {"io_read_bytes", p.io_read},
          {"io_write_bytes", p.io_write},
          {"net_bytes", p.net_bytes},
          {"net_bandwidth_bps", p.net_bandwidth_bps},
          {"gpu_type", p.gpu_type},
          {"gpus", p.gpus},
          {"software_stack", p.software_stack},
          {"runtime_s", seconds(p.runtime)},
          {"runtime_lo_s", seconds(p.runtime_lo)},
          {"runtime_hi_s", seconds(p.runtime_hi)},
          {"confidence", p.confidence},
          {"source", p.source},
          {"model_version", p.model_version},
          {"partial", p.partial},
          {"profile_time_s", seconds(p.profile_time)},
          {"findings", array_of(p.findings)}};
}

nlohmann::json to_json_value(const offer_summary& o) {
  return {{"offer_id", o.offer_id},
          {"provider", o.provider},
          {"round", o.round},
          {"price", to_usd(o.price)},
          {"earliest_start", time_json(o.earliest_start)},
          {"score", o.score / 1e6},
          {"verdict", o.verdict}};
}

nlohmann::json to_json_value(const job_status& s) {
  return {{"id", s.job_id},
          {"name", s.name},
          {"user", s.user},
          {"state", to_string(s.state)},
          {"reason", s.reason},
          {"provider", s.provider},
          {"allocation_id", s.allocation_id},
          {"price", to_usd(s.price)},
          {"offers", array_of(s.offers)},
          {"submitted_at", time_json(s.submitted_at)},
          {"started_at", time_json(s.started_at)},
          {"finished_at", time_json(s.finished_at)},
          {"exit_code", s.exit_code == -1 ? nlohmann::json(nullptr) : nlohmann::json(s.exit_code)},
          {"allocated", to_json_value(s.allocated)},
          {"profile", s.has_profile ? to_json_value(s.profile) : nlohmann::json(nullptr)},
          {"usage",
           {{"cpu_mean", s.cpu_used_mean},
            {"mem_peak_bytes", s.mem_used_peak},
            {"io_read_bytes", s.io_read},
            {"io_write_bytes", s.io_write}}}};
}

nlohmann::json to_json_value(const offer& o) {
  return {{"offer_id", o.offer_id},
          {"job_id", o.job_id},
          {"auction_id", o.auction_id},
          {"round", o.round},
          {"provider", o.provider},
          {"granted", to_json_value(o.granted)},
          {"price", to_usd(o.price)},
          {"rate_per_hour", to_usd(o.rate_per_hour)},
          {"earliest_start", time_json(o.earliest_start)},
          {"terms", to_json_value(o.terms)},
          {"valid_until", time_json(o.valid_until)},
          {"instance_type", o.instance_type},
          {"spot", o.spot}};
}

nlohmann::json to_json_value(const allocation& a) {
  // No lease_token: it is the access credential.
  return {{"allocation_id", a.allocation_id},
          {"job_id", a.job_id},
          {"offer_id", a.offer_id},
          {"provider", a.provider},
          {"granted", to_json_value(a.granted)},
          {"price", to_usd(a.price)},
          {"rate_per_hour", to_usd(a.rate_per_hour)},
          {"terms", to_json_value(a.terms)},
          {"lease_expires", time_json(a.lease_expires)},
          {"start_at", time_json(a.start_at)},
          {"instance_type", a.instance_type}};
}

nlohmann::json to_json_value(const provider_info& p) {
  return {{"name", p.name},
          {"kind", p.kind},
          {"remote", p.remote},
          {"connected", p.connected},
          {"capacity", to_json_value(p.capacity)},
          {"free", to_json_value(p.free)},
          {"offers", p.offers},
          {"wins", p.wins},
          {"breaches", p.breaches},
          {"risk", p.risk},
          {"gpu_types", p.gpu_types},
          {"drained", p.drained},
          {"plan", to_json_plan(p)}};
}

nlohmann::json to_json_plan(const provider_info& p) {
  if (p.plan_at == 0)
    return nullptr;
  nlohmann::json jobs = nlohmann::json::array();
  for (const auto& e : p.plan)
    jobs.push_back({{"job_id", e.job_id},
                    {"allocation_id", e.allocation_id},
                    {"state", e.state},
                    {"granted", to_json_value(e.granted)},
                    {"start", time_json(e.start)},
                    {"predicted_end", time_json(e.end)}});
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& f : p.free_over_time)
    steps.push_back({{"at", time_json(f.at)}, {"free", to_json_value(f.free)}});
  return {{"at", time_json(p.plan_at)},
          {"horizon_s", static_cast<double>(p.plan_horizon) / 1e6},
          {"jobs", jobs},
          {"free_over_time", steps}};
}

nlohmann::json to_json_value(const usage_sample& u) {
  return {{"at", time_json(u.at)},      {"cpu", cores(u.cpu)},          {"rss_bytes", u.rss},
          {"io_read_bytes", u.io_read}, {"io_write_bytes", u.io_write}, {"net_bytes", u.net_bytes},
          {"threads", u.threads}};
}

nlohmann::json to_json_value(const usage_report& u) {
  return {{"job_id", u.job_id},
          {"allocation_id", u.allocation_id},
          {"provider", u.provider},
          {"samples", array_of(u.samples)},
          {"final", u.final},
          {"exit_code", u.exit_code == -1 ? nlohmann::json(nullptr) : nlohmann::json(u.exit_code)},
          {"reason", u.reason},
          {"started_at", time_json(u.started_at)},
          {"finished_at", time_json(u.finished_at)},
          {"gpu_memory_needed", u.gpu_memory_needed}};
}

nlohmann::json to_json_value(const error& e) {
  return {{"code", e.code}, {"message", e.message}, {"type", e.type}, {"field", e.field}};
}

nlohmann::json to_json_value(const job_list& l) {
  return array_of(l.jobs);
}

nlohmann::json to_json_value(const provider_list& l) {
  return array_of(l.providers);
}

nlohmann::json to_json_value(const model_status& m) {
  auto mae = [](double v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"version", m.version},
          {"source", m.source},
          {"load_error", m.load_error},
          {"finished_jobs", m.finished_jobs},
          {"retrains", m.retrains},
          {"replaced", m.replaced},
          {"last_retrain_at", time_json(m.last_retrain_at)},
          {"last_retrain", m.last_retrain},
          {"last_old_mae_s", mae(m.last_old_mae_s)},
          {"last_new_mae_s", mae(m.last_new_mae_s)}};
}

nlohmann::json to_json_value(const score_terms& t) {
  if (!t.scored)
    return nullptr;
  return {{"expected_cost", t.expected_cost / 1e6},
          {"worst_cost", to_usd(t.worst_cost)},
          {"p_deadline", t.p_deadline},
          {"breach_probability", t.breach_probability},
          {"risk", t.risk},
          {"cost_term", t.cost_term / 1e6},
          {"deadline_term", t.deadline_term / 1e6},
          {"risk_term", t.risk_term / 1e6},
          {"risk_adjusted", t.risk_adjusted / 1e6},
          {"note", t.note}};
}

nlohmann::json to_json_value(const offer_explanation& o) {
  return {{"offer_id", o.offer_id},
          {"auction_id", o.auction_id},
          {"round", o.round},
          {"provider", o.provider},
          {"price", to_usd(o.price)},
          {"rate_per_hour", to_usd(o.rate_per_hour)},
          {"earliest_start", time_json(o.earliest_start)},
          {"terms", to_json_value(o.terms)},
          {"instance_type", o.instance_type},
          {"score", to_json_value(o.score)},
          {"verdict", o.verdict}};
}

nlohmann::json to_json_value(const decline_note& d) {
  return {{"auction_id", d.auction_id},
          {"round", d.round},
          {"provider", d.provider},
          {"reason", d.reason}};
}

nlohmann::json to_json_value(const explanation& x) {
  nlohmann::json rejected = nlohmann::json::object();
  std::int64_t total = 0;
  for (const auto& [reason, n] : x.rejected) {
    rejected[reason] = n;
    total += n;
  }
  return {{"id", x.job_id},
          {"state", to_string(x.state)},
          {"reason", x.reason},
          {"protocol", x.protocol},
          {"rounds", x.rounds},
          {"winner", x.winner.empty() ? nlohmann::json(nullptr) : nlohmann::json(x.winner)},
          {"offer_id", x.offer_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(x.offer_id)},
          {"price", to_usd(x.price)},
          {"why", x.why},
          {"offers", array_of(x.offers)},
          {"declines", array_of(x.declines)},
          {"rejected", rejected},
          {"rejected_total", total},
          {"scaling", array_of(x.scaling)}};
}

nlohmann::json to_json_value(const scaling_decision& d) {
  return {{"at", time_json(d.at)},
          {"need", d.need},
          {"action", d.action},
          {"outcome", d.outcome},
          {"by", d.by},
          {"allocation_id", d.allocation_id},
          {"held", to_json_value(d.held)},
          {"wanted", to_json_value(d.wanted)},
          {"granted", to_json_value(d.granted)},
          {"price_delta", to_usd(d.price_delta)},
          {"disruptive", d.disruptive},
          {"reason", d.reason},
          {"detail", d.detail}};
}

} // namespace tender

#pragma once
/// JSON views of protocol values, for the CLI's `--json` output and the console.
///
/// These are for people and scripts, not for the wire (the wire is MessagePack,
/// see envelope.hpp). Conventions, the same for every object:
///  - money as decimal dollars (`"price": 0.123456`);
///  - instants as RFC 3339 strings (`"2026-11-25T12:53:49.123Z"`), `null` when unset (0);
///  - durations in seconds as numbers, the key ending in `_s` (`"runtime_s": 90.5`);
///  - byte counts as integers, the key ending in `_bytes`;
///  - CPU in cores as numbers (`"cpu": 1.5` for 1500 milli-cores).
/// Secrets are never printed: `allocation` has no `lease_token` key.
///
/// Each `to_json_value` has an ADL `to_json` twin, so `nlohmann::json j = value;` works too.

#include "protocol/allocation.hpp"
#include "protocol/control.hpp"
#include "protocol/job.hpp"
#include "protocol/negotiation.hpp"
#include "protocol/profile.hpp"
#include "protocol/resources.hpp"
#include "protocol/usage.hpp"

#include <nlohmann/json.hpp>

namespace tender {

/// `{cpu, memory_bytes, gpus, gpu_type, gpu_memory_bytes}`.
nlohmann::json to_json_value(const resources& r);
/// `{availability, preemption_probability, latency_s}`.
nlohmann::json to_json_value(const sla& s);
/// `{kind, detail, evidence}`.
nlohmann::json to_json_value(const finding& f);
/// `{job_id, cpu_mean, cpu_stddev, cpu_lo, cpu_hi, mem_mean_bytes, mem_stddev_bytes,
/// mem_peak_bytes, mem_lo_bytes, mem_hi_bytes, io_read_bytes, io_write_bytes, net_bytes,
/// net_bandwidth_bps, gpu_type, gpus, software_stack, runtime_s, runtime_lo_s, runtime_hi_s,
/// confidence, source, model_version, partial, profile_time_s, findings}`.
nlohmann::json to_json_value(const resource_profile& p);
/// `{offer_id, provider, round, price, earliest_start, score, verdict}`; `score` is the
/// risk-adjusted cost in dollars.
nlohmann::json to_json_value(const offer_summary& o);
/// `{id, name, user, state, reason, provider, allocation_id, price, offers, submitted_at,
/// started_at, finished_at, exit_code, allocated, profile, usage}`. `exit_code` is null
/// while unknown (-1); `profile` is null when the job has none; `usage` is
/// `{cpu_mean, mem_peak_bytes, io_read_bytes, io_write_bytes}`.
nlohmann::json to_json_value(const job_status& s);
/// `{offer_id, job_id, auction_id, round, provider, granted, price, rate_per_hour,
/// earliest_start, terms, valid_until, instance_type, spot}`.
nlohmann::json to_json_value(const offer& o);
/// `{allocation_id, job_id, offer_id, provider, granted, price, rate_per_hour, terms,
/// lease_expires, start_at, instance_type}`: never the lease token.
nlohmann::json to_json_value(const allocation& a);
/// `{name, kind, remote, connected, capacity, free, offers, wins, breaches, risk, gpu_types,
/// drained, plan}`.
nlohmann::json to_json_value(const provider_info& p);
nlohmann::json to_json_value(const scaling_decision& d);
/// A provider's plan (jobs with their starts and predicted ends, free capacity over
/// time), or null when it does not plan ahead.
nlohmann::json to_json_plan(const provider_info& p);
/// `{at, cpu, rss_bytes, io_read_bytes, io_write_bytes, net_bytes, threads}`.
nlohmann::json to_json_value(const usage_sample& u);
/// `{job_id, allocation_id, provider, samples, final, exit_code, reason, started_at, finished_at}`.
nlohmann::json to_json_value(const usage_report& u);
/// `{code, message, type, field}`.
nlohmann::json to_json_value(const error& e);
/// An array of job_status objects.
nlohmann::json to_json_value(const job_list& l);
/// An array of provider_info objects.
nlohmann::json to_json_value(const provider_list& l);
/// `{version, source, load_error, finished_jobs, retrains, replaced, last_retrain_at,
/// last_retrain, last_old_mae_s, last_new_mae_s}` (MAEs null when not measured).
nlohmann::json to_json_value(const model_status& m);

/// `{expected_cost, worst_cost, p_deadline, breach_probability, risk, cost_term,
/// deadline_term, risk_term, risk_adjusted, note}` in dollars, or null when the offer
/// was never scored (rejected, or the negotiation moved on first).
nlohmann::json to_json_value(const score_terms& t);
/// `{offer_id, auction_id, round, provider, price, rate_per_hour, earliest_start, terms,
/// instance_type, score, verdict}`.
nlohmann::json to_json_value(const offer_explanation& o);
/// `{auction_id, round, provider, reason}`.
nlohmann::json to_json_value(const decline_note& d);
/// `{id, state, reason, protocol, rounds, winner, offer_id, price, why, offers, declines,
/// rejected, rejected_total}`: `winner` and `offer_id` are null without an allocation;
/// `rejected` maps a reason ("late", "duplicate offer o-1" is counted as "duplicate", ...)
/// to its count.
nlohmann::json to_json_value(const explanation& x);

/// An instant as RFC 3339, or null when 0.
nlohmann::json time_json(usec t);

// ADL hooks for nlohmann::json.
inline void to_json(nlohmann::json& j, const resources& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const sla& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const finding& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const resource_profile& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const offer_summary& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const job_status& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const offer& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const allocation& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const provider_info& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const usage_sample& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const usage_report& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const error& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const job_list& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const provider_list& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const score_terms& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const offer_explanation& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const decline_note& v) {
  j = to_json_value(v);
}
inline void to_json(nlohmann::json& j, const explanation& v) {
  j = to_json_value(v);
}

} // namespace tender

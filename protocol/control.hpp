#pragma once
/// Control messages: provider registration, queries and errors.

#include "protocol/resources.hpp"

#include <msgpack.hpp>

#include <string>
#include <vector>

namespace tender {

/// Provider -> node: join the node's auctions. Capabilities are lists, not versions.
/// History: v1. `heartbeat` added with federation (a missing key: 0, no liveness check).
/// `wire` added with batches (a missing key: none; protocol/batch.hpp).
struct provider_hello {
  std::string name;
  std::string kind; ///< "local", "market", "slurm", ...
  std::vector<std::string> gpu_types;
  std::vector<std::string> software;
  std::vector<std::string> cpu_features;
  std::vector<std::string> protocols;
  resources capacity;
  /// > 0: the provider repeats its hello at least this often, and the node declares it
  /// gone (its jobs renegotiated elsewhere) after three periods of silence.
  usec heartbeat = 0;
  /// Framings the provider reads besides one envelope per frame: "batch" (several
  /// envelopes in one frame, protocol/batch.hpp).
  std::vector<std::string> wire;
  MSGPACK_DEFINE_MAP(name, kind, gpu_types, software, cpu_features, protocols, capacity, heartbeat,
                     wire)
};

/// Node -> provider: registration accepted.
/// History: v1. `wire` added with batches (a missing key: none).
struct welcome {
  std::string node;
  std::string provider;
  /// Framings the node reads besides one envelope per frame: "batch".
  std::vector<std::string> wire;
  MSGPACK_DEFINE_MAP(node, provider, wire)
};

/// Client -> node: list providers (answered with provider_list).
struct providers_query {
  bool verbose = false;
  MSGPACK_DEFINE_MAP(verbose)
};

/// One provider as the node sees it.
/// One job in a provider's plan. `state` is "running" (until its predicted `end`),
/// "reserved" (the first waiting job, whose start backfilling never delays) or
/// "waiting" (placed where it would start if nothing were let ahead of it).
/// History: v1 (added with the scheduling issue).
struct plan_entry {
  std::string job_id;
  std::string allocation_id;
  std::string state;
  resources granted;
  usec start = 0;
  usec end = 0;
  MSGPACK_DEFINE_MAP(job_id, allocation_id, state, granted, start, end)
  friend bool operator==(const plan_entry&, const plan_entry&) = default;
};

/// Free capacity from `at` until the next step.
/// History: v1 (added with the scheduling issue).
struct free_step {
  usec at = 0;
  resources free;
  MSGPACK_DEFINE_MAP(at, free)
  friend bool operator==(const free_step&, const free_step&) = default;
};

struct provider_info {
  std::string name;
  std::string kind;
  bool remote = false;
  bool connected = true;
  resources capacity;
  resources free;
  std::int64_t offers = 0;
  std::int64_t wins = 0;
  std::int64_t breaches = 0;
  double risk = 0.0; ///< posterior mean breach probability
  std::vector<std::string> gpu_types;
  /// The provider's plan at `plan_at` (empty when it does not plan ahead), the free
  /// capacity over time it leaves, and how far ahead it offers starts.
  /// Added with the scheduling issue; older senders leave them empty.
  usec plan_at = 0;
  usec plan_horizon = 0;
  std::vector<plan_entry> plan;
  std::vector<free_step> free_over_time;
  /// Drained by an operator (the console): makes no offers; its running jobs go on.
  /// Added with the console issue; older senders leave it false.
  bool drained = false;
  MSGPACK_DEFINE_MAP(name, kind, remote, connected, capacity, free, offers, wins, breaches, risk,
                     gpu_types, plan_at, plan_horizon, plan, free_over_time, drained)
};

struct provider_list {
  std::vector<provider_info> providers;
  MSGPACK_DEFINE_MAP(providers)
};

/// Client -> node: the node's run-time model (answered with model_status). With
/// `retrain`, the node first retrains on its finished jobs and keeps the new model
/// only when it beats the current one on the most recent of them.
/// History: v1 (added with the models issue).
struct model_query {
  bool retrain = false;
  MSGPACK_DEFINE_MAP(retrain)
};

/// The model a node predicts with, and its last retraining.
/// History: v1 (added with the models issue).
struct model_status {
  std::string version;    ///< "xgboost:<digest>" or "baseline:last2"
  std::string source;     ///< model file, "retrained", or "baseline"
  std::string load_error; ///< why a configured model is not used (empty if it is)
  std::int64_t finished_jobs = 0; ///< jobs the predictor has learned from
  std::int64_t retrains = 0;      ///< retrainings attempted since the node started
  std::int64_t replaced = 0;      ///< ... of which replaced the model
  std::int64_t last_retrain_at = 0; ///< usec since epoch, 0 = never
  std::string last_retrain;  ///< what the last retraining did, in words
  double last_old_mae_s = -1; ///< current model's MAE on the held-out recent jobs
  double last_new_mae_s = -1; ///< candidate's MAE on the same jobs
  MSGPACK_DEFINE_MAP(version, source, load_error, finished_jobs, retrains, replaced,
                     last_retrain_at, last_retrain, last_old_mae_s, last_new_mae_s)
};

/// Anyone -> sender of a bad message. `type` and `field` name what was wrong.
/// History: v1.
struct error {
  std::string code; ///< "truncated", "invalid", "wrong_type", "unknown_type", "version", "oversized", "not_found", ...
  std::string message;
  std::string type;  ///< message type concerned (may be empty)
  std::string field; ///< field concerned (may be empty)
  MSGPACK_DEFINE_MAP(code, message, type, field)
};

} // namespace tender

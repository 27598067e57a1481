#pragma once
/// The node's configuration (TOML), and the embedded default used by `--dev`.

#include "config/job_file.hpp"
#include "providers/provider_config.hpp"

#include <map>
#include <string>
#include <variant>
#include <vector>

namespace tender {

struct auction_config {
  std::string protocol = "iterated";
  std::int32_t max_rounds = 2;
  usec round_timeout = 200'000;   ///< a round closes after this even if providers are silent
  usec hold_ttl = 30'000'000;     ///< award -> confirm hold lifetime
  usec commit_timeout = 1'000'000; ///< award without answer -> next best offer
  usec lease_ttl = 600'000'000;   ///< allocation -> launch must happen within this
};

struct scoring_config {
  double w_cost = 1.0;      ///< weight of expected cost
  double w_deadline = 1.0;  ///< weight of the deadline-miss penalty
  double w_risk = 1.0;      ///< weight of provider risk
  double deadline_target = 0.9; ///< minimum probability of meeting the deadline
};

/// `[scaling]`: how a running job's usage is watched and acted on (actors/scaler.hpp).
/// The detector's knobs (models/deviation.hpp `deviation_options`) with the agent's
/// defaults, plus what the scaler may do about a need.
struct scaling_config {
  bool enabled = true;              ///< watch running jobs and resize them
  usec memory_horizon = 600'000'000; ///< act when memory would cross its limit within this
  usec memory_window = 1'800'000'000; ///< the memory trend is fitted over this much history
  double memory_margin = 0.10;      ///< headroom over the projected / peak memory
  usec throttle_window = 300'000'000; ///< CPU must be held at its limit over this window ...
  double throttle_share = 0.5;      ///< ... in at least this share of the samples
  usec throttle_min_span = 5'000'000; ///< ... and never sooner than this after a start or change
  double cpu_margin = 0.10;         ///< headroom over the recent CPU peaks
  usec shrink_window = 3'600'000'000; ///< low use for this long gives capacity back
  double runtime_extension = 0.25;  ///< a job past its predicted end gets elapsed x (1 + this)
  double min_gain = 0.05;           ///< no change for less than this share
  usec disruptive_gap = 3'600'000'000; ///< at most one disruptive action (a move) per this
  double max_step = 4.0;            ///< one change at most multiplies a resource by this
  usec answer_timeout = 5'000'000;  ///< a provider that does not answer a resize has refused
  bool move = true;                 ///< when in place is refused, move a job that would die
  /// CPU sized by forecast (models/forecast_sizer.hpp: 5-minute buckets, recurring rises,
  /// headroom priced at `forecast_short_cost` millicores per short bucket) once a job has
  /// an hour of history; the reactive throttle/shrink rules before that, or when false.
  bool cpu_forecast = true;
  double forecast_short_cost = 1000;
};

/// `[bus]`: the message bus (protocol/bus.hpp). No `listen` = no bus.
struct bus_config {
  std::string listen;  ///< ROUTER endpoint producers connect a DEALER to ("" = no bus)
  std::string publish; ///< PUB endpoint for job events ("" = none)
  std::int32_t hwm = 20000; ///< ZeroMQ high-water marks of the bus sockets (messages)
  std::int32_t batch = 512; ///< most submissions per group commit
};

/// `[console]`: the admin web console (actors/console.hpp). No `[console]` = no console.
/// `listen = "HOST:PORT"`, `":PORT"` or `"PORT"` (host 127.0.0.1; a non-loopback host must
/// be written out; port 0 picks a free one). `token` or `token_file` is required.
struct console_config {
  bool enabled = false;
  std::string host = "127.0.0.1"; ///< an IPv4 or IPv6 address literal
  std::int32_t port = 7480;
  std::string token; ///< from `token`, or the first line of `token_file`; never logged
};

/// `[[peers]]`: a site this node joins as a provider (federation, actors/federation.hpp).
/// The node connects to the peer's `endpoint` and bids in its auctions with its own
/// providers' capacity, under its own `[node] name`. One-directional: for two sites to
/// place work on each other, each lists the other.
struct peer_config {
  std::string name;     ///< the peer site's name, for logs (the peer knows us by our node name)
  std::string endpoint; ///< its gateway, e.g. tcp://127.0.0.1:7471
  /// The peer's public key (Z85, or a .pub path resolved against the config's
  /// directory). With it, and this node's `[security] key`, the link is CurveZMQ; the
  /// peer must list this node's public key in its allow list.
  std::string server_key;
};

/// `[federation]`: how calls for offers travel between sites.
struct federation_config {
  std::int32_t hop_limit = 2; ///< a call crosses at most this many site boundaries
  usec heartbeat = 500'000;   ///< hello period towards peers; silent 3 periods = gone
};

/// `[security]`: CurveZMQ on the node's TCP endpoints (protocol/curve.hpp). With `key`,
/// every tcp:// endpoint the node listens on is a CURVE server that lets in only the
/// public keys of `allow` and `allow_dir` (and the node's own). Without it, the node
/// listens in plaintext on loopback only, and only with --dev, --insecure or
/// `insecure = true`.
struct security_config {
  std::string key;                ///< this node's secret key file ("" = none), resolved
  std::vector<std::string> allow; ///< Z85 public keys or ".pub" paths (resolved)
  std::string allow_dir;          ///< every *.pub file in it is allowed ("" = none), resolved
  bool insecure = false;          ///< plaintext on loopback allowed without --insecure
};

struct node_config {
  std::string node_name = "tender";
  std::string listen = "tcp://127.0.0.1:7470";
  std::string data_dir; ///< empty = a fresh temporary directory
  usec sample_interval = 100'000; ///< usage sampling period (10 Hz)
  auction_config auction;
  scoring_config scoring;
  scaling_config scaling;
  std::vector<provider_config> providers;
  std::vector<peer_config> peers; ///< [[peers]] (federation)
  federation_config federation;   ///< [federation]
  bus_config bus;
  console_config console;
  security_config security; ///< [security]
  /// `[intake] max_active_jobs`: jobs with an actor at once; later submissions wait,
  /// journaled as `submitted`, and start in order. 0 = start none (accept only).
  std::int32_t max_active_jobs = 64;
  /// [models] runtime = "PATH" (may be empty), or "requested": plan with the users'
  /// requested times (models/predictor.hpp `requested_predictor`), as classic EASY.
  std::string models_runtime;
  usec models_retrain_every = 0; ///< [models] retrain_every = "6h" (0 = only on demand)
  std::int64_t models_retrain_min_jobs = 200; ///< [models] retrain_min_jobs
  std::string source;         ///< file name, or "<embedded dev config>"
};

/// Parses a node config. Relative paths (catalogues, models, data_dir) resolve against
/// `base_dir`. Unknown keys, wrong types, unknown provider kinds, duplicate provider
/// names: a config_error naming the key, e.g. "providers[2].kind" (indices from 0).
/// A market provider's `catalogue` is a path or "embedded:NAME" (embedded_catalogues());
/// its instance types are loaded here, and a catalogue's own errors name its file.
/// Local providers: `cpus` may be "auto" and `memory` "N%" of this machine (the
/// defaults when left out are all cores and 80 %). Market providers: capacity left out
/// is 0, bounded only by `max_instances`. Kind-specific keys on the other kind
/// (`catalogue` on local, `price_per_core_hour` on market, ...) are refused.
std::variant<node_config, config_error> parse_node_toml(const std::string& text,
                                                        const std::string& file_name,
                                                        const std::string& base_dir);
std::variant<node_config, config_error> load_node_config(const std::string& path);

/// The embedded default (`tender agent --dev`): a local provider (this machine's
/// cores and 80 % of its memory) and three market providers (`cloud-a`, `cloud-b`,
/// `gpu-vendor`) with different embedded catalogues. Parsed by parse_node_toml from
/// dev_config_text(); throws std::logic_error only if that text is broken (a bug).
node_config dev_config();
/// The TOML text behind dev_config(), e.g. to print as a starting point.
const std::string& dev_config_text();

/// Loads a market catalogue TOML (instance types with on-demand and spot prices).
std::variant<std::vector<instance_type>, config_error> load_catalogue(const std::string& path);
std::variant<std::vector<instance_type>, config_error>
parse_catalogue_toml(const std::string& text, const std::string& file_name);

} // namespace tender

namespace tender {
/// The catalogues in config/catalogues/*.toml, by file stem, compiled into the binary.
const std::map<std::string, std::string>& embedded_catalogues();
} // namespace tender

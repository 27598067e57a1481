#pragma once
/// The `tender` subcommands. Each returns the process exit code.

#include "protocol/envelope.hpp"

#include <string>

namespace tender {

constexpr const char* default_endpoint = "tcp://127.0.0.1:7470";

struct agent_args {
  bool dev = false;
  std::string config;
  std::string data_dir;
  std::string listen;
  bool quiet = false;
  std::string key;       ///< --key: this node's secret key file (overrides [security] key)
  bool insecure = false; ///< --insecure: plaintext on loopback without keys
};
int run_agent(const agent_args& a);

struct provider_args {
  std::string config;
  std::string name; ///< which [[providers]] entry (default: the first)
  std::string connect;
  std::string data_dir;
  std::string key;        ///< --key (default: the config's [security] key)
  std::string server_key; ///< --server-key: the node's public key (Z85 or .pub file)
};
int run_provider(const provider_args& a);

struct client_args {
  std::string connect = default_endpoint;
  bool json = false;
  usec timeout = 10 * sec_us;
  std::string key;        ///< --key: this client's secret key file ("" = plaintext)
  std::string server_key; ///< --server-key: the node's public key (Z85 or .pub file)
};
int run_submit(const client_args& c, const std::string& job_file, bool wait);
int run_status(const client_args& c, const std::string& job_id);
int run_jobs(const client_args& c);
int run_cancel(const client_args& c, const std::string& job_id);
int run_providers(const client_args& c);
/// `tender schedule`: each planning provider's plan — running jobs to their predicted
/// ends, the reserved first waiting job, the other waiting jobs where they would
/// start, and the free capacity over time.
int run_schedule(const client_args& c);
/// `tender explain JOB`: every offer of every round with its score breakdown, the
/// declines, rejected offers by reason, and why the winner won (or the job was refused).
int run_explain(const client_args& c, const std::string& job_id);
/// The human-readable form of `tender explain`.
std::string render_explanation(const explanation& x);
/// `tender model status` / `tender model retrain`: the node's run-time model.
int run_model_status(const client_args& c, bool retrain);

struct demo_args {
  std::string examples; ///< folder of job files (default: examples/jobs beside the binary's source)
  bool quiet = true;
};
int run_demo(const demo_args& a);

/// The submitting user's login ($USER, else the password database).
std::string login_name();

/// Human-readable renderings shared by the CLI and the demo.
std::string render_status(const job_status& s, bool offers);
std::string render_offers(const job_status& s);
/// "2.00 cores, 16 GiB", or "on demand from its catalogue" for a market; GPU types.
std::string render_capacity(const provider_info& p);

} // namespace tender

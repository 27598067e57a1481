#pragma once
/// What every actor of a node shares: configuration, journal, predictor, clock and
/// id source. Thread-safe members only (the journal and predictor lock inside).

#include "actors/journal.hpp"
#include "config/node_config.hpp"
#include "actors/offer_scorer.hpp"
#include "models/predictor.hpp"
#include "protocol/control.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>

namespace spdlog {
class logger;
}

namespace tender::curve {
struct server_setup;
}

namespace tender {

struct node_context {
  node_config cfg;
  std::string data_dir;
  std::unique_ptr<tender::journal> journal;
  std::function<usec()> clock;
  std::shared_ptr<spdlog::logger> log;
  /// CurveZMQ for the node's listening endpoints (protocol/curve.hpp): call
  /// `security->secure(socket, zctx, endpoint, "bus", auth, warn)` before each bind.
  std::shared_ptr<const curve::server_setup> security;

  usec now() const { return clock(); }

  /// Unique ids: prefix + random node epoch + counter ("j-4f2a9c-17").
  std::string new_id(const char* prefix);

  /// The predictor, behind a lock. Every finished job it observes is also kept as
  /// training data for retraining. `predict` is called once per job, when it is
  /// profiled after submission: the predictor then counts the job as submitted.
  prediction predict(const job_spec& spec, const resource_profile& measured);
  void observe(const finished_job& j);
  /// A job `predict` counted ended without running (no `observe` will follow).
  void withdraw(const job_spec& spec);
  void set_predictor(std::unique_ptr<predictor> p);

  /// Loads the run-time model: the node's own retrained model (data_dir/models/current)
  /// if there is one, else `[models] runtime`, else the baseline. A model that cannot
  /// be used is logged with its reason and the baseline predicts instead.
  void load_model();
  /// Retrains on the finished jobs seen so far (slow: call it off the actor threads)
  /// and switches to the new model when it beats the current one on the newest jobs.
  model_status retrain();
  model_status model_info();

  /// The offer-scoring weights auctions use: `cfg.scoring` until changed at run time
  /// (the console's weights form). Thread-safe; a change applies to later rankings.
  scoring_config scoring();
  void set_scoring(const scoring_config& w);

  /// Provider SLA history -> posterior breach probability.
  double breach_probability(const std::string& provider);
  void record_sla(const std::string& provider, const std::string& kind, bool breach);

private:
  std::mutex mu_;
  std::unique_ptr<predictor> predictor_ = std::make_unique<baseline_predictor>();
  std::vector<finished_job> history_;
  std::string model_path_;   ///< file of the model in use ("" = none)
  model_status model_;       ///< source, load error, retraining counters
  std::mutex retrain_mu_;    ///< one retraining at a time
  std::string epoch_;
  std::atomic<std::uint64_t> counter_{0};
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> sla_; ///< breaches, kept
  bool sla_loaded_ = false;
  std::optional<scoring_config> scoring_; ///< set at run time; else cfg.scoring
};

} // namespace tender

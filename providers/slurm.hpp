#pragma once
/// The slurm provider: a real Slurm cluster driven through its command-line tools
/// (provider_config kind "slurm"). Every answer comes from the cluster's own view:
///
///   bid      `sbatch --test-only` -> "Job N to start at T using P processors": the
///            offer's earliest start is Slurm's T, never a guess; the price is the
///            configured cost model (see below).
///   hold     `scontrol create reservation StartTime=T Duration=D Users=U CoreCnt=C`:
///            the capacity is held by Slurm itself (T is "now", or one second after
///            Slurm's planned start, since Slurm counts a job's last second as busy).
///            When Slurm refuses ("Requested nodes are busy") the commit is refused
///            with Slurm's words.
///   start    checks the lease token, then `sbatch --parsable --reservation=R` of a
///            script that wraps the job's command (env, argv); the job pends in Slurm
///            until the reservation begins.
///   poll     `scontrol show job` (state, exit code, start and end) and, while it
///            runs, `sstat` (CPU time, RSS, disk I/O) -> usage reports.
///   scale    a job still pending in Slurm: `scontrol update jobid=N NumCPUs=..
///            MinMemoryNode=..` within the reserved cores; refused otherwise (Slurm
///            cannot resize a running job, core reservations cannot grow).
///   release  `scancel` and `scontrol delete reservation`.
///   adopt    finds the job by name (`tender-<job id>`) and comment (the allocation
///            id), or the reservation (named after the allocation id).
///
/// One allocation's life:
///
///   bid ─> offer ──hold──> leased ──start(token)──> queued ──Slurm starts it──> running
///                            │  (reservation R)      (pending in R)                  │
///                            └─ lease expires: R deleted          ended: final report, R deleted
///
/// Price (exact, micro-dollars, rounded up): whole cores × price_per_core_hour +
/// GiB × price_per_gib_hour over the profile's runtime, at least `reserve_price`;
/// declined when above the request's max_cost. Slurm allocates whole cores, so the
/// offer grants ceil(cpu) cores and memory rounded up to a MiB.
///
/// Time limits: the job's is the runtime estimate (the profile's upper bound, else
/// its runtime, else one hour) plus a quarter, in whole minutes. The reservation
/// lasts the lease plus that limit plus a minute, so a job launched at the end of its
/// lease still fits; it is deleted as soon as the job ends or the lease lapses.
///
/// Every Slurm tool runs as a child process with `command_timeout`; a failure is an
/// error naming the command, its exit status and its stderr. No CAF, no ZeroMQ.

#include "providers/provider.hpp"
#include "providers/provider_config.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace tender {

/// What a finished child process said.
struct command_output {
  int exit_code = -1; ///< 128 + signal when killed by a signal
  std::string out;
  std::string err;
};

/// Runs `argv` (argv[0] a path, or a name looked up on PATH) with `env_extra` added
/// to this process's environment, stdin from /dev/null, and a deadline: past
/// `timeout` the child's process group is killed. Returns its output, or a message
/// ("`scontrol ping` did not finish within 10s") when it could not run to the end.
std::variant<command_output, std::string>
run_command(const std::vector<std::string>& argv,
            const std::map<std::string, std::string>& env_extra, usec timeout);

/// The Slurm tools with one cluster's SLURM_CONF and a deadline per call.
class slurm_cli {
public:
  slurm_cli(std::string slurm_conf, std::string bin_dir, usec timeout);

  /// Runs `tool args...`. Success is exit status 0; anything else is an error
  /// "`TOOL ARGS` failed (exit N): STDERR".
  std::variant<command_output, std::string> run(const std::string& tool,
                                                const std::vector<std::string>& args) const;
  const std::string& slurm_conf() const { return conf_; }

private:
  std::string conf_;
  std::string bin_dir_;
  usec timeout_;
};

namespace slurm_text {

/// Parses "2026-11-25T15:43:29" (the cluster's local time, as Slurm prints it).
bool parse_time(const std::string& text, usec& out);
/// Formats an instant the way Slurm reads it (local time, whole seconds).
std::string format_time(usec t);
/// "Job 12 to start at 2026-11-25T15:43:29 using 2 processors ..." -> that instant.
bool parse_test_only(const std::string& text, usec& start);
/// Slurm durations: "MM:SS", "MM:SS.mmm", "HH:MM:SS", "D-HH:MM:SS", "UNLIMITED" (false).
bool parse_duration(const std::string& text, usec& out);
/// Slurm sizes: "3252K", "1.00M", "15123", "2G" (K = 1024 bytes).
bool parse_size(const std::string& text, bytes_t& out);
/// `scontrol show ... --oneliner` as key -> value (the first of a repeated key wins).
std::map<std::string, std::string> key_values(const std::string& oneliner);
/// A POSIX shell word: 'it'\''s'.
std::string shell_quote(const std::string& word);

} // namespace slurm_text

class slurm_provider final : public provider {
public:
  /// Job scripts and their output live under `run_root/<job id>/`.
  slurm_provider(provider_config cfg, std::string run_root, token_source tokens = random_token,
                 usec lease_ttl = 600 * sec_us);
  ~slurm_provider() override;

  const std::string& name() const override { return cfg_.name; }
  const provider_config& config() const { return cfg_; }
  provider_hello describe() const override;
  provider_info info(usec now) const override;

  std::variant<offer, decline> bid(const resource_request& req, usec now) override;
  std::variant<commit_confirm, commit_refuse> hold(const award& a, usec now) override;
  void release(const tender::release& r, usec now) override;
  std::optional<error> start(const launch& l, usec now) override;
  std::vector<usage_report> poll(usec now) override;
  scale_offer scale(const scale_request& r, usec now) override;
  void stop(const std::string& job_id, const std::string& reason, usec now) override;
  std::optional<usage_report> adopt(const allocation& a, usec now) override;

  /// The reservation that holds an allocation: `tender_` + the id with every
  /// character Slurm would not take as `_`.
  static std::string reservation_name(const std::string& allocation_id);
  /// The Slurm job name of a tender job.
  static std::string job_name(const std::string& job_id);
  /// The Slurm job id of an allocation once launched ("" before, or unknown).
  std::string slurm_job_of(const std::string& allocation_id) const;
  /// Hourly cost of `r` (cores and GiB at the configured prices), rounded up.
  micros hourly_rate(const resources& r) const;

  static constexpr usec offer_validity = 10 * sec_us;
  static constexpr usec default_runtime = 3600 * sec_us;

private:
  enum class phase { leased, queued, running };

  struct offer_record {
    offer o;
    usec runtime = 0;
    std::int64_t minutes = 1; ///< the job's time limit
  };

  struct alloc_record {
    allocation alloc;
    phase state = phase::leased;
    std::string reservation;
    std::int64_t cores = 1;   ///< what the reservation holds
    std::int64_t minutes = 1; ///< the job's time limit
    usec runtime = 0;
    std::string slurm_job;
    usec started_at = 0;
    std::string end_reason; ///< why we cancelled it, for the final report
    double cpu_seconds = 0; ///< at the last sample
    usec cpu_at = 0;
  };

  void tidy(usec now);
  void forget(const std::string& allocation_id);
  alloc_record* find_alloc(const std::string& allocation_id);
  /// Deletes a reservation now, or keeps trying at each poll (it is in use until
  /// Slurm has finished the job in it).
  void drop_reservation(const std::string& name);
  void retry_reservation_drops();
  std::vector<std::string> sbatch_common(std::int64_t cores, bytes_t memory,
                                         std::int64_t minutes) const;
  /// Writes the job's script and `sbatch`es it into the reservation; an error or empty.
  std::optional<std::string> submit(alloc_record& rec, const launch& l);
  /// Queries one launched job; appends a usage report and returns true when it ended.
  bool observe(alloc_record& rec, usec now, std::vector<usage_report>& out);
  usage_report final_report(const alloc_record& rec, std::int32_t exit_code,
                            const std::string& reason, usec finished_at) const;

  provider_config cfg_;
  std::string run_root_;
  token_source tokens_;
  usec lease_ttl_;
  slurm_cli cli_;
  std::string user_;

  std::uint64_t counter_ = 0;
  std::string nonce_;
  std::int64_t offers_made_ = 0;
  std::int64_t wins_ = 0;
  usec last_query_ = 0;
  bool force_query_ = false;
  std::map<std::string, offer_record> offers_; // by offer id
  std::map<std::string, alloc_record> allocs_; // by allocation id
  std::map<std::string, std::string> alloc_of_offer_;
  std::map<std::string, std::pair<std::string, usec>> refused_; // offer id -> reason, until
  std::set<std::string> expired_;
  std::set<std::string> doomed_reservations_;
  std::vector<usage_report> queued_;
};

} // namespace tender

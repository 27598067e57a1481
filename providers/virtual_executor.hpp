#pragma once
/// An executor on virtual time, for replaying a trace through a live agent: the agent's
/// providers, plan and backfilling run unchanged on an injected clock while the jobs
/// "run" on that clock instead of as processes (a trace's jobs last hours or days).
///
/// A job's command must be `sleep SECONDS` (what a replay submits for a trace job of
/// that run time); it exits 0 at the first `poll(now)` with `now >= launched + SECONDS`.
/// Any other command is refused at launch, naming it. `kill` ends a job at the next
/// poll with the kill's reason. Each poll with a later `now` gives every running job one
/// sample: its CPU limit in use (all of it) and no memory. Nothing survives the
/// process: `adopt` finds nothing.
///
/// The executors of one replay share a `board` with the replay's driver, which reads
/// the next instant a job ends to know where virtual time goes next.
///
///   launch ──► running ──(now >= end | kill)──► exited (poll)

#include "providers/executor.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace tender {

class virtual_executor final : public executor {
public:
  /// Shared by the executors of a replay and its driver (thread-safe).
  class board {
  public:
    /// The earliest instant a running job ends (nullopt: nothing runs).
    std::optional<usec> next_end() const;
    std::size_t running() const;
    /// Jobs launched so far (a job launched again counts again).
    std::size_t launched() const;

  private:
    friend class virtual_executor;
    mutable std::mutex mu_;
    std::multimap<usec, std::string> ends_;
    std::size_t launched_ = 0;
  };

  explicit virtual_executor(std::shared_ptr<board> shared = std::make_shared<board>());
  ~virtual_executor() override;

  const std::shared_ptr<board>& shared() const { return board_; }

  std::string mode() const override { return "virtual"; }
  std::variant<exec_state, std::string> launch(const exec_request& req, usec now) override;
  std::variant<exec_state, exit_info, std::string> adopt(const std::string& job_id,
                                                         usec now) override;
  std::vector<exec_event> poll(usec now) override;
  bool set_limits(const std::string& job_id, const exec_limits& limits, std::string& why) override;
  void kill(const std::string& job_id, const std::string& reason, usec grace, usec now) override;
  bool running(const std::string& job_id) const override;
  std::vector<std::string> running_jobs() const override;
  std::string stdout_path(const std::string& job_id) const override;
  std::string stderr_path(const std::string& job_id) const override;

private:
  struct job {
    usec started = 0;
    usec end = 0;
    usec last_sample = 0;
    exec_limits limits;
    std::string kill_reason; ///< non-empty once killed
  };
  void unlist(const std::string& job_id, usec end); ///< off the board
  std::shared_ptr<board> board_;
  std::map<std::string, job> jobs_;
};

/// Seconds of a `sleep SECONDS` command (a whole or decimal number, as sleep(1) takes
/// it without a suffix), or why the command is not one.
std::variant<usec, std::string> virtual_sleep_of(const std::vector<std::string>& argv);

} // namespace tender

#pragma once
/// Test harness: real `tender` processes, temporary directories, polling helpers.

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace tender::test {

/// The `tender` binary under test ($TENDER_BIN, else the build's).
std::string tender_bin();
/// The source tree ($TENDER_SOURCE_DIR, else the configured one).
std::string source_dir();

/// A fresh directory under /tmp, removed at destruction.
struct temp_dir {
  temp_dir();
  ~temp_dir();
  std::string path;
  std::string file(const std::string& name, const std::string& content) const;
};

struct result {
  int code = -1;
  std::string out;
  std::string err;
};

/// Runs `tender ARGS...` to completion.
result run(const std::vector<std::string>& args);

/// A background process whose stdout/stderr go to files.
class process {
public:
  process(const std::vector<std::string>& argv, const std::string& log_dir, const std::string& tag);
  ~process(); ///< SIGKILLs it if still running
  process(const process&) = delete;
  int pid() const { return pid_; }
  void signal(int sig);
  /// Waits for exit; returns the exit status (128+signal when killed), -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  std::string out() const;
  std::string err() const;
  bool alive();

private:
  int pid_ = -1;
  int status_ = -1;
  bool reaped_ = false;
  std::string out_path_, err_path_;
};

/// Polls `pred` every 50 ms until true or `timeout`; returns its last value.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

/// A running `tender agent`: started with `args` plus --listen on a free port.
class agent {
public:
  agent(const std::string& data_dir, std::vector<std::string> args = {"--dev"});
  ~agent();
  const std::string& endpoint() const { return endpoint_; }
  process& proc() { return *proc_; }
  /// `tender SUBCOMMAND ... --connect EP --json`, parsed.
  nlohmann::json cli_json(std::vector<std::string> args);
  result cli(std::vector<std::string> args);
  /// Submits a job file and returns its id.
  std::string submit(const std::string& job_file);
  /// Waits until the job reaches a final state; returns its status JSON.
  nlohmann::json wait_final(const std::string& id, std::chrono::milliseconds timeout);

private:
  std::string data_dir_;
  std::string endpoint_;
  std::unique_ptr<process> proc_;
};

} // namespace tender::test

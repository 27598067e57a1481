#pragma once
/// `tender profile JOB.toml [--json] [--budget 10s]`: the profile stage run locally, no
/// node needed — static analysis of the job's command, the sandboxed profile run, the
/// statistics extrapolated to the full run and the baseline predictor's runtime — printed
/// with the evidence behind every finding.

#include <string>

namespace tender {

struct profile_args {
  std::string job_file;
  bool json = false;
  std::string budget;   ///< overrides the job's `profile.budget` ("10s"); empty: keep it
  std::string data_dir; ///< where the run directory goes (default: a temporary dir, removed)
  std::string cache;    ///< a profile cache directory (a node's is DATA_DIR/profile-cache); empty: none
};

/// Exit codes: 0 profiled (a partial profile included: its findings say why), 2 bad job
/// file or arguments, 1 the sandbox could not be set up at all.
int run_profile_cmd(const profile_args& a);

} // namespace tender

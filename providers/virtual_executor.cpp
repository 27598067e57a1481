#include "providers/virtual_executor.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace tender {

std::optional<usec> virtual_executor::board::next_end() const {
  std::lock_guard<std::mutex> g(mu_);
  if (ends_.empty())
    return std::nullopt;
  return ends_.begin()->first;
}

std::size_t virtual_executor::board::running() const {
  std::lock_guard<std::mutex> g(mu_);
  return ends_.size();
}

std::size_t virtual_executor::board::launched() const {
  std::lock_guard<std::mutex> g(mu_);
  return launched_;
}

std::variant<usec, std::string> virtual_sleep_of(const std::vector<std::string>& argv) {
  auto quoted = [&] {
    std::string s;
    for (auto& a : argv)
      s += (s.empty() ? "" : " ") + a;
    return "`" + s + "`";
  };
  if (argv.size() != 2 || argv[0] != "sleep")
    return "the virtual executor runs only `sleep SECONDS`, not " + quoted();
  const char* text = argv[1].c_str();
  char* end = nullptr;
  errno = 0;
  double s = std::strtod(text, &end);
  if (end == text || *end != '\0' || errno != 0 || !std::isfinite(s) || s < 0 || s > 1e12)
    return "the virtual executor runs only `sleep SECONDS`: `" + argv[1] +
           "` is not a number of seconds";
  return static_cast<usec>(std::llround(s * 1e6));
}

virtual_executor::virtual_executor(std::shared_ptr<board> shared) : board_(std::move(shared)) {
  if (!board_)
    board_ = std::make_shared<board>();
}

virtual_executor::~virtual_executor() {
  for (auto& [id, j] : jobs_)
    unlist(id, j.end);
}

void virtual_executor::unlist(const std::string& job_id, usec end) {
  std::lock_guard<std::mutex> g(board_->mu_);
  for (auto [it, last] = board_->ends_.equal_range(end); it != last; ++it)
    if (it->second == job_id) {
      board_->ends_.erase(it);
      return;
    }
}

std::variant<exec_state, std::string> virtual_executor::launch(const exec_request& req, usec now) {
  if (req.job_id.empty())
    return std::string("launch: empty job id");
  if (jobs_.count(req.job_id))
    return "launch: job " + req.job_id + " is already running";
  auto s = virtual_sleep_of(req.argv);
  if (auto* why = std::get_if<std::string>(&s))
    return "launch " + req.job_id + ": " + *why;
  job j;
  j.started = now;
  j.end = now + std::get<usec>(s);
  j.last_sample = now;
  j.limits = req.limits;
  {
    std::lock_guard<std::mutex> g(board_->mu_);
    board_->ends_.emplace(j.end, req.job_id);
    ++board_->launched_;
  }
  jobs_.emplace(req.job_id, j);
  exec_state st;
  st.job_id = req.job_id;
  st.started_at = now;
  st.limits = req.limits;
  st.mode = mode();
  return st;
}

std::variant<exec_state, exit_info, std::string> virtual_executor::adopt(const std::string& job_id,
                                                                         usec) {
  return "adopt " + job_id + ": a virtual job does not outlive the process that ran it";
}

std::vector<exec_event> virtual_executor::poll(usec now) {
  std::vector<exec_event> out;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    auto& [id, j] = *it;
    exec_event ev;
    ev.job_id = id;
    if (!j.kill_reason.empty() || now >= j.end) {
      exit_info x;
      if (j.kill_reason.empty()) {
        x.exit_code = 0;
        x.reason = "exited 0";
        x.finished_at = j.end;
      } else {
        x.exit_code = -1;
        x.signal = 9;
        x.reason = j.kill_reason;
        x.finished_at = now;
      }
      ev.exited = x;
      unlist(id, j.end);
      out.push_back(std::move(ev));
      it = jobs_.erase(it);
      continue;
    }
    if (now > j.last_sample) {
      usage_sample s;
      s.at = now;
      s.cpu = j.limits.cpu;
      s.threads = 1;
      j.last_sample = now;
      ev.sample = s;
      out.push_back(std::move(ev));
    }
    ++it;
  }
  return out;
}

bool virtual_executor::set_limits(const std::string& job_id, const exec_limits& limits,
                                  std::string& why) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    why = "job " + job_id + " is not running";
    return false;
  }
  it->second.limits = limits;
  return true;
}

void virtual_executor::kill(const std::string& job_id, const std::string& reason, usec, usec) {
  auto it = jobs_.find(job_id);
  if (it != jobs_.end() && it->second.kill_reason.empty())
    it->second.kill_reason = reason.empty() ? "killed" : reason;
}

bool virtual_executor::running(const std::string& job_id) const {
  return jobs_.count(job_id) > 0;
}

std::vector<std::string> virtual_executor::running_jobs() const {
  std::vector<std::string> v;
  for (auto& [id, j] : jobs_)
    v.push_back(id);
  return v;
}

std::string virtual_executor::stdout_path(const std::string&) const {
  return {};
}

std::string virtual_executor::stderr_path(const std::string&) const {
  return {};
}

} // namespace tender

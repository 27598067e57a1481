#include "tests/harness.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace tender::test {

namespace fs = std::filesystem;

std::string tender_bin() {
  if (auto* b = std::getenv("TENDER_BIN"))
    return b;
  return TENDER_BIN_DEFAULT;
}

std::string source_dir() {
  if (auto* s = std::getenv("TENDER_SOURCE_DIR"))
    return s;
  return TENDER_SOURCE_DIR;
}

temp_dir::temp_dir() {
  char tmpl[] = "/tmp/tender-test-XXXXXX";
  path = mkdtemp(tmpl);
}

temp_dir::~temp_dir() {
  std::error_code ec;
  if (!std::getenv("TENDER_KEEP_TEST_DIRS"))
    fs::remove_all(path, ec);
}

std::string temp_dir::file(const std::string& name, const std::string& content) const {
  auto p = path + "/" + name;
  fs::create_directories(fs::path(p).parent_path());
  std::ofstream(p) << content;
  return p;
}

static std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

process::process(const std::vector<std::string>& argv, const std::string& log_dir,
                 const std::string& tag) {
  static int counter = 0;
  ++counter;
  out_path_ = log_dir + "/" + tag + "-" + std::to_string(counter) + ".out";
  err_path_ = log_dir + "/" + tag + "-" + std::to_string(counter) + ".err";
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(args[0], args.data());
    _exit(127);
  }
}

process::~process() {
  if (alive()) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(10));
  }
}

void process::signal(int sig) { ::kill(pid_, sig); }

bool process::alive() {
  if (reaped_ || pid_ <= 0)
    return false;
  int st = 0;
  auto r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

int process::wait(std::chrono::milliseconds timeout) {
  eventually([this] { return !alive(); }, timeout);
  return reaped_ ? status_ : -1;
}

std::string process::out() const { return slurp(out_path_); }
std::string process::err() const { return slurp(err_path_); }

result run(const std::vector<std::string>& args) {
  temp_dir logs;
  std::vector<std::string> argv{tender_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  process p(argv, logs.path, "run");
  result r;
  r.code = p.wait(std::chrono::seconds(120));
  r.out = p.out();
  r.err = p.err();
  return r;
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() > end)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

agent::agent(const std::string& data_dir, std::vector<std::string> args) : data_dir_(data_dir) {
  // --insecure: the tests' agents listen on loopback, in plaintext unless their config
  // has a [security] key (then CurveZMQ applies and --insecure changes nothing).
  std::vector<std::string> argv{tender_bin(), "agent", "--data-dir", data_dir, "--listen",
                                "tcp://127.0.0.1:*", "--insecure"};
  argv.insert(argv.end(), args.begin(), args.end());
  fs::create_directories(data_dir);
  proc_ = std::make_unique<process>(argv, data_dir, "agent");
  bool up = eventually(
    [this] {
      auto out = proc_->out();
      auto at = out.find("listening on ");
      if (at == std::string::npos)
        return false;
      auto end = out.find(',', at);
      endpoint_ = out.substr(at + 13, end - at - 13);
      return true;
    },
    std::chrono::seconds(30));
  if (!up)
    ADD_FAILURE() << "agent did not start: " << proc_->err();
}

agent::~agent() {
  if (proc_ && proc_->alive()) {
    proc_->signal(SIGTERM);
    if (proc_->wait(std::chrono::seconds(10)) < 0)
      proc_->signal(SIGKILL);
  }
}

result agent::cli(std::vector<std::string> args) {
  args.push_back("--connect");
  args.push_back(endpoint_);
  return run(args);
}

nlohmann::json agent::cli_json(std::vector<std::string> args) {
  args.push_back("--json");
  auto r = cli(args);
  if (r.code != 0)
    return nlohmann::json{{"cli_error", r.err}, {"cli_code", r.code}};
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    return nlohmann::json{{"cli_error", std::string("bad JSON: ") + e.what() + ": " + r.out}};
  }
}

std::string agent::submit(const std::string& job_file) {
  auto j = cli_json({"submit", job_file});
  if (!j.contains("id")) {
    ADD_FAILURE() << "submit failed: " << j.dump();
    return {};
  }
  return j["id"].get<std::string>();
}

nlohmann::json agent::wait_final(const std::string& id, std::chrono::milliseconds timeout) {
  nlohmann::json last;
  eventually(
    [&] {
      last = cli_json({"status", id});
      if (!last.contains("state"))
        return false;
      auto s = last["state"].get<std::string>();
      return s == "done" || s == "failed" || s == "refused" || s == "cancelled";
    },
    timeout);
  return last;
}

} // namespace tender::test

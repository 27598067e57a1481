#include "providers/slurm.hpp"

#include "providers/leasing.hpp" // same_token
#include "providers/local.hpp"   // on_path

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace tender {

namespace {

__extension__ using i128 = __int128;

constexpr bytes_t mib = bytes_t{1} << 20;
constexpr i128 gib = i128{1} << 30;
constexpr i128 hour_us = i128{3600} * sec_us;
constexpr usec minute_us = 60 * sec_us;

micros ceil_div(i128 num, i128 den) {
  if (num <= 0)
    return static_cast<micros>(num / den);
  return static_cast<micros>((num + den - 1) / den);
}

usec steady_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

std::string join_words(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv)
    s += (s.empty() ? "" : " ") + a;
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
    ++i;
  return s.substr(i);
}

/// The last non-empty line, which is where Slurm's tools put the reason.
std::string last_line(const std::string& text) {
  std::string t = trim(text);
  auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

std::string resolve_program(const std::string& name) {
  if (name.find('/') != std::string::npos)
    return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos)
      end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string p = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0)
      return p;
    start = end + 1;
  }
  return {};
}

std::int64_t whole_cores(millicores cpu) { return std::max<std::int64_t>(1, (cpu + 999) / 1000); }

bytes_t whole_mib(bytes_t memory) { return memory <= 0 ? 0 : (memory + mib - 1) / mib * mib; }

bool valid_env_name(const std::string& n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0])))
    return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string safe_name(const std::string& s) {
  std::string out = s;
  for (auto& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      c = '_';
  return out;
}

std::string first_word(const std::string& s) {
  auto sp = s.find(' ');
  return sp == std::string::npos ? s : s.substr(0, sp);
}

error launch_error(std::string code, std::string message, std::string field) {
  error e;
  e.code = std::move(code);
  e.message = std::move(message);
  e.type = "launch";
  e.field = std::move(field);
  return e;
}

std::string this_user() {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found)
    return found->pw_name;
  return std::to_string(::geteuid());
}

} // namespace

// ---------------------------------------------------------------------------------------
// Child processes

std::variant<command_output, std::string>
run_command(const std::vector<std::string>& argv,
            const std::map<std::string, std::string>& env_extra, usec timeout) {
  const std::string what = "`" + join_words(argv) + "`";
  if (argv.empty())
    return std::string("an empty command");
  const std::string path = resolve_program(argv[0]);
  if (path.empty())
    return what + ": " + argv[0] + " is not on PATH";

  // Everything the child needs is built before fork: after it only syscalls.
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    if (!env_extra.count(kv.substr(0, kv.find('='))))
      env.push_back(std::move(kv));
  }
  for (const auto& [k, v] : env_extra)
    env.push_back(k + "=" + v);
  std::vector<char*> args, envp;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0)
    return what + ": pipe: " + std::strerror(errno);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return what + ": pipe: " + std::strerror(errno);
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
      ::close(fd);
    return what + ": fork: " + std::strerror(errno);
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0)
      ::dup2(in, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::close_range(3, ~0u, 0);
    ::execve(path.c_str(), args.data(), envp.data());
    _exit(127);
  }
  ::setpgid(pid, pid); // also in the parent: whichever runs first
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  command_output result;
  const usec deadline = steady_now() + timeout;
  bool timed_out = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    const usec left = deadline - steady_now();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(std::min<usec>(left / 1000 + 1, 1000)));
    if (n < 0 && errno != EINTR)
      break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0)
      ::close(f.fd);

  // Both pipes are closed (or the deadline passed): reap, killing it at the deadline.
  int status = 0;
  while (true) {
    if (timed_out) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
    pid_t r = ::waitpid(pid, &status, timed_out ? 0 : WNOHANG);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR)
      return what + ": waitpid: " + std::strerror(errno);
    if (r == 0 && steady_now() >= deadline)
      timed_out = true;
    else if (r == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (timed_out) {
    ::kill(-pid, SIGKILL); // anything it left behind in its group
    auto err = trim(result.err);
    return what + " did not finish within " + format_duration(timeout) +
           (err.empty() ? std::string() : " (stderr: " + err + ")");
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (result.exit_code == 127 && result.out.empty() && result.err.empty())
    return what + ": could not execute " + path;
  return result;
}

slurm_cli::slurm_cli(std::string slurm_conf, std::string bin_dir, usec timeout)
    : conf_(std::move(slurm_conf)), bin_dir_(std::move(bin_dir)), timeout_(timeout) {}

std::variant<command_output, std::string>
slurm_cli::run(const std::string& tool, const std::vector<std::string>& args) const {
  std::vector<std::string> argv{bin_dir_.empty() ? tool : bin_dir_ + "/" + tool};
  argv.insert(argv.end(), args.begin(), args.end());
  std::map<std::string, std::string> env;
  if (!conf_.empty())
    env["SLURM_CONF"] = conf_;
  auto r = run_command(argv, env, timeout_);
  if (auto* o = std::get_if<command_output>(&r); o && o->exit_code != 0) {
    std::string err = trim(o->err);
    if (err.empty())
      err = trim(o->out);
    return "`" + tool + " " + join_words(args) + "` failed (exit " +
           std::to_string(o->exit_code) + ")" + (err.empty() ? "" : ": " + err);
  }
  return r;
}

// ---------------------------------------------------------------------------------------
// Slurm's text

namespace slurm_text {

bool parse_time(const std::string& text, usec& out) {
  std::tm tm{};
  char tail = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &tail) != 6)
    return false;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  std::time_t t = std::mktime(&tm);
  if (t == static_cast<std::time_t>(-1))
    return false;
  out = static_cast<usec>(t) * sec_us;
  return true;
}

std::string format_time(usec t) {
  std::time_t s = static_cast<std::time_t>(t / sec_us);
  std::tm tm{};
  ::localtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

bool parse_test_only(const std::string& text, usec& start) {
  const std::string marker = " to start at ";
  auto at = text.find(marker);
  if (at == std::string::npos)
    return false;
  auto from = at + marker.size();
  auto end = text.find_first_of(" \n", from);
  return parse_time(text.substr(from, end == std::string::npos ? std::string::npos : end - from),
                    start);
}

bool parse_duration(const std::string& text, usec& out) {
  std::string t = trim(text);
  if (t.empty())
    return false;
  std::int64_t days = 0;
  if (auto dash = t.find('-'); dash != std::string::npos) {
    char* end = nullptr;
    days = std::strtoll(t.c_str(), &end, 10);
    if (end != t.c_str() + dash || days < 0)
      return false;
    t = t.substr(dash + 1);
  }
  std::vector<std::string> parts;
  std::stringstream ss(t);
  for (std::string p; std::getline(ss, p, ':');)
    parts.push_back(p);
  if (parts.empty() || parts.size() > 3)
    return false;
  // The last part holds seconds (maybe with a fraction); before it minutes, hours.
  double secs = 0;
  {
    char* end = nullptr;
    secs = std::strtod(parts.back().c_str(), &end);
    if (parts.back().empty() || *end != '\0' || secs < 0)
      return false;
  }
  std::int64_t mult = 60, whole = 0;
  for (auto it = parts.rbegin() + 1; it != parts.rend(); ++it, mult *= 60) {
    char* end = nullptr;
    long long v = std::strtoll(it->c_str(), &end, 10);
    if (it->empty() || *end != '\0' || v < 0)
      return false;
    whole += v * mult;
  }
  out = (days * 86400 + whole) * sec_us + static_cast<usec>(std::llround(secs * 1e6));
  return true;
}

bool parse_size(const std::string& text, bytes_t& out) {
  std::string t = trim(text);
  if (t.empty())
    return false;
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (end == t.c_str() || v < 0)
    return false;
  double mult = 1;
  std::string suffix(end);
  if (suffix.size() > 1)
    return false;
  if (!suffix.empty()) {
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
    case 'K': mult = 1024.0; break;
    case 'M': mult = 1024.0 * 1024; break;
    case 'G': mult = 1024.0 * 1024 * 1024; break;
    case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
    default: return false;
    }
  }
  out = static_cast<bytes_t>(std::llround(v * mult));
  return true;
}

std::map<std::string, std::string> key_values(const std::string& oneliner) {
  std::map<std::string, std::string> kv;
  std::istringstream in(oneliner);
  std::string word, last_key;
  bool last_kept = false;
  while (in >> word) {
    auto eq = word.find('=');
    if (eq == std::string::npos || eq == 0) {
      if (last_kept) // a value with spaces in it
        kv[last_key] += " " + word;
      continue;
    }
    last_key = word.substr(0, eq);
    last_kept = kv.emplace(last_key, word.substr(eq + 1)).second;
  }
  return kv;
}

std::string shell_quote(const std::string& word) {
  std::string q = "'";
  for (char c : word) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

} // namespace slurm_text

// ---------------------------------------------------------------------------------------
// The provider

slurm_provider::slurm_provider(provider_config cfg, std::string run_root, token_source tokens,
                               usec lease_ttl)
    : cfg_(std::move(cfg)), run_root_(std::move(run_root)), tokens_(std::move(tokens)),
      lease_ttl_(lease_ttl), cli_(cfg_.slurm_conf, cfg_.slurm_bin_dir, cfg_.command_timeout),
      user_(cfg_.reservation_user.empty() ? this_user() : cfg_.reservation_user),
      nonce_(random_token().substr(0, 6)) {
  if (!tokens_)
    tokens_ = random_token;
  if (cfg_.kind.empty())
    cfg_.kind = "slurm";
}

slurm_provider::~slurm_provider() = default;

std::string slurm_provider::reservation_name(const std::string& allocation_id) {
  return "tender_" + safe_name(allocation_id);
}

std::string slurm_provider::job_name(const std::string& job_id) {
  return "tender-" + safe_name(job_id);
}

std::string slurm_provider::slurm_job_of(const std::string& allocation_id) const {
  auto it = allocs_.find(allocation_id);
  return it == allocs_.end() ? std::string() : it->second.slurm_job;
}

provider_hello slurm_provider::describe() const {
  provider_hello h;
  h.name = cfg_.name;
  h.kind = "slurm";
  h.software = cfg_.software;
  h.cpu_features = cfg_.cpu_features;
  h.protocols = {protocols::iterated, protocols::vickrey};
  h.capacity = cfg_.capacity;
  return h;
}

provider_info slurm_provider::info(usec) const {
  provider_info i;
  i.name = cfg_.name;
  i.kind = "slurm";
  i.capacity = cfg_.capacity;
  i.free = cfg_.capacity;
  for (const auto& [id, rec] : allocs_) {
    i.free.cpu = std::max<millicores>(0, i.free.cpu - rec.alloc.granted.cpu);
    i.free.memory = std::max<bytes_t>(0, i.free.memory - rec.alloc.granted.memory);
  }
  i.offers = offers_made_;
  i.wins = wins_;
  return i;
}

micros slurm_provider::hourly_rate(const resources& r) const {
  const i128 scaled = i128{r.cpu} * cfg_.price_per_core_hour * gib +
                      i128{r.memory} * cfg_.price_per_gib_hour * 1000;
  return ceil_div(scaled, 1000 * gib);
}

std::vector<std::string> slurm_provider::sbatch_common(std::int64_t cores, bytes_t memory,
                                                       std::int64_t minutes) const {
  std::vector<std::string> a;
  if (!cfg_.partition.empty())
    a.push_back("--partition=" + cfg_.partition);
  if (!cfg_.account.empty())
    a.push_back("--account=" + cfg_.account);
  a.push_back("--nodes=1");
  a.push_back("--ntasks=1");
  a.push_back("--cpus-per-task=" + std::to_string(cores));
  if (memory > 0)
    a.push_back("--mem=" + std::to_string(memory / mib) + "M");
  a.push_back("--time=" + std::to_string(minutes));
  return a;
}

void slurm_provider::tidy(usec now) {
  std::vector<std::string> lapsed;
  for (const auto& [id, rec] : allocs_)
    if (rec.state == phase::leased && now >= rec.alloc.lease_expires)
      lapsed.push_back(id);
  for (const auto& id : lapsed) {
    drop_reservation(allocs_.at(id).reservation);
    forget(id);
    expired_.insert(id);
  }
  if (expired_.size() > 4096)
    expired_.clear();
  for (auto it = offers_.begin(); it != offers_.end();)
    it = it->second.o.valid_until < now ? offers_.erase(it) : std::next(it);
  for (auto it = refused_.begin(); it != refused_.end();)
    it = it->second.second < now ? refused_.erase(it) : std::next(it);
}

void slurm_provider::forget(const std::string& allocation_id) {
  auto it = allocs_.find(allocation_id);
  if (it == allocs_.end())
    return;
  alloc_of_offer_.erase(it->second.alloc.offer_id);
  allocs_.erase(it);
}

slurm_provider::alloc_record* slurm_provider::find_alloc(const std::string& allocation_id) {
  auto it = allocs_.find(allocation_id);
  return it == allocs_.end() ? nullptr : &it->second;
}

void slurm_provider::drop_reservation(const std::string& name) {
  if (name.empty())
    return;
  auto r = cli_.run("scontrol", {"delete", "reservation", name});
  if (auto* e = std::get_if<std::string>(&r)) {
    // Already gone is done; anything else (in use, controller busy) is tried again.
    if (e->find("Invalid reservation name") == std::string::npos &&
        e->find("Requested reservation is invalid") == std::string::npos)
      doomed_reservations_.insert(name);
    return;
  }
  doomed_reservations_.erase(name);
}

void slurm_provider::retry_reservation_drops() {
  std::set<std::string> names;
  names.swap(doomed_reservations_);
  for (const auto& n : names)
    drop_reservation(n);
}

std::variant<offer, decline> slurm_provider::bid(const resource_request& req, usec now) {
  tidy(now);
  auto no = [&](std::string reason) {
    decline d;
    d.job_id = req.job_id;
    d.auction_id = req.auction_id;
    d.provider = cfg_.name;
    d.reason = std::move(reason);
    return d;
  };
  const resources& want = req.request;
  if (want.gpus > 0)
    return no("no GPU of type " + (want.gpu_type.empty() ? std::string("any") : want.gpu_type) +
              " (this provider asks Slurm for CPUs and memory only)");
  for (const auto& s : req.software) {
    bool ok = cfg_.software.empty()
                ? on_path(s)
                : std::find(cfg_.software.begin(), cfg_.software.end(), s) != cfg_.software.end();
    if (!ok)
      return no("software " + s + " not installed");
  }
  const std::int64_t cores = whole_cores(want.cpu);
  const bytes_t memory = whole_mib(want.memory);
  if (cfg_.capacity.cpu > 0 && cores * 1000 > cfg_.capacity.cpu)
    return no("not enough cores: want " + std::to_string(cores) + ", at most " +
              format_cores(cfg_.capacity.cpu) + " per job");
  if (cfg_.capacity.memory > 0 && memory > cfg_.capacity.memory)
    return no("not enough memory: want " + format_bytes(memory) + ", at most " +
              format_bytes(cfg_.capacity.memory) + " per job");

  const usec runtime = req.profile.runtime > 0 ? req.profile.runtime : default_runtime;
  const usec estimate = std::max(runtime, req.profile.runtime_hi);
  const std::int64_t minutes =
    std::max<std::int64_t>(1, (estimate + estimate / 4 + minute_us - 1) / minute_us);

  auto args = sbatch_common(cores, memory, minutes);
  args.insert(args.begin(), "--test-only");
  args.push_back("--job-name=" + job_name(req.job_id));
  args.push_back("--output=/dev/null");
  args.push_back("--wrap=true");
  auto r = cli_.run("sbatch", args);
  if (auto* e = std::get_if<std::string>(&r))
    return no("Slurm cannot place it: " + *e);
  const auto& o = std::get<command_output>(r);
  usec start = 0;
  if (!slurm_text::parse_test_only(o.err + "\n" + o.out, start))
    return no("Slurm gave no start time: `sbatch --test-only` said '" +
              last_line(o.err + "\n" + o.out) + "'");

  offer of;
  of.granted.cpu = cores * 1000;
  of.granted.memory = memory;
  const micros cost = ceil_div(i128{hourly_rate(of.granted)} * runtime, hour_us);
  of.price = std::max(cost, cfg_.reserve_price);
  if (req.max_cost > 0 && of.price > req.max_cost)
    return no("price " + format_usd(of.price) + " USD above max_cost " +
              format_usd(req.max_cost) + " USD");
  of.rate_per_hour = ceil_div(i128{of.price} * hour_us, runtime);
  of.earliest_start = std::max(start, now);
  of.terms.availability = cfg_.availability;
  of.terms.preemption_probability = 0.0;
  of.terms.latency = cfg_.latency;
  of.instance_type = cfg_.partition.empty() ? "slurm" : "slurm:" + cfg_.partition;

  of.offer_id = req.job_id + "/" + cfg_.name + "/r" + std::to_string(req.round) + "/" + nonce_ +
                "-" + std::to_string(++counter_);
  of.job_id = req.job_id;
  of.auction_id = req.auction_id;
  of.round = req.round;
  of.provider = cfg_.name;
  of.valid_until = std::max(now, req.reply_by) + offer_validity;
  ++offers_made_;
  auto& rec = offers_[of.offer_id];
  rec.o = of;
  rec.runtime = runtime;
  rec.minutes = minutes;
  return of;
}

std::variant<commit_confirm, commit_refuse> slurm_provider::hold(const award& a, usec now) {
  tidy(now);
  auto refuse = [&](std::string reason) {
    commit_refuse r;
    r.offer_id = a.offer_id;
    r.job_id = a.job_id;
    r.provider = cfg_.name;
    r.reason = std::move(reason);
    return r;
  };
  if (auto it = alloc_of_offer_.find(a.offer_id); it != alloc_of_offer_.end()) {
    const alloc_record& rec = allocs_.at(it->second);
    return commit_confirm{a.offer_id, rec.alloc.job_id, rec.alloc};
  }
  if (auto it = refused_.find(a.offer_id); it != refused_.end())
    return refuse(it->second.first);
  auto it = offers_.find(a.offer_id);
  if (it == offers_.end())
    return refuse("unknown or expired offer " + a.offer_id);
  const offer& o = it->second.o;
  if (!a.job_id.empty() && a.job_id != o.job_id)
    return refuse("offer " + a.offer_id + " was made for job " + o.job_id);
  if (a.price > 0 && a.price < o.price)
    return refuse("award price " + format_usd(a.price) + " USD is below the offered " +
                  format_usd(o.price) + " USD");

  alloc_record rec;
  rec.alloc.allocation_id = o.offer_id + "/a";
  rec.alloc.job_id = o.job_id;
  rec.alloc.offer_id = o.offer_id;
  rec.alloc.provider = cfg_.name;
  rec.alloc.granted = o.granted;
  rec.alloc.price = a.price > 0 ? a.price : o.price;
  rec.alloc.rate_per_hour = o.rate_per_hour;
  rec.alloc.terms = o.terms;
  rec.alloc.instance_type = o.instance_type;
  rec.alloc.lease_expires = now + lease_ttl_;
  // Slurm counts a running job's end second as busy: a reservation that begins where a
  // job's time limit ends starts one second later.
  rec.alloc.start_at = o.earliest_start > now + sec_us ? o.earliest_start + sec_us : now;
  rec.reservation = reservation_name(rec.alloc.allocation_id);
  rec.cores = whole_cores(o.granted.cpu);
  rec.minutes = it->second.minutes;
  rec.runtime = it->second.runtime;

  // Long enough for a job launched at the very end of its lease to run its time limit.
  const usec span = std::max<usec>(0, rec.alloc.lease_expires - rec.alloc.start_at) +
                    rec.minutes * minute_us + minute_us;
  const std::int64_t duration = (span + minute_us - 1) / minute_us;
  std::vector<std::string> args{
    "create",
    "reservation",
    "ReservationName=" + rec.reservation,
    "StartTime=" + (rec.alloc.start_at == now ? std::string("now")
                                              : slurm_text::format_time(rec.alloc.start_at)),
    "Duration=" + std::to_string(duration),
    "Users=" + user_,
    "CoreCnt=" + std::to_string(rec.cores)};
  if (!cfg_.partition.empty())
    args.push_back("PartitionName=" + cfg_.partition);
  auto r = cli_.run("scontrol", args);
  if (auto* e = std::get_if<std::string>(&r)) {
    std::string why = "Slurm refused the reservation: " + *e;
    refused_[a.offer_id] = {why, o.valid_until};
    return refuse(why);
  }

  rec.alloc.lease_token = tokens_();
  const std::string id = rec.alloc.allocation_id;
  alloc_of_offer_[o.offer_id] = id;
  offers_.erase(it);
  ++wins_;
  auto& stored = allocs_.emplace(id, std::move(rec)).first->second;
  return commit_confirm{a.offer_id, stored.alloc.job_id, stored.alloc};
}

void slurm_provider::release(const tender::release& r, usec now) {
  std::string id = r.allocation_id;
  if (id.empty())
    if (auto it = alloc_of_offer_.find(r.offer_id); it != alloc_of_offer_.end())
      id = it->second;
  alloc_record* rec = id.empty() ? nullptr : find_alloc(id);
  if (!rec) {
    if (!r.offer_id.empty())
      offers_.erase(r.offer_id);
    return;
  }
  if (!rec->slurm_job.empty())
    cli_.run("scancel", {rec->slurm_job}); // a job that already ended is not an error here
  if (rec->state == phase::running) {
    // Its final report (cancelled) comes from poll, which then deletes the reservation.
    if (rec->end_reason.empty())
      rec->end_reason = "released" + (r.reason.empty() ? "" : ": " + r.reason);
    force_query_ = true;
    return;
  }
  (void)now;
  drop_reservation(rec->reservation);
  forget(id);
}

std::optional<std::string> slurm_provider::submit(alloc_record& rec, const launch& l) {
  namespace fs = std::filesystem;
  if (l.spec.command.empty())
    return std::string("the job has no command");
  const fs::path dir = fs::path(run_root_) / safe_name(rec.alloc.job_id);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return "cannot create " + dir.string() + ": " + ec.message();

  std::ostringstream script;
  script << "#!/bin/sh\n# tender job " << rec.alloc.job_id << ", allocation "
         << rec.alloc.allocation_id << "\n";
  for (const auto& [k, v] : l.spec.env) {
    if (!valid_env_name(k))
      return "environment variable name '" + k + "' is not a shell name";
    script << "export " << k << "=" << slurm_text::shell_quote(v) << "\n";
  }
  script << "exec";
  for (const auto& w : l.spec.command)
    script << " " << slurm_text::shell_quote(w);
  script << "\n";
  const fs::path script_path = dir / "job.sh";
  {
    std::ofstream f(script_path, std::ios::trunc);
    f << script.str();
    if (!f)
      return "cannot write " + script_path.string();
  }
  fs::permissions(script_path, fs::perms::owner_all, fs::perm_options::replace, ec);

  auto args = sbatch_common(rec.cores, rec.alloc.granted.memory, rec.minutes);
  args.insert(args.begin(), {"--parsable", "--reservation=" + rec.reservation,
                             "--job-name=" + job_name(rec.alloc.job_id),
                             "--comment=" + rec.alloc.allocation_id});
  args.push_back("--chdir=" + (l.spec.workdir.empty() ? dir.string() : l.spec.workdir));
  args.push_back("--output=" + (dir / "stdout").string());
  args.push_back("--error=" + (dir / "stderr").string());
  args.push_back(script_path.string());
  auto r = cli_.run("sbatch", args);
  if (auto* e = std::get_if<std::string>(&r))
    return *e;
  std::string out = trim(std::get<command_output>(r).out);
  out = out.substr(0, out.find(';'));
  if (out.empty() || !std::all_of(out.begin(), out.end(), [](char c) { return std::isdigit(
                                                                 static_cast<unsigned char>(c)); }))
    return "`sbatch --parsable` printed no job id: '" + out + "'";
  rec.slurm_job = out;
  return std::nullopt;
}

std::optional<error> slurm_provider::start(const launch& l, usec now) {
  alloc_record* rec = find_alloc(l.allocation_id);
  if (!rec) {
    if (expired_.count(l.allocation_id))
      return launch_error("lease", "the lease of allocation " + l.allocation_id + " has expired",
                          "lease_token");
    return launch_error("lease", "no allocation " + l.allocation_id + " at provider " + cfg_.name,
                        "lease_token");
  }
  if (!same_token(rec->alloc.lease_token, l.lease_token))
    return launch_error("lease", "the lease token does not match allocation " + l.allocation_id,
                        "lease_token");
  if (!l.job_id.empty() && l.job_id != rec->alloc.job_id)
    return launch_error("lease", "allocation " + l.allocation_id + " is not for job " + l.job_id,
                        "lease_token");
  if (rec->state != phase::leased)
    return std::nullopt; // the same launch again: already submitted
  if (now >= rec->alloc.lease_expires)
    return launch_error("lease", "the lease of allocation " + l.allocation_id + " has expired",
                        "lease_token");
  if (auto why = submit(*rec, l))
    return launch_error("launch", "Slurm did not take the job: " + *why, "spec.command");
  rec->state = phase::queued;
  force_query_ = true;
  return std::nullopt;
}

usage_report slurm_provider::final_report(const alloc_record& rec, std::int32_t exit_code,
                                          const std::string& reason, usec finished_at) const {
  usage_report r;
  r.job_id = rec.alloc.job_id;
  r.allocation_id = rec.alloc.allocation_id;
  r.provider = cfg_.name;
  r.final = true;
  r.exit_code = exit_code;
  r.reason = reason;
  r.started_at = rec.started_at;
  r.finished_at = finished_at;
  return r;
}

bool slurm_provider::observe(alloc_record& rec, usec now, std::vector<usage_report>& out) {
  auto r = cli_.run("scontrol", {"show", "job", "--oneliner", rec.slurm_job});
  if (auto* e = std::get_if<std::string>(&r)) {
    if (e->find("Invalid job id") != std::string::npos) {
      out.push_back(final_report(rec, -1, "lost: Slurm no longer knows job " + rec.slurm_job, now));
      return true;
    }
    return false; // the controller is busy or down: ask again at the next poll
  }
  auto kv = slurm_text::key_values(std::get<command_output>(r).out);
  const std::string state = first_word(kv["JobState"]);
  if (state.empty() || state == "PENDING" || state == "CONFIGURING" || state == "REQUEUED" ||
      state == "REQUEUE_HOLD" || state == "RESIZING" || state == "SUSPENDED")
    return false;

  usec started = 0;
  if (!slurm_text::parse_time(kv["StartTime"], started))
    started = 0;
  if (state == "RUNNING" || state == "COMPLETING" || state == "STAGE_OUT" || state == "SIGNALING") {
    usage_report rep;
    rep.job_id = rec.alloc.job_id;
    rep.allocation_id = rec.alloc.allocation_id;
    rep.provider = cfg_.name;
    const bool first = rec.state != phase::running;
    if (first) {
      rec.state = phase::running;
      rec.started_at = started != 0 ? started : now;
    }
    rep.started_at = rec.started_at;
    auto s = cli_.run("sstat", {"--noheader", "--parsable2",
                                "--format=AveCPU,MaxRSS,MaxDiskRead,MaxDiskWrite",
                                "--jobs=" + rec.slurm_job + ".batch"});
    if (auto* o = std::get_if<command_output>(&s)) {
      std::vector<std::string> f;
      std::stringstream line(last_line(o->out));
      for (std::string x; std::getline(line, x, '|');)
        f.push_back(x);
      usec cpu_time = 0;
      if (f.size() >= 4 && slurm_text::parse_duration(f[0], cpu_time)) {
        usage_sample smp;
        smp.at = now;
        const double cpu_s = static_cast<double>(cpu_time) / 1e6;
        const usec since = rec.cpu_at != 0 ? rec.cpu_at : rec.started_at;
        if (now > since)
          smp.cpu = std::max<millicores>(
            0, std::llround((cpu_s - rec.cpu_seconds) * 1e3 * 1e6 / static_cast<double>(now - since)));
        rec.cpu_seconds = cpu_s;
        rec.cpu_at = now;
        slurm_text::parse_size(f[1], smp.rss);
        slurm_text::parse_size(f[2], smp.io_read);
        slurm_text::parse_size(f[3], smp.io_write);
        smp.threads = 1;
        rep.samples.push_back(smp);
      }
    }
    if (first || !rep.samples.empty())
      out.push_back(std::move(rep));
    return false;
  }

  // Anything else is an end: COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, ...
  int code = 0, sig = 0;
  std::sscanf(kv["ExitCode"].c_str(), "%d:%d", &code, &sig);
  std::string reason;
  if (state == "COMPLETED" || state == "FAILED")
    reason = sig != 0 ? "killed by signal " + std::to_string(sig) : "exited " + std::to_string(code);
  else if (state == "CANCELLED")
    reason = rec.end_reason.empty() ? "cancelled in Slurm" : rec.end_reason;
  else if (state == "TIMEOUT")
    reason = "walltime exceeded";
  else if (state == "OUT_OF_MEMORY")
    reason = "out of memory";
  else
    reason = "Slurm: " + state + " (" + kv["Reason"] + ")";
  if (rec.started_at == 0 && state != "CANCELLED")
    rec.started_at = started;
  usec ended = 0;
  if (!slurm_text::parse_time(kv["EndTime"], ended))
    ended = now;
  out.push_back(final_report(rec, sig != 0 ? -1 : code, reason, ended));
  return true;
}

std::vector<usage_report> slurm_provider::poll(usec now) {
  tidy(now);
  retry_reservation_drops();
  std::vector<usage_report> out;
  out.swap(queued_);
  if (!force_query_ && last_query_ != 0 && now - last_query_ < cfg_.poll_interval)
    return out;
  force_query_ = false;
  last_query_ = now;
  std::vector<std::string> ended;
  for (auto& [id, rec] : allocs_)
    if (rec.state != phase::leased && !rec.slurm_job.empty() && observe(rec, now, out))
      ended.push_back(id);
  for (const auto& id : ended) {
    drop_reservation(allocs_.at(id).reservation);
    forget(id);
  }
  return out;
}

scale_offer slurm_provider::scale(const scale_request& r, usec now) {
  (void)now;
  scale_offer s;
  s.job_id = r.job_id;
  s.allocation_id = r.allocation_id;
  s.provider = cfg_.name;
  alloc_record* rec = find_alloc(r.allocation_id);
  if (!rec) {
    s.reason = "no allocation " + r.allocation_id;
    return s;
  }
  if (r.wanted.gpus > 0) {
    s.in_place = false;
    s.reason = "this provider asks Slurm for no GPUs: a new allocation is needed";
    return s;
  }
  if (rec->state == phase::running) {
    s.in_place = false;
    s.reason = "Slurm job " + rec->slurm_job +
               " is running and Slurm cannot resize it in place: a new allocation is needed";
    return s;
  }
  const std::int64_t cores = whole_cores(r.wanted.cpu);
  if (cores > rec->cores) {
    s.in_place = false;
    s.reason = "reservation " + rec->reservation + " holds " + std::to_string(rec->cores) +
               " cores and a core reservation cannot grow: a new allocation is needed";
    return s;
  }
  resources wanted;
  wanted.cpu = cores * 1000;
  wanted.memory = r.wanted.memory > 0 ? whole_mib(r.wanted.memory) : rec->alloc.granted.memory;
  if (cfg_.capacity.memory > 0 && wanted.memory > cfg_.capacity.memory) {
    s.in_place = false;
    s.reason = "not enough memory: want " + format_bytes(wanted.memory) + ", at most " +
               format_bytes(cfg_.capacity.memory) + " per job";
    return s;
  }
  if (rec->state == phase::queued) {
    std::vector<std::string> args{"update", "jobid=" + rec->slurm_job,
                                  "NumCPUs=" + std::to_string(cores)};
    if (wanted.memory > 0)
      args.push_back("MinMemoryNode=" + std::to_string(wanted.memory / mib));
    auto done = cli_.run("scontrol", args);
    if (auto* e = std::get_if<std::string>(&done)) {
      s.reason = "Slurm refused the resize: " + *e;
      return s;
    }
  }
  const resources old = rec->alloc.granted;
  rec->alloc.granted = wanted;
  s.applied = true;
  s.granted = wanted;
  const i128 delta = static_cast<i128>(hourly_rate(wanted) - hourly_rate(old)) * rec->runtime;
  s.price_delta = static_cast<micros>(delta / hour_us);
  s.reason = r.reason;
  return s;
}

void slurm_provider::stop(const std::string& job_id, const std::string& reason, usec now) {
  auto it = std::find_if(allocs_.begin(), allocs_.end(),
                         [&](const auto& kv) { return kv.second.alloc.job_id == job_id; });
  if (it == allocs_.end())
    return;
  alloc_record& rec = it->second;
  if (!rec.slurm_job.empty())
    cli_.run("scancel", {rec.slurm_job});
  if (rec.state == phase::running) {
    if (rec.end_reason.empty())
      rec.end_reason = "stopped" + (reason.empty() ? "" : ": " + reason);
    force_query_ = true;
    return;
  }
  queued_.push_back(final_report(rec, -1, "stopped before start: " + reason, now));
  drop_reservation(rec.reservation);
  forget(it->first);
}

std::optional<usage_report> slurm_provider::adopt(const allocation& a, usec now) {
  if (allocs_.count(a.allocation_id))
    return std::nullopt;
  alloc_record rec;
  rec.alloc = a;
  rec.alloc.provider = cfg_.name;
  rec.reservation = reservation_name(a.allocation_id);
  rec.cores = whole_cores(a.granted.cpu);
  rec.runtime = default_runtime;

  auto q = cli_.run("squeue", {"--noheader", "--states=all", "--name=" + job_name(a.job_id),
                               "--format=%i|%k"});
  if (auto* e = std::get_if<std::string>(&q))
    return final_report(rec, -1, "cannot re-adopt: " + *e, now);
  std::istringstream lines(std::get<command_output>(q).out);
  long long best = -1;
  for (std::string line; std::getline(lines, line);) {
    auto bar = line.find('|');
    if (bar == std::string::npos || trim(line.substr(bar + 1)) != a.allocation_id)
      continue;
    best = std::max(best, std::atoll(trim(line.substr(0, bar)).c_str()));
  }
  if (best > 0) {
    rec.slurm_job = std::to_string(best);
    rec.state = phase::queued;
  } else {
    auto res = cli_.run("scontrol", {"show", "reservation", "--oneliner", rec.reservation});
    const bool reserved = std::holds_alternative<command_output>(res);
    if (!reserved || now >= a.lease_expires) {
      if (reserved)
        drop_reservation(rec.reservation);
      return final_report(rec, -1,
                          "lost: Slurm has no job for allocation " + a.allocation_id +
                            (now >= a.lease_expires ? " and its lease has expired"
                                                    : " and no reservation " + rec.reservation),
                          now);
    }
    rec.state = phase::leased; // never launched: the lease still stands
  }
  alloc_of_offer_[a.offer_id] = a.allocation_id;
  allocs_.emplace(a.allocation_id, std::move(rec));
  force_query_ = true;
  return std::nullopt;
}

} // namespace tender

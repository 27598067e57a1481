#include "tests/slurm_cluster.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace tender::test {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

const std::vector<std::string> tools = {"munged", "slurmctld", "slurmd", "sbatch",
                                        "scontrol", "sstat",   "squeue", "scancel", "sinfo"};

/// PATH plus the sbin directories, where the daemons live.
std::string find_tool(const std::string& name) {
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/sbin:/sbin:/usr/local/sbin:/usr/bin:/bin";
  std::stringstream ss(dirs);
  for (std::string d; std::getline(ss, d, ':');) {
    if (d.empty())
      continue;
    auto p = d + "/" + name;
    if (::access(p.c_str(), X_OK) == 0)
      return p;
  }
  return {};
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    ::close(fd);
  return port;
}

std::string tail_of(const std::string& path, std::size_t lines) {
  std::ifstream f(path);
  std::vector<std::string> all;
  for (std::string l; std::getline(f, l);)
    all.push_back(l);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += all[i] + "\n";
  return out;
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto end = clock_type::now() + timeout;
  while (clock_type::now() < end) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

} // namespace

std::string slurm_cluster::missing_tools() {
  std::string missing;
  for (const auto& t : tools)
    if (find_tool(t).empty())
      missing += (missing.empty() ? "" : ", ") + t;
  return missing;
}

slurm_cluster::slurm_cluster(int cpus, int memory_mib) {
  char tmpl[] = "/tmp/tender-slurm-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = tmpl;
  ::chmod(dir_.c_str(), 0755);
  if (auto m = missing_tools(); !m.empty()) {
    error_ = "not installed: " + m;
    return;
  }
  for (auto sub : {"munge", "state", "spool", "log"})
    fs::create_directories(dir_ + "/" + sub);
  ::chmod((dir_ + "/munge").c_str(), 0700);

  // A private munge key: 1 KiB from the kernel, readable by its owner only.
  const std::string key = dir_ + "/munge/munge.key";
  {
    std::ifstream rnd("/dev/urandom", std::ios::binary);
    std::string bytes(1024, '\0');
    rnd.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream(key, std::ios::binary) << bytes;
    ::chmod(key.c_str(), 0400);
  }
  ::chmod((dir_ + "/munge").c_str(), 0711);
  const std::string socket = dir_ + "/munge/munge.socket";

  const int ctld_port = free_port();
  int slurmd_port = free_port();
  while (slurmd_port == ctld_port)
    slurmd_port = free_port();
  std::ofstream(conf()) << "ClusterName=tender-test\n"
                        << "SlurmctldHost=localhost\n"
                        << "SlurmUser=root\nSlurmdUser=root\n"
                        << "SlurmctldPort=" << ctld_port << "\nSlurmdPort=" << slurmd_port << "\n"
                        << "AuthType=auth/munge\nCredType=cred/munge\n"
                        << "AuthInfo=socket=" << socket << "\n"
                        << "StateSaveLocation=" << dir_ << "/state\n"
                        << "SlurmdSpoolDir=" << dir_ << "/spool/slurmd.%n\n"
                        << "SlurmctldPidFile=" << dir_ << "/log/slurmctld.pid\n"
                        << "SlurmdPidFile=" << dir_ << "/log/slurmd.%n.pid\n"
                        << "SlurmctldLogFile=" << dir_ << "/log/slurmctld.log\n"
                        << "SlurmdLogFile=" << dir_ << "/log/slurmd.%n.log\n"
                        << "SchedulerType=sched/backfill\n"
                        << "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n"
                        << "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
                        << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
                        << "JobAcctGatherType=jobacct_gather/linux\n"
                        << "JobAcctGatherFrequency=task=1\n"
                        << "AccountingStorageType=accounting_storage/none\n"
                        << "JobCompType=jobcomp/filetxt\n"
                        << "JobCompLoc=" << dir_ << "/log/jobcomp.txt\n"
                        << "MpiDefault=none\nMailProg=/bin/true\n"
                        << "DefMemPerCPU=100\nReturnToService=2\n"
                        << "NodeName=localhost CPUs=" << cpus
                        << " Boards=1 SocketsPerBoard=1 CoresPerSocket=" << cpus
                        << " ThreadsPerCore=1 RealMemory=" << memory_mib << " State=UNKNOWN\n"
                        << "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n";

  spawn({find_tool("munged"), "-F", "-S", socket, "--key-file=" + key,
         "--seed-file=" + dir_ + "/munge/munged.seed", "--pid-file=" + dir_ + "/munge/munged.pid",
         "--log-file=" + dir_ + "/log/munged.log"},
        "munged.out");
  if (!wait_for([&] { return fs::exists(socket); }, std::chrono::seconds(10))) {
    error_ = "munged did not create " + socket + "\n" + logs();
    stop();
    return;
  }
  spawn({find_tool("slurmctld"), "-D", "-i", "-f", conf()}, "slurmctld.out");
  spawn({find_tool("slurmd"), "-D", "-N", "localhost", "-f", conf()}, "slurmd.out");

  std::string last;
  const bool idle = wait_for(
    [&] {
      auto r = run("sinfo", {"--noheader", "--format=%T"});
      if (auto* e = std::get_if<std::string>(&r)) {
        last = *e;
        return false;
      }
      last = std::get<command_output>(r).out;
      return last.rfind("idle", 0) == 0;
    },
    std::chrono::seconds(30));
  if (!idle) {
    error_ = "the Slurm node was not idle within 30s (sinfo: " + last + ")\n" + logs();
    stop();
  }
}

slurm_cluster::~slurm_cluster() {
  if (!pids_.empty()) {
    if (up())
      reset();
    stop();
  }
  std::error_code ec;
  if (!dir_.empty() && !std::getenv("TENDER_KEEP_TEST_DIRS"))
    fs::remove_all(dir_, ec);
}

int slurm_cluster::spawn(const std::vector<std::string>& argv, const std::string& log) {
  const std::string log_path = dir_ + "/log/" + log;
  const std::string conf_env = "SLURM_CONF=" + conf();
  std::vector<char*> args, envp;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (char** e = environ; e && *e; ++e)
    if (std::string(*e).rfind("SLURM_CONF=", 0) != 0)
      envp.push_back(*e);
  envp.push_back(const_cast<char*>(conf_env.c_str()));
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL); // the test died: so do its daemons
    if (::getppid() != parent)
      _exit(1);
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::close_range(3, ~0u, 0);
    ::execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  if (pid > 0)
    pids_.push_back(pid);
  return pid;
}

void slurm_cluster::stop() {
  for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) {
    const int pid = *it;
    ::kill(pid, SIGTERM);
    int st = 0;
    const bool gone = wait_for([&] { return ::waitpid(pid, &st, WNOHANG) == pid; },
                               std::chrono::seconds(5));
    if (!gone) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
    }
  }
  pids_.clear();
}

std::string slurm_cluster::logs() const {
  std::string out;
  for (auto [title, file] : {std::pair{"slurmctld", "slurmctld.log"},
                             std::pair{"slurmd", "slurmd.localhost.log"},
                             std::pair{"slurmctld stdout", "slurmctld.out"},
                             std::pair{"slurmd stdout", "slurmd.out"},
                             std::pair{"munged", "munged.log"}}) {
    auto text = tail_of(dir_ + "/log/" + file, 40);
    if (!text.empty())
      out += std::string("--- ") + title + " (" + dir_ + "/log/" + file + ") ---\n" + text;
  }
  return out;
}

std::variant<command_output, std::string>
slurm_cluster::run(const std::string& tool, const std::vector<std::string>& args) const {
  std::string path = find_tool(tool);
  slurm_cli cli(conf(), path.empty() ? std::string() : fs::path(path).parent_path().string(),
                10 * sec_us);
  return cli.run(tool, args);
}

std::map<std::string, std::string> slurm_cluster::show(const std::string& what,
                                                       const std::string& id) const {
  auto r = run("scontrol", {"show", what, "--oneliner", id});
  if (auto* o = std::get_if<command_output>(&r))
    return slurm_text::key_values(o->out);
  return {};
}

void slurm_cluster::reset() {
  auto jobs = run("squeue", {"--noheader", "--format=%i"});
  if (auto* o = std::get_if<command_output>(&jobs)) {
    std::istringstream in(o->out);
    std::vector<std::string> ids{};
    for (std::string id; in >> id;)
      ids.push_back(id);
    if (!ids.empty())
      run("scancel", ids);
  }
  // A reservation is in use until the jobs cancelled in it are gone.
  wait_for(
    [&] {
      auto r = run("scontrol", {"show", "reservation", "--oneliner"});
      auto* o = std::get_if<command_output>(&r);
      if (!o)
        return true;
      bool any = false;
      std::istringstream in(o->out);
      for (std::string line; std::getline(in, line);) {
        auto name = slurm_text::key_values(line)["ReservationName"];
        if (!name.empty()) {
          any = true;
          run("scontrol", {"delete", "reservation", name});
        }
      }
      return !any;
    },
    std::chrono::seconds(10));
}

provider_config slurm_cluster::provider(const std::string& name) const {
  provider_config c;
  c.name = name;
  c.kind = "slurm";
  c.slurm_conf = conf();
  std::string sbatch = find_tool("sbatch");
  if (!sbatch.empty())
    c.slurm_bin_dir = fs::path(sbatch).parent_path().string();
  c.price_per_core_hour = 40'000; // 0.04 USD
  c.price_per_gib_hour = 5'000;   // 0.005 USD
  c.command_timeout = 10 * sec_us;
  c.poll_interval = 0;
  return c;
}

} // namespace tender::test

#include "actors/task_cpu.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>

namespace tender {

namespace {

std::string first_line(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}

} // namespace

std::vector<task_sample> read_tasks(const std::string& proc, int pid) {
  namespace fs = std::filesystem;
  std::vector<task_sample> out;
  const fs::path tasks = fs::path(proc) / std::to_string(pid) / "task";
  std::error_code ec;
  for (fs::directory_iterator it(tasks, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    char* rest = nullptr;
    const long tid = std::strtol(name.c_str(), &rest, 10);
    if (name.empty() || *rest != '\0' || tid <= 0)
      continue;
    // "<run ns> <wait ns> <timeslices>"
    const auto stat = first_line(it->path() / "schedstat");
    const char* p = stat.c_str();
    char* q = nullptr;
    const long long run = std::strtoll(p, &q, 10);
    if (q == p)
      continue; // gone meanwhile, or unreadable
    p = q;
    const long long wait = std::strtoll(p, &q, 10);
    if (q == p || run < 0 || wait < 0)
      continue;
    task_sample t;
    t.pid = pid;
    t.tid = static_cast<int>(tid);
    t.comm = first_line(it->path() / "comm");
    t.run_ns = run;
    t.wait_ns = wait;
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<cpu_part> cpu_by_part(const std::vector<task_sample>& before,
                                  const std::vector<task_sample>& after,
                                  const std::function<std::string(const task_sample&)>& part_of) {
  std::map<std::pair<int, int>, const task_sample*> was;
  for (const auto& t : before)
    was[{t.pid, t.tid}] = &t;
  std::vector<cpu_part> parts;
  std::map<std::string, std::size_t> index;
  for (const auto& t : after) {
    std::int64_t run = t.run_ns, wait = t.wait_ns;
    if (auto it = was.find({t.pid, t.tid}); it != was.end()) {
      // A tid reused by a new thread would show less than before: counted from zero.
      if (it->second->run_ns <= run && it->second->wait_ns <= wait) {
        run -= it->second->run_ns;
        wait -= it->second->wait_ns;
      }
    }
    const auto name = part_of(t);
    auto [slot, fresh] = index.try_emplace(name, parts.size());
    if (fresh)
      parts.push_back(cpu_part{name});
    auto& p = parts[slot->second];
    p.cpu_s += static_cast<double>(run) / 1e9;
    p.wait_s += static_cast<double>(wait) / 1e9;
    ++p.threads;
  }
  return parts;
}

} // namespace tender

#include "config/job_file.hpp"

#include "config/toml_reader.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tender {

std::string config_error::to_string() const {
  if (key.empty()) return file + ": " + reason;
  return file + ": " + key + ": " + reason;
}

namespace config_detail {

std::optional<config_error> read_text_file(const std::string& path, std::string& out) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return config_error{path, "", std::strerror(EISDIR)};
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return config_error{path, "", std::strerror(errno ? errno : ENOENT)};
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return config_error{path, "", std::strerror(errno ? errno : EIO)};
  out = ss.str();
  return std::nullopt;
}

std::string directory_of(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  if (ec) abs = path;
  return abs.lexically_normal().parent_path().string();
}

} // namespace config_detail

namespace {

using config_detail::config_failure;
using config_detail::table_reader;

/// A TOML offset date-time as microseconds since the epoch.
usec to_usec(const toml::date_time& dt) {
  using namespace std::chrono;
  auto date = sys_days{year{dt.date.year} / month{dt.date.month} / day{dt.date.day}};
  auto t = date + hours{dt.time.hour} + minutes{dt.time.minute} + seconds{dt.time.second} +
           microseconds{dt.time.nanosecond / 1000} - minutes{dt.offset->minutes};
  return duration_cast<microseconds>(t.time_since_epoch()).count();
}

/// `deadline`: a duration after `now` ("30m", or seconds) or an instant (RFC 3339
/// string or TOML offset date-time). Must lie in the future.
usec read_deadline(const table_reader& job, usec now) {
  const char* key = "deadline";
  auto n = job.get(key);
  usec at = 0;
  if (n->is_string()) {
    const auto& s = n->as_string()->get();
    usec d = 0;
    if (!s.empty() && s.front() == '-') job.fail(key, "must not be negative, got '" + s + "'");
    if (parse_duration(s, d)) {
      if (d <= 0) job.fail(key, "must be positive");
      at = now + d;
    } else if (!parse_time(s, at)) {
      job.fail(key, "invalid deadline '" + s +
                        "' (expected a duration like \"30m\" or an RFC 3339 time like "
                        "\"2026-11-25T18:00:00Z\")");
    }
  } else if (n->is_date_time()) {
    const auto& dt = n->as_date_time()->get();
    if (!dt.offset) job.fail(key, "a date-time needs a UTC offset (e.g. 2026-11-25T18:00:00Z)");
    at = to_usec(dt);
  } else if (n->is_integer() || n->is_floating_point()) {
    auto d = *job.duration(key);
    if (d <= 0) job.fail(key, "must be positive");
    at = now + d;
  } else {
    job.type_error(key, *n, "a duration (\"30m\" or seconds) or an RFC 3339 time");
  }
  if (at <= now) job.fail(key, "is in the past (" + format_time(at) + ")");
  return at;
}

/// `name` when the file does not give one: the file's stem ("compress-logs.toml" ->
/// "compress-logs"), or the first command word's base name for text without a file.
std::string default_name(const std::string& file_name, const std::vector<std::string>& command) {
  if (!file_name.empty() && file_name.front() != '<') {
    auto stem = std::filesystem::path(file_name).stem().string();
    if (!stem.empty()) return stem;
  }
  return std::filesystem::path(command.front()).filename().string();
}

void read_hints(const table_reader& h, resources& out) {
  h.allow_only({"cpus", "memory", "gpu", "gpus", "gpu_memory"});
  if (auto v = h.cores("cpus")) {
    if (*v == 0) h.fail("cpus", "must be positive");
    out.cpu = *v;
  }
  if (auto v = h.size("memory")) {
    if (*v == 0) h.fail("memory", "must be positive");
    out.memory = *v;
  }
  if (auto v = h.nonempty_string("gpu")) out.gpu_type = *v;
  if (auto v = h.size("gpu_memory")) {
    if (*v == 0) h.fail("gpu_memory", "must be positive");
    out.gpu_memory = *v;
  }
  bool wants_gpu = !out.gpu_type.empty() || out.gpu_memory > 0;
  if (auto v = h.integer_in("gpus", 0, 1024)) {
    if (*v == 0 && wants_gpu) h.fail("gpus", "must be at least 1 when gpu or gpu_memory is given");
    out.gpus = static_cast<std::int32_t>(*v);
  } else if (wants_gpu) {
    out.gpus = 1;
  }
}

void read_profile(const table_reader& p, job_spec& out) {
  p.allow_only({"command", "budget", "skip"});
  if (auto v = p.strings("command")) {
    if (v->empty()) p.fail("command", "must not be empty (leave it out for no profile command)");
    if (v->front().empty()) p.fail_at(p.key_path("command") + "[0]", "must not be empty");
    out.profile_command = std::move(*v);
  }
  if (auto v = p.positive_duration("budget")) out.profile_budget = *v;
  if (auto v = p.boolean("skip")) out.profile_skip = *v;
}

void read_env(const table_reader& e, std::map<std::string, std::string>& out) {
  for (auto&& [k, v] : e.table()) {
    const auto& name = k.str();
    if (name.empty() || name.find('=') != std::string_view::npos || name.find('\0') != std::string_view::npos)
      e.fail(name, "invalid environment variable name");
    out[std::string(name)] = *e.string(name);
  }
}

job_spec read_job(const toml::table& root, const std::string& file_name,
                  const std::string& base_dir, usec now) {
  table_reader top(root, "", file_name);
  top.allow_only({"job"});
  auto job_t = top.sub_table("job");
  if (!job_t) top.fail("job", "missing [job] table");
  const auto& job = *job_t;
  job.allow_only({"name", "user", "command", "workdir", "deadline", "max_cost", "walltime",
                  "priority", "software", "inputs", "env", "hints", "profile"});

  job_spec spec;
  auto command = job.strings("command");
  if (!command) job.fail("command", "missing (the program and its arguments, e.g. [\"sh\", \"-c\", \"...\"])");
  if (command->empty()) job.fail("command", "must not be empty");
  if (command->front().empty()) job.fail_at(job.key_path("command") + "[0]", "must not be empty");
  spec.command = std::move(*command);

  if (auto v = job.nonempty_string("name"))
    spec.name = *v;
  else
    spec.name = default_name(file_name, spec.command);
  if (auto v = job.string("user")) spec.user = *v;

  if (auto v = job.string("workdir"))
    spec.workdir = config_detail::resolve_path(base_dir, v->empty() ? "." : *v);
  else
    spec.workdir = base_dir.empty() ? std::string(".") : config_detail::resolve_path(base_dir, ".");

  if (job.has("deadline")) spec.deadline = read_deadline(job, now);
  if (auto v = job.duration("walltime")) spec.walltime = *v;
  if (auto v = job.dollars("max_cost", true)) spec.max_cost = *v;
  if (auto v = job.integer_in("priority", -100, 100)) spec.priority = static_cast<std::int32_t>(*v);
  if (auto v = job.strings("software")) spec.software = std::move(*v);
  if (auto v = job.strings("inputs")) spec.inputs = std::move(*v);
  if (auto t = job.sub_table("env")) read_env(*t, spec.env);
  if (auto t = job.sub_table("hints")) read_hints(*t, spec.hints);
  if (auto t = job.sub_table("profile")) read_profile(*t, spec);
  return spec;
}

} // namespace

std::variant<job_spec, config_error> parse_job_toml(const std::string& text,
                                                    const std::string& file_name,
                                                    const std::string& base_dir, usec now) {
  try {
    auto root = config_detail::parse_toml_text(text, file_name);
    return read_job(root, file_name, base_dir, now);
  } catch (config_failure& f) {
    return std::move(f.error);
  }
}

std::variant<job_spec, config_error> load_job_file(const std::string& path, usec now) {
  std::string text;
  if (auto err = config_detail::read_text_file(path, text)) return *err;
  return parse_job_toml(text, path, config_detail::directory_of(path), now);
}

} // namespace tender

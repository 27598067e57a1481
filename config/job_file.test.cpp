#include "config/job_file.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

namespace tender {
namespace {

namespace fs = std::filesystem;

// 2026-01-01T00:00:00Z.
constexpr usec now = 1'767'225'600 * sec_us;
constexpr usec minute = 60 * sec_us;
constexpr bytes_t MiB = 1024 * 1024;
constexpr bytes_t GiB = 1024 * MiB;

std::variant<job_spec, config_error> parse(const std::string& text,
                                           const std::string& file = "jobs/x.toml") {
  return parse_job_toml(text, file, "/home/ana/jobs", now);
}

job_spec ok(const std::string& text, const std::string& file = "jobs/x.toml") {
  auto r = parse(text, file);
  if (auto* e = std::get_if<config_error>(&r)) ADD_FAILURE() << "unexpected error: " << e->to_string();
  return std::holds_alternative<job_spec>(r) ? std::get<job_spec>(r) : job_spec{};
}

config_error err(const std::string& text) {
  auto r = parse(text);
  if (std::holds_alternative<job_spec>(r)) {
    ADD_FAILURE() << "parsed, but an error was expected:\n" << text;
    return {};
  }
  return std::get<config_error>(r);
}

/// A job file with one [job] line added after a valid command.
std::string with_job(const std::string& lines) {
  return "[job]\ncommand = [\"true\"]\n" + lines + "\n";
}

void expect_same(const job_spec& a, const job_spec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.user, b.user);
  EXPECT_EQ(a.command, b.command);
  EXPECT_EQ(a.workdir, b.workdir);
  EXPECT_EQ(a.env, b.env);
  EXPECT_EQ(a.walltime, b.walltime);
  EXPECT_EQ(a.deadline, b.deadline);
  EXPECT_EQ(a.max_cost, b.max_cost);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.software, b.software);
  EXPECT_EQ(a.hints, b.hints);
  EXPECT_EQ(a.profile_command, b.profile_command);
  EXPECT_EQ(a.profile_budget, b.profile_budget);
  EXPECT_EQ(a.profile_skip, b.profile_skip);
  EXPECT_EQ(a.inputs, b.inputs);
}

#define EXPECT_ERROR(text, key_, reason_)                                                          \
  do {                                                                                             \
    auto e_ = err(text);                                                                           \
    EXPECT_EQ(e_.file, "jobs/x.toml");                                                             \
    EXPECT_EQ(e_.key, key_);                                                                       \
    EXPECT_EQ(e_.reason, reason_);                                                                 \
  } while (0)

TEST(job_file, full_example_parses_to_exact_amounts) {
  auto spec = ok(R"(
[job]
name = "compress-logs"
user = "ana"
command = ["sh", "-c", "gzip -9 < big.log > big.log.gz"]
workdir = "logs"
deadline = "30m"
max_cost = 0.50
walltime = "20m"
priority = 5
software = ["gzip"]
inputs = ["big.log"]
[job.env]
LANG = "C"
[job.hints]
cpus = 2
memory = "1GiB"
gpu = "T4"
gpu_memory = "16GiB"
[job.profile]
command = ["sh", "-c", "head -c 50M big.log | gzip -9 > /dev/null"]
budget = "10s"
skip = false
)");
  job_spec want;
  want.name = "compress-logs";
  want.user = "ana";
  want.command = {"sh", "-c", "gzip -9 < big.log > big.log.gz"};
  want.workdir = "/home/ana/jobs/logs";
  want.env = {{"LANG", "C"}};
  want.walltime = 20 * minute;
  want.deadline = now + 30 * minute;
  want.max_cost = 500'000;
  want.priority = 5;
  want.software = {"gzip"};
  want.hints = resources{2000, GiB, 1, "T4", 16 * GiB};
  want.profile_command = {"sh", "-c", "head -c 50M big.log | gzip -9 > /dev/null"};
  want.profile_budget = 10 * sec_us;
  want.profile_skip = false;
  want.inputs = {"big.log"};
  expect_same(spec, want);
}

TEST(job_file, minimal_file_gets_documented_defaults) {
  auto spec = ok("[job]\ncommand = [\"/usr/bin/sleep\", \"1\"]\n", "some/dir/nightly-backup.toml");
  job_spec want;
  want.name = "nightly-backup"; // the file's stem
  want.command = {"/usr/bin/sleep", "1"};
  want.workdir = "/home/ana/jobs"; // the base dir
  expect_same(spec, want);
}

TEST(job_file, name_defaults_to_first_command_word_without_a_file) {
  EXPECT_EQ(ok("[job]\ncommand = [\"/usr/bin/sleep\", \"1\"]\n", "<stdin>").name, "sleep");
}

TEST(job_file, workdir_resolution) {
  EXPECT_EQ(ok(with_job("workdir = \".\"")).workdir, "/home/ana/jobs");
  EXPECT_EQ(ok(with_job("workdir = \"../data/\"")).workdir, "/home/ana/data");
  EXPECT_EQ(ok(with_job("workdir = \"/srv/x\"")).workdir, "/srv/x");
}

TEST(job_file, max_cost_is_exact_micro_dollars) {
  EXPECT_EQ(ok(with_job("max_cost = 0.1")).max_cost, 100'000);
  EXPECT_EQ(ok(with_job("max_cost = 0.29")).max_cost, 290'000);
  EXPECT_EQ(ok(with_job("max_cost = 0.000001")).max_cost, 1);
  EXPECT_EQ(ok(with_job("max_cost = 1234.567891")).max_cost, 1'234'567'891);
  EXPECT_EQ(ok(with_job("max_cost = 2")).max_cost, 2'000'000);
  EXPECT_EQ(ok(with_job("max_cost = \"0.25\"")).max_cost, 250'000);
}

TEST(job_file, max_cost_errors) {
  EXPECT_ERROR(with_job("max_cost = 0"), "job.max_cost", "must be positive, got 0");
  EXPECT_ERROR(with_job("max_cost = 0.0"), "job.max_cost", "must be positive, got 0");
  EXPECT_ERROR(with_job("max_cost = -1"), "job.max_cost", "must be positive, got -1");
  EXPECT_ERROR(with_job("max_cost = -0.5"), "job.max_cost", "must be positive, got -0.5");
  EXPECT_ERROR(with_job("max_cost = \"-0.5\""), "job.max_cost", "must be positive, got '-0.5'");
  EXPECT_ERROR(with_job("max_cost = 0.0000001"), "job.max_cost",
               "more than six decimal places in 0.0000001 (the smallest unit is $0.000001)");
  EXPECT_ERROR(with_job("max_cost = \"cheap\""), "job.max_cost",
               "invalid amount of US dollars 'cheap'");
  EXPECT_ERROR(with_job("max_cost = true"), "job.max_cost",
               "expected an amount of US dollars (e.g. 0.50), got boolean");
  EXPECT_ERROR(with_job("max_cost = inf"), "job.max_cost", "must be a finite number");
}

TEST(job_file, durations_accept_strings_and_seconds) {
  EXPECT_EQ(ok(with_job("walltime = 90")).walltime, 90 * sec_us);
  EXPECT_EQ(ok(with_job("walltime = 1.5")).walltime, 1'500'000);
  EXPECT_EQ(ok(with_job("walltime = \"1h30m\"")).walltime, 90 * minute);
  EXPECT_EQ(ok(with_job("deadline = 600")).deadline, now + 10 * minute);
}

TEST(job_file, duration_errors) {
  EXPECT_ERROR(with_job("walltime = \"-5m\""), "job.walltime", "must not be negative, got '-5m'");
  EXPECT_ERROR(with_job("walltime = -5"), "job.walltime", "must not be negative, got -5");
  EXPECT_ERROR(with_job("walltime = \"soon\""), "job.walltime",
               "invalid duration 'soon' (expected e.g. \"30m\", \"1h30m\", \"250ms\" or a number "
               "of seconds)");
  EXPECT_ERROR(with_job("walltime = [1]"), "job.walltime",
               "expected a duration (a string like \"30m\" or a number of seconds), got array");
  EXPECT_ERROR("[job]\ncommand = [\"true\"]\n[job.profile]\nbudget = \"0s\"\n", "job.profile.budget",
               "must be positive");
}

TEST(job_file, deadline_as_an_instant) {
  EXPECT_EQ(ok(with_job("deadline = \"2026-01-01T01:00:00Z\"")).deadline, now + 60 * minute);
  EXPECT_EQ(ok(with_job("deadline = \"2026-01-01T03:00:00+02:00\"")).deadline, now + 60 * minute);
  EXPECT_EQ(ok(with_job("deadline = 2026-01-01T01:00:00Z")).deadline, now + 60 * minute);
  EXPECT_EQ(ok(with_job("deadline = 2026-01-01T01:00:00.25-01:00")).deadline,
            now + 120 * minute + 250'000);
}

TEST(job_file, deadline_errors) {
  EXPECT_ERROR(with_job("deadline = \"-1h\""), "job.deadline", "must not be negative, got '-1h'");
  EXPECT_ERROR(with_job("deadline = -60"), "job.deadline", "must not be negative, got -60");
  EXPECT_ERROR(with_job("deadline = \"0s\""), "job.deadline", "must be positive");
  EXPECT_ERROR(with_job("deadline = \"2020-01-01T00:00:00Z\""), "job.deadline",
               "is in the past (2020-01-01T00:00:00.000Z)");
  EXPECT_ERROR(with_job("deadline = 2025-12-31T23:59:59Z"), "job.deadline",
               "is in the past (2025-12-31T23:59:59.000Z)");
  EXPECT_ERROR(with_job("deadline = \"tomorrow\""), "job.deadline",
               "invalid deadline 'tomorrow' (expected a duration like \"30m\" or an RFC 3339 time "
               "like \"2026-11-25T18:00:00Z\")");
  EXPECT_ERROR(with_job("deadline = 2026-05-01T12:00:00"), "job.deadline",
               "a date-time needs a UTC offset (e.g. 2026-11-25T18:00:00Z)");
  EXPECT_ERROR(with_job("deadline = 2026-05-01"), "job.deadline",
               "expected a duration (\"30m\" or seconds) or an RFC 3339 time, got date");
}

TEST(job_file, toml_syntax_error_names_line_and_column) {
  auto e = err("[job]\ncommand = [\"true\"]\nname = \"unterminated\n");
  EXPECT_EQ(e.file, "jobs/x.toml");
  EXPECT_EQ(e.key, "");
  EXPECT_EQ(e.reason.rfind("TOML syntax error at 3:", 0), 0u) << e.reason;
}

TEST(job_file, job_table_is_required) {
  EXPECT_ERROR("", "job", "missing [job] table");
  EXPECT_ERROR("job = 5\n", "job", "expected a table, got integer");
  EXPECT_ERROR("[jobs]\ncommand = [\"true\"]\n", "jobs", "unknown key (expected one of: job)");
}

TEST(job_file, unknown_keys_anywhere_are_refused) {
  EXPECT_ERROR("[job]\ncommand = [\"true\"]\n[job.hints]\nmemroy = \"1GiB\"\n", "job.hints.memroy",
               "unknown key (expected one of: cpus, memory, gpu, gpus, gpu_memory)");
  EXPECT_ERROR(with_job("nmae = \"x\""), "job.nmae",
               "unknown key (expected one of: name, user, command, workdir, deadline, max_cost, "
               "walltime, priority, software, inputs, env, hints, profile)");
  EXPECT_ERROR("[job]\ncommand = [\"true\"]\n[job.profile]\nbudgett = \"1s\"\n", "job.profile.budgett",
               "unknown key (expected one of: command, budget, skip)");
}

TEST(job_file, command_errors) {
  EXPECT_ERROR("[job]\ncommand = 5\n", "job.command", "expected an array of strings, got integer");
  EXPECT_ERROR("[job]\ncommand = \"sh -c true\"\n", "job.command",
               "expected an array of strings, got string");
  EXPECT_ERROR("[job]\ncommand = [\"sh\", 3]\n", "job.command[1]", "expected a string, got integer");
  EXPECT_ERROR("[job]\ncommand = []\n", "job.command", "must not be empty");
  EXPECT_ERROR("[job]\ncommand = [\"\", \"x\"]\n", "job.command[0]", "must not be empty");
  EXPECT_ERROR("[job]\nname = \"x\"\n", "job.command",
               "missing (the program and its arguments, e.g. [\"sh\", \"-c\", \"...\"])");
}

TEST(job_file, other_type_and_range_errors) {
  EXPECT_ERROR(with_job("name = \"\""), "job.name", "must not be empty");
  EXPECT_ERROR(with_job("user = 7"), "job.user", "expected a string, got integer");
  EXPECT_ERROR(with_job("priority = 101"), "job.priority", "out of range (-100..100), got 101");
  EXPECT_ERROR(with_job("priority = -101"), "job.priority", "out of range (-100..100), got -101");
  EXPECT_ERROR(with_job("priority = 1.5"), "job.priority", "expected an integer, got float");
  EXPECT_ERROR(with_job("software = \"gzip\""), "job.software",
               "expected an array of strings, got string");
  EXPECT_ERROR(with_job("inputs = [true]"), "job.inputs[0]", "expected a string, got boolean");
  EXPECT_ERROR(with_job("env = 3"), "job.env", "expected a table, got integer");
  EXPECT_ERROR("[job]\ncommand = [\"true\"]\n[job.env]\nN = 3\n", "job.env.N",
               "expected a string, got integer");
  EXPECT_ERROR("[job]\ncommand = [\"true\"]\n[job.env]\n\"A=B\" = \"x\"\n", "job.env.A=B",
               "invalid environment variable name");
  EXPECT_ERROR("[job]\ncommand = [\"true\"]\n[job.profile]\nskip = \"yes\"\n", "job.profile.skip",
               "expected a boolean (true or false), got string");
  EXPECT_ERROR("[job]\ncommand = [\"true\"]\n[job.profile]\ncommand = []\n", "job.profile.command",
               "must not be empty (leave it out for no profile command)");
}

TEST(job_file, hints) {
  auto hints = [](const std::string& lines) {
    return ok("[job]\ncommand = [\"true\"]\n[job.hints]\n" + lines + "\n").hints;
  };
  EXPECT_EQ(hints("cpus = 0.5"), (resources{500, 0, 0, "", 0}));
  EXPECT_EQ(hints("cpus = 1.25\nmemory = 1048576"), (resources{1250, MiB, 0, "", 0}));
  EXPECT_EQ(hints("gpu = \"V100\"\ngpus = 4"), (resources{0, 0, 4, "V100", 0}));
  EXPECT_EQ(hints("gpus = 2"), (resources{0, 0, 2, "", 0}));
  EXPECT_EQ(hints("gpu_memory = \"24GiB\""), (resources{0, 0, 1, "", 24 * GiB}));
}

TEST(job_file, hint_errors) {
  auto text = [](const std::string& lines) {
    return "[job]\ncommand = [\"true\"]\n[job.hints]\n" + lines + "\n";
  };
  EXPECT_ERROR(text("cpus = 0"), "job.hints.cpus", "must be positive");
  EXPECT_ERROR(text("cpus = -2"), "job.hints.cpus", "must not be negative, got -2");
  EXPECT_ERROR(text("cpus = 0.0005"), "job.hints.cpus",
               "more than three decimal places in 0.0005 (the smallest unit is 0.001 cores)");
  EXPECT_ERROR(text("cpus = \"2\""), "job.hints.cpus",
               "expected a number of cores (e.g. 2 or 0.5), got string");
  EXPECT_ERROR(text("memory = \"lots\""), "job.hints.memory",
               "invalid size 'lots' (expected e.g. \"512MiB\", \"1GiB\", \"100MB\" or a number of "
               "bytes)");
  EXPECT_ERROR(text("memory = \"-1GiB\""), "job.hints.memory", "must not be negative, got '-1GiB'");
  EXPECT_ERROR(text("memory = -5"), "job.hints.memory", "must not be negative, got -5");
  EXPECT_ERROR(text("memory = 0"), "job.hints.memory", "must be positive");
  EXPECT_ERROR(text("gpu = \"T4\"\ngpus = 0"), "job.hints.gpus",
               "must be at least 1 when gpu or gpu_memory is given");
  EXPECT_ERROR(text("gpu = \"\""), "job.hints.gpu", "must not be empty");
  EXPECT_ERROR(text("gpus = 5000"), "job.hints.gpus", "out of range (0..1024), got 5000");
}

TEST(job_file, error_to_string) {
  EXPECT_EQ((config_error{"a.toml", "job.command", "must not be empty"}.to_string()),
            "a.toml: job.command: must not be empty");
  EXPECT_EQ((config_error{"a.toml", "", "No such file or directory"}.to_string()),
            "a.toml: No such file or directory");
}

class job_file_on_disk : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tender-job-file-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(job_file_on_disk, load_resolves_workdir_against_the_files_directory) {
  auto path = dir_ / "hello.toml";
  std::ofstream(path) << "[job]\ncommand = [\"echo\", \"hi\"]\nworkdir = \"out\"\n";
  auto r = load_job_file(path.string(), now);
  ASSERT_TRUE(std::holds_alternative<job_spec>(r)) << std::get<config_error>(r).to_string();
  EXPECT_EQ(std::get<job_spec>(r).workdir, (dir_ / "out").string());
  EXPECT_EQ(std::get<job_spec>(r).name, "hello");
}

TEST_F(job_file_on_disk, load_errors_name_the_file) {
  auto missing = (dir_ / "nope.toml").string();
  auto r = load_job_file(missing, now);
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).to_string(), missing + ": No such file or directory");

  auto bad = (dir_ / "bad.toml").string();
  std::ofstream(bad) << "[job]\ncommand = 1\n";
  r = load_job_file(bad, now);
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).to_string(),
            bad + ": job.command: expected an array of strings, got integer");

  r = load_job_file(dir_.string(), now);
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).to_string(), dir_.string() + ": Is a directory");
}

fs::path examples_dir() {
  // The source tree comes from the test's environment (CMake sets it): __FILE__ may be
  // relative when ccache rewrites paths.
  const char* src = std::getenv("TENDER_SOURCE_DIR");
  return fs::path(src ? src : ".") / "examples" / "jobs";
}

TEST(job_file_examples, every_example_parses) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(examples_dir())) {
    if (entry.path().extension() != ".toml") continue;
    auto r = load_job_file(entry.path().string(), now);
    if (auto* e = std::get_if<config_error>(&r)) {
      ADD_FAILURE() << e->to_string();
      continue;
    }
    const auto& spec = std::get<job_spec>(r);
    EXPECT_EQ(spec.name, entry.path().stem().string());
    EXPECT_GT(spec.max_cost, 0) << spec.name;
    EXPECT_GT(spec.walltime, 0) << spec.name;
    EXPECT_GT(spec.deadline, now) << spec.name;
    names.insert(spec.name);
  }
  for (auto want : {"hello", "cpu-burn", "memory-grow", "over-budget", "gpu-train"})
    EXPECT_TRUE(names.count(want)) << want;
}

TEST(job_file_examples, over_budget_and_gpu_examples_say_what_they_claim) {
  auto load = [](const std::string& name) {
    auto r = load_job_file((examples_dir() / (name + ".toml")).string(), now);
    return std::get<job_spec>(r);
  };
  auto over = load("over-budget");
  EXPECT_EQ(over.max_cost, 10'000);
  EXPECT_EQ(over.hints.gpus, 8);
  EXPECT_EQ(over.hints.gpu_type, "A100");
  auto gpu = load("gpu-train");
  EXPECT_EQ(gpu.hints.gpu_type, "T4");
  EXPECT_EQ(gpu.hints.gpus, 1);
}

} // namespace
} // namespace tender

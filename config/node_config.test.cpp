#include "config/node_config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace tender {
namespace {

namespace fs = std::filesystem;

constexpr bytes_t GiB = 1024LL * 1024 * 1024;

millicores machine_cores() { return ::sysconf(_SC_NPROCESSORS_ONLN) * 1000; }
bytes_t machine_memory() {
  return static_cast<bytes_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
}

std::variant<node_config, config_error> parse(const std::string& text,
                                              const std::string& base = "/etc/tender") {
  return parse_node_toml(text, "node.toml", base);
}

node_config ok(const std::string& text, const std::string& base = "/etc/tender") {
  auto r = parse(text, base);
  if (auto* e = std::get_if<config_error>(&r)) ADD_FAILURE() << "unexpected error: " << e->to_string();
  return std::holds_alternative<node_config>(r) ? std::get<node_config>(r) : node_config{};
}

config_error err(const std::string& text, const std::string& base = "/etc/tender") {
  auto r = parse(text, base);
  if (std::holds_alternative<node_config>(r)) {
    ADD_FAILURE() << "parsed, but an error was expected:\n" << text;
    return {};
  }
  return std::get<config_error>(r);
}

#define EXPECT_ERROR(text, key_, reason_)                                                          \
  do {                                                                                             \
    auto e_ = err(text);                                                                           \
    EXPECT_EQ(e_.file, "node.toml");                                                               \
    EXPECT_EQ(e_.key, key_);                                                                       \
    EXPECT_EQ(e_.reason, reason_);                                                                 \
  } while (0)

const std::string local_provider = "[[providers]]\nname = \"local\"\nkind = \"local\"\n";
const std::string market_provider =
    "[[providers]]\nname = \"m\"\nkind = \"market\"\ncatalogue = \"embedded:cloud-a\"\n";

std::vector<instance_type> embedded_types(const std::string& name) {
  auto r = parse_catalogue_toml(embedded_catalogues().at(name), "embedded:" + name);
  return std::get<std::vector<instance_type>>(r);
}

TEST(node_config, dev_config_has_a_local_and_three_markets) {
  auto c = dev_config();
  EXPECT_EQ(c.node_name, "dev");
  EXPECT_EQ(c.listen, "tcp://127.0.0.1:7470");
  EXPECT_EQ(c.data_dir, "");
  EXPECT_EQ(c.source, "<embedded dev config>");
  EXPECT_EQ(c.sample_interval, 100'000);
  EXPECT_EQ(c.auction.protocol, "iterated");
  ASSERT_EQ(c.providers.size(), 4u);

  const auto& local = c.providers[0];
  EXPECT_EQ(local.name, "local");
  EXPECT_EQ(local.kind, "local");
  EXPECT_EQ(local.capacity.cpu, machine_cores());
  EXPECT_EQ(local.capacity.memory, machine_memory() / 100 * 80);
  EXPECT_EQ(local.price_per_core_hour, 40'000);
  EXPECT_EQ(local.price_per_gib_hour, 5'000);
  EXPECT_EQ(local.busy_markup, 1.5);
  EXPECT_TRUE(local.types.empty());

  const auto& a = c.providers[1];
  EXPECT_EQ(a.name, "cloud-a");
  EXPECT_EQ(a.kind, "market");
  EXPECT_EQ(a.catalogue, "embedded:cloud-a");
  EXPECT_TRUE(a.offer_spot);
  EXPECT_EQ(a.provisioning_delay, 2'000'000);
  EXPECT_EQ(a.resize_delay, 2'000'000);
  EXPECT_EQ(a.preemption_per_hour, 0.05);
  EXPECT_EQ(a.types.size(), embedded_types("cloud-a").size());

  const auto& b = c.providers[2];
  EXPECT_EQ(b.name, "cloud-b");
  EXPECT_EQ(b.catalogue, "embedded:cloud-b");
  EXPECT_FALSE(b.offer_spot);
  EXPECT_TRUE(b.offer_on_demand);
  EXPECT_FALSE(b.types.empty());

  const auto& g = c.providers[3];
  EXPECT_EQ(g.name, "gpu-vendor");
  EXPECT_EQ(g.catalogue, "embedded:gpu-vendor");
  EXPECT_FALSE(g.types.empty());
  EXPECT_NE(a.seed, b.seed);
}

TEST(node_config, dev_config_text_is_the_parsed_text) {
  auto r = parse_node_toml(dev_config_text(), "dev.toml", "");
  ASSERT_TRUE(std::holds_alternative<node_config>(r)) << std::get<config_error>(r).to_string();
  EXPECT_EQ(std::get<node_config>(r).providers.size(), dev_config().providers.size());
}

TEST(node_config, empty_text_gives_the_struct_defaults) {
  auto c = ok("");
  node_config d;
  EXPECT_EQ(c.node_name, d.node_name);
  EXPECT_EQ(c.listen, d.listen);
  EXPECT_EQ(c.auction.round_timeout, d.auction.round_timeout);
  EXPECT_EQ(c.scoring.deadline_target, d.scoring.deadline_target);
  EXPECT_TRUE(c.providers.empty());
}

TEST(node_config, every_section_is_read) {
  auto c = ok(R"(
[node]
name = "n1"
listen = "tcp://0.0.0.0:9000"
data_dir = "state"
sample_interval = "250ms"
[auction]
protocol = "vickrey"
max_rounds = 1
round_timeout = "300ms"
hold_ttl = 20
commit_timeout = "2s"
lease_ttl = "5m"
[scoring]
w_cost = 2
w_deadline = 0.5
w_risk = 0
deadline_target = 0.95
[models]
runtime = "/var/lib/tender/runtime.json"
retrain_every = "6h"
retrain_min_jobs = 500
[[providers]]
name = "box"
kind = "local"
cpus = 6.5
memory = "12GiB"
gpus = 1
gpu_type = "T4"
gpu_memory = "16GiB"
price_per_core_hour = 0.04
price_per_gib_hour = "0.005"
price_per_gpu_hour = 0.35
busy_markup = 1.25
reserve_price = 0.000010
refuse_probability = 0.1
availability = 0.98
seed = 42
latency = "2ms"
hold_ttl = "10s"
software = ["sh"]
cpu_features = ["avx2", "avx512f"]
)");
  EXPECT_EQ(c.node_name, "n1");
  EXPECT_EQ(c.listen, "tcp://0.0.0.0:9000");
  EXPECT_EQ(c.data_dir, "/etc/tender/state");
  EXPECT_EQ(c.sample_interval, 250'000);
  EXPECT_EQ(c.auction.protocol, "vickrey");
  EXPECT_EQ(c.auction.max_rounds, 1);
  EXPECT_EQ(c.auction.round_timeout, 300'000);
  EXPECT_EQ(c.auction.hold_ttl, 20'000'000);
  EXPECT_EQ(c.auction.commit_timeout, 2'000'000);
  EXPECT_EQ(c.auction.lease_ttl, 300'000'000);
  EXPECT_EQ(c.scoring.w_cost, 2.0);
  EXPECT_EQ(c.scoring.w_deadline, 0.5);
  EXPECT_EQ(c.scoring.w_risk, 0.0);
  EXPECT_EQ(c.scoring.deadline_target, 0.95);
  EXPECT_EQ(c.models_runtime, "/var/lib/tender/runtime.json");
  EXPECT_EQ(c.models_retrain_every, 6 * 3600 * sec_us);
  EXPECT_EQ(c.models_retrain_min_jobs, 500);
  ASSERT_EQ(c.providers.size(), 1u);
  const auto& p = c.providers[0];
  EXPECT_EQ(p.name, "box");
  EXPECT_EQ(p.kind, "local");
  EXPECT_EQ(p.capacity, (resources{6500, 12 * GiB, 1, "T4", 16 * GiB}));
  EXPECT_EQ(p.price_per_core_hour, 40'000);
  EXPECT_EQ(p.price_per_gib_hour, 5'000);
  EXPECT_EQ(p.price_per_gpu_hour, 350'000);
  EXPECT_EQ(p.busy_markup, 1.25);
  EXPECT_EQ(p.reserve_price, 10);
  EXPECT_EQ(p.refuse_probability, 0.1);
  EXPECT_EQ(p.availability, 0.98);
  EXPECT_EQ(p.seed, 42u);
  EXPECT_EQ(p.latency, 2'000);
  EXPECT_EQ(p.hold_ttl, 10'000'000);
  EXPECT_EQ(p.software, std::vector<std::string>{"sh"});
  EXPECT_EQ(p.cpu_features, (std::vector<std::string>{"avx2", "avx512f"}));
}

TEST(node_config, models_runtime_requested_is_a_choice_not_a_path) {
  EXPECT_EQ(ok("[models]\nruntime = \"requested\"\n").models_runtime, "requested");
  EXPECT_EQ(ok("[models]\nruntime = \"requested.json\"\n").models_runtime,
            "/etc/tender/requested.json");
}

TEST(node_config, local_capacity_defaults_to_this_machine) {
  auto c = ok(local_provider);
  EXPECT_EQ(c.providers[0].capacity.cpu, machine_cores());
  EXPECT_EQ(c.providers[0].capacity.memory, machine_memory() / 100 * 80);
  c = ok(local_provider + "cpus = \"auto\"\nmemory = \"50%\"\n");
  EXPECT_EQ(c.providers[0].capacity.cpu, machine_cores());
  EXPECT_EQ(c.providers[0].capacity.memory, machine_memory() / 100 * 50);
}

TEST(node_config, market_reads_its_embedded_catalogue) {
  auto c = ok(market_provider + "offer_spot = false\nprovisioning_delay = \"3s\"\nmax_instances = 5\n");
  const auto& p = c.providers[0];
  EXPECT_EQ(p.catalogue, "embedded:cloud-a");
  EXPECT_FALSE(p.offer_spot);
  EXPECT_EQ(p.provisioning_delay, 3'000'000);
  EXPECT_EQ(p.resize_delay, -1); // not set: no resizes
  EXPECT_EQ(p.max_instances, 5);
  EXPECT_EQ(p.capacity, resources{}); // bounded by max_instances only
  auto want = embedded_types("cloud-a");
  ASSERT_EQ(p.types.size(), want.size());
  EXPECT_EQ(p.types.front().name, want.front().name);
  EXPECT_EQ(p.types.back().on_demand_per_hour, want.back().on_demand_per_hour);
}

TEST(node_config, market_spot_following) {
  auto c = ok(market_provider + "spot_follow = true\nspot_follow_speed = 60\n");
  const auto& p = c.providers[0];
  EXPECT_TRUE(p.spot_follow);
  EXPECT_EQ(p.spot_follow_speed, 60);
  EXPECT_FALSE(ok(market_provider).providers[0].spot_follow); // the snapshot by default
  EXPECT_EQ(ok(market_provider).providers[0].spot_follow_speed, 1);
  EXPECT_ERROR(local_provider + "spot_follow = true\n", "providers[0].spot_follow",
               "only applies to market providers");
  EXPECT_ERROR(market_provider + "spot_follow_speed = 0\n", "providers[0].spot_follow_speed",
               "out of range (1..1000), got 0");
  EXPECT_EQ(ok(market_provider + "resize_delay = \"90s\"\n").providers[0].resize_delay,
            90 * sec_us);
  EXPECT_ERROR(local_provider + "resize_delay = \"90s\"\n", "providers[0].resize_delay",
               "only applies to market providers");
}

TEST(node_config, unknown_provider_kind_names_its_index) {
  EXPECT_ERROR(local_provider + market_provider +
                   "[[providers]]\nname = \"k8s\"\nkind = \"kubernetes\"\n",
               "providers[2].kind", "unknown provider kind 'kubernetes' (expected local, market or slurm)");
  EXPECT_ERROR("[[providers]]\nname = \"x\"\n", "providers[0].kind", "missing (expected local, market or slurm)");
  EXPECT_ERROR("[[providers]]\nkind = \"local\"\n", "providers[0].name",
               "missing (every provider needs a unique name)");
}

TEST(node_config, duplicate_provider_names_are_refused) {
  EXPECT_ERROR(local_provider + market_provider + local_provider, "providers[2].name",
               "duplicate provider name 'local' (also providers[0])");
}

TEST(node_config, unknown_keys_are_refused) {
  EXPECT_ERROR("[nodes]\nname = \"x\"\n", "nodes",
               "unknown key (expected one of: node, auction, scoring, scaling, models, providers, "
               "bus, intake, console, peers, federation, security)");
  EXPECT_ERROR("[node]\nnmae = \"x\"\n", "node.nmae",
               "unknown key (expected one of: name, listen, data_dir, sample_interval)");
  EXPECT_ERROR("[models]\nruntme = \"x\"\n", "models.runtme", "unknown key (expected one of: runtime, retrain_every, retrain_min_jobs)");
  auto e = err(local_provider + "price_per_core = 0.1\n");
  EXPECT_EQ(e.key, "providers[0].price_per_core");
  EXPECT_EQ(e.reason.rfind("unknown key (expected one of: name, kind, cpus, ", 0), 0u) << e.reason;
}

TEST(node_config, section_errors) {
  EXPECT_ERROR("[auction]\nprotocol = \"dutch\"\n", "auction.protocol",
               "unknown protocol 'dutch' (expected iterated or vickrey)");
  EXPECT_ERROR("[auction]\nmax_rounds = 0\n", "auction.max_rounds", "out of range (1..100), got 0");
  EXPECT_ERROR("[auction]\nround_timeout = \"0s\"\n", "auction.round_timeout", "must be positive");
  EXPECT_ERROR("[auction]\nhold_ttl = \"-1s\"\n", "auction.hold_ttl", "must not be negative, got '-1s'");
  EXPECT_ERROR("[scoring]\ndeadline_target = 1.5\n", "scoring.deadline_target",
               "must be between 0 and 1, got 1.5");
  EXPECT_ERROR("[scoring]\nw_cost = \"high\"\n", "scoring.w_cost", "expected a number, got string");
  EXPECT_ERROR("[node]\nlisten = \"127.0.0.1:7470\"\n", "node.listen",
               "expected an endpoint like tcp://127.0.0.1:7470, got '127.0.0.1:7470'");
  EXPECT_ERROR("[node]\nname = \"\"\n", "node.name", "must not be empty");
  EXPECT_ERROR("node = 1\n", "node", "expected a table, got integer");
  EXPECT_ERROR("[providers]\nname = \"x\"\n", "providers",
               "expected an array of tables ([[providers]]), got table");
}

TEST(node_config, provider_value_errors) {
  EXPECT_ERROR(local_provider + "price_per_core_hour = -0.1\n", "providers[0].price_per_core_hour",
               "must not be negative, got -0.1");
  EXPECT_ERROR(local_provider + "price_per_gib_hour = 0.0000001\n", "providers[0].price_per_gib_hour",
               "more than six decimal places in 0.0000001 (the smallest unit is $0.000001)");
  EXPECT_ERROR(local_provider + "busy_markup = 0.5\n", "providers[0].busy_markup",
               "must be between 1 and 100, got 0.5");
  EXPECT_ERROR(local_provider + "memory = \"150%\"\n", "providers[0].memory",
               "invalid percentage '150%' (expected a whole number from 1% to 100%)");
  EXPECT_ERROR(local_provider + "cpus = \"many\"\n", "providers[0].cpus",
               "expected a number of cores or \"auto\", got 'many'");
  EXPECT_ERROR(local_provider + "availability = 0\n", "providers[0].availability", "must be positive");
  EXPECT_ERROR(local_provider + "refuse_probability = 2\n", "providers[0].refuse_probability",
               "must be between 0 and 1, got 2");
  EXPECT_ERROR(local_provider + "seed = -1\n", "providers[0].seed",
               "out of range (0..9223372036854775807), got -1");
  EXPECT_ERROR(local_provider + "software = \"sh\"\n", "providers[0].software",
               "expected an array of strings, got string");
}

TEST(node_config, kind_specific_keys_are_refused_on_the_other_kind) {
  EXPECT_ERROR(local_provider + "catalogue = \"embedded:cloud-a\"\n", "providers[0].catalogue",
               "only applies to market providers");
  EXPECT_ERROR(market_provider + "price_per_core_hour = 0.1\n", "providers[0].price_per_core_hour",
               "only applies to local providers (a market's prices come from its catalogue)");
  EXPECT_ERROR(market_provider + "plan_horizon = \"1h\"\n", "providers[0].plan_horizon",
               "only applies to local providers (the internal cluster's plan)");
  EXPECT_ERROR(local_provider + "plan_horizon = \"soon\"\n", "providers[0].plan_horizon",
               "invalid duration 'soon' (expected e.g. \"30m\", \"1h30m\", \"250ms\" or a number of "
               "seconds)");
  EXPECT_ERROR(market_provider + "cpus = \"auto\"\n", "providers[0].cpus",
               "\"auto\" is only for local providers");
  EXPECT_ERROR(market_provider + "memory = \"50%\"\n", "providers[0].memory",
               "a percentage is only for local providers");
  EXPECT_ERROR(market_provider + "offer_spot = false\noffer_on_demand = false\n",
               "providers[0].offer_on_demand",
               "offer_spot and offer_on_demand are both false: the market would offer nothing");
}

TEST(node_config, catalogue_errors) {
  EXPECT_ERROR("[[providers]]\nname = \"m\"\nkind = \"market\"\n", "providers[0].catalogue",
               "missing (a market provider needs a catalogue: a file path or \"embedded:NAME\")");
  std::string known;
  for (const auto& [name, text] : embedded_catalogues()) known += (known.empty() ? "" : ", ") + name;
  EXPECT_ERROR("[[providers]]\nname = \"m\"\nkind = \"market\"\ncatalogue = \"embedded:nope\"\n",
               "providers[0].catalogue", "no embedded catalogue 'nope' (available: " + known + ")");
}

class node_config_on_disk : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tender-node-config-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "cats");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(node_config_on_disk, relative_catalogue_path_resolves_against_the_config) {
  std::ofstream(dir_ / "cats" / "b.toml") << embedded_catalogues().at("cloud-b");
  std::ofstream(dir_ / "node.toml")
      << "[[providers]]\nname = \"b\"\nkind = \"market\"\ncatalogue = \"cats/b.toml\"\n";
  auto r = load_node_config((dir_ / "node.toml").string());
  ASSERT_TRUE(std::holds_alternative<node_config>(r)) << std::get<config_error>(r).to_string();
  const auto& p = std::get<node_config>(r).providers.at(0);
  EXPECT_EQ(p.catalogue, (dir_ / "cats" / "b.toml").string());
  auto want = embedded_types("cloud-b");
  ASSERT_EQ(p.types.size(), want.size());
  EXPECT_EQ(p.types.front().name, want.front().name);
}

TEST_F(node_config_on_disk, catalogue_errors_name_the_catalogue_file) {
  auto text = [](const std::string& cat) {
    return "[[providers]]\nname = \"b\"\nkind = \"market\"\ncatalogue = \"" + cat + "\"\n";
  };
  auto e = err(text("cats/missing.toml"), dir_.string());
  EXPECT_EQ(e.file, (dir_ / "cats" / "missing.toml").string()) << e.to_string();

  std::ofstream(dir_ / "cats" / "broken.toml") << "[[type]\nname = \n";
  e = err(text("cats/broken.toml"), dir_.string());
  EXPECT_EQ(e.file, (dir_ / "cats" / "broken.toml").string()) << e.to_string();
}

TEST_F(node_config_on_disk, load_errors_name_the_file) {
  auto missing = (dir_ / "none.toml").string();
  auto r = load_node_config(missing);
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).to_string(), missing + ": No such file or directory");
}

TEST(node_config, slurm_provider_keys) {
  auto c = ok("[[providers]]\nname = \"hpc\"\nkind = \"slurm\"\nslurm_conf = \"slurm/slurm.conf\"\n"
              "partition = \"debug\"\naccount = \"lab\"\nreservation_user = \"ana\"\n"
              "command_timeout = \"5s\"\npoll_interval = \"500ms\"\ncpus = 4\nmemory = \"8GiB\"\n"
              "price_per_core_hour = 0.02\nprice_per_gib_hour = 0.001\nreserve_price = 0.01\n");
  ASSERT_EQ(c.providers.size(), 1u);
  const auto& p = c.providers[0];
  EXPECT_EQ(p.kind, "slurm");
  EXPECT_EQ(p.slurm_conf, "/etc/tender/slurm/slurm.conf");
  EXPECT_EQ(p.partition, "debug");
  EXPECT_EQ(p.account, "lab");
  EXPECT_EQ(p.reservation_user, "ana");
  EXPECT_EQ(p.command_timeout, 5 * sec_us);
  EXPECT_EQ(p.poll_interval, 500 * ms_us);
  EXPECT_EQ(p.capacity.cpu, 4000);
  EXPECT_EQ(p.capacity.memory, 8 * GiB);
  EXPECT_EQ(p.price_per_core_hour, 20'000);
  EXPECT_EQ(p.reserve_price, 10'000);

  // Left out: no bound on what one job may ask of the cluster.
  auto d = ok("[[providers]]\nname = \"hpc\"\nkind = \"slurm\"\n");
  EXPECT_EQ(d.providers[0].capacity.cpu, 0);
  EXPECT_EQ(d.providers[0].slurm_conf, "");
  EXPECT_EQ(d.providers[0].command_timeout, 10 * sec_us);

  const std::string slurm = "[[providers]]\nname = \"hpc\"\nkind = \"slurm\"\n";
  EXPECT_ERROR(local_provider + "partition = \"debug\"\n", "providers[0].partition",
               "only applies to slurm providers");
  EXPECT_ERROR(slurm + "catalogue = \"embedded:cloud-a\"\n", "providers[0].catalogue",
               "only applies to market providers");
  EXPECT_ERROR(slurm + "busy_markup = 1.5\n", "providers[0].busy_markup",
               "does not apply to slurm providers (start times come from Slurm; no GPUs)");
  EXPECT_ERROR(slurm + "command_timeout = \"0s\"\n", "providers[0].command_timeout",
               "must be positive");
}

TEST(node_config, scaling_defaults_and_every_key) {
  const scaling_config d = ok("").scaling;
  EXPECT_TRUE(d.enabled);
  EXPECT_EQ(d.memory_horizon, 10 * 60 * sec_us);
  EXPECT_EQ(d.memory_window, 30 * 60 * sec_us);
  EXPECT_EQ(d.disruptive_gap, 3600 * sec_us);
  EXPECT_DOUBLE_EQ(d.min_gain, 0.05);
  EXPECT_DOUBLE_EQ(d.max_step, 4.0);
  EXPECT_TRUE(d.move);
  EXPECT_TRUE(d.cpu_forecast);
  EXPECT_EQ(d.throttle_min_span, 5 * sec_us);

  auto c = ok("[scaling]\nenabled = false\nmemory_horizon = \"5s\"\nmemory_window = \"2m\"\n"
              "memory_margin = 0.2\nthrottle_window = \"30s\"\nthrottle_share = 0.8\n"
              "throttle_min_span = \"0s\"\n"
              "cpu_margin = 0\nshrink_window = \"10s\"\nruntime_extension = 0.5\n"
              "min_gain = 0.1\ndisruptive_gap = \"0s\"\nmax_step = 2.5\n"
              "answer_timeout = \"2s\"\nmove = false\ncpu_forecast = false\n"
              "forecast_short_cost = 500\n")
            .scaling;
  EXPECT_FALSE(c.enabled);
  EXPECT_EQ(c.memory_horizon, 5 * sec_us);
  EXPECT_EQ(c.memory_window, 120 * sec_us);
  EXPECT_DOUBLE_EQ(c.memory_margin, 0.2);
  EXPECT_EQ(c.throttle_window, 30 * sec_us);
  EXPECT_DOUBLE_EQ(c.throttle_share, 0.8);
  EXPECT_EQ(c.throttle_min_span, 0);
  EXPECT_DOUBLE_EQ(c.cpu_margin, 0.0);
  EXPECT_EQ(c.shrink_window, 10 * sec_us);
  EXPECT_DOUBLE_EQ(c.runtime_extension, 0.5);
  EXPECT_DOUBLE_EQ(c.min_gain, 0.1);
  EXPECT_EQ(c.disruptive_gap, 0);
  EXPECT_DOUBLE_EQ(c.max_step, 2.5);
  EXPECT_EQ(c.answer_timeout, 2 * sec_us);
  EXPECT_FALSE(c.move);
  EXPECT_FALSE(c.cpu_forecast);
  EXPECT_DOUBLE_EQ(c.forecast_short_cost, 500);
}

TEST(node_config, bad_scaling_values_name_the_key) {
  EXPECT_ERROR("[scaling]\nenable = true\n", "scaling.enable",
               "unknown key (expected one of: enabled, memory_horizon, memory_window, "
               "memory_margin, throttle_window, throttle_share, throttle_min_span, cpu_margin, "
               "shrink_window, "
               "runtime_extension, min_gain, disruptive_gap, max_step, answer_timeout, move, "
               "cpu_forecast, forecast_short_cost)");
  EXPECT_ERROR("[scaling]\nenabled = \"yes\"\n", "scaling.enabled",
               "expected a boolean (true or false), got string");
  EXPECT_ERROR("[scaling]\nmemory_horizon = \"0s\"\n", "scaling.memory_horizon",
               "must be positive");
  EXPECT_ERROR("[scaling]\nmemory_margin = -0.1\n", "scaling.memory_margin",
               "must be between 0 and 10, got -0.1");
  EXPECT_ERROR("[scaling]\nmin_gain = 1\n", "scaling.min_gain",
               "must be between 0 and 0.99, got 1");
  EXPECT_ERROR("[scaling]\nmax_step = 1\n", "scaling.max_step",
               "must be above 1 (1 would forbid every change)");
  EXPECT_ERROR("[scaling]\nthrottle_share = 0\n", "scaling.throttle_share",
               "must be positive (0 would call every job throttled)");
  EXPECT_ERROR("[scaling]\nthrottle_min_span = true\n", "scaling.throttle_min_span",
               "expected a duration (a string like \"30m\" or a number of seconds), got boolean");
  EXPECT_ERROR("[scaling]\nmemory_horizon = \"2h\"\nmemory_window = \"10m\"\n",
               "scaling.memory_window",
               "is shorter than a tenth of memory_horizon: the trend would be projected more "
               "than ten times as far as it was seen");
}

TEST(node_config_examples, sample_config_parses) {
  const char* src = std::getenv("TENDER_SOURCE_DIR"); // set by CMake for tests
  auto examples = fs::path(src ? src : ".") / "examples";
  auto r = load_node_config((examples / "tender.toml").string());
  ASSERT_TRUE(std::holds_alternative<node_config>(r)) << std::get<config_error>(r).to_string();
  const auto& c = std::get<node_config>(r);
  EXPECT_EQ(c.data_dir, (examples / "tender-data").lexically_normal().string());
  ASSERT_EQ(c.providers.size(), 3u);
  EXPECT_EQ(c.providers[0].capacity.memory, machine_memory() / 100 * 75);
  EXPECT_EQ(c.providers[0].plan_horizon, 24 * 3600 * sec_us);
  EXPECT_EQ(c.providers[1].plan_horizon, 0) << "markets do not plan";
  EXPECT_FALSE(c.providers[2].types.empty());
}

TEST(node_config, bus_and_intake_sections) {
  auto d = ok("");
  EXPECT_EQ(d.bus.listen, "");
  EXPECT_EQ(d.bus.publish, "");
  EXPECT_EQ(d.max_active_jobs, 64);
  auto c = ok("[bus]\nlisten = \"tcp://127.0.0.1:7471\"\npublish = \"tcp://127.0.0.1:7472\"\n"
              "hwm = 5000\nbatch = 256\n[intake]\nmax_active_jobs = 0\n");
  EXPECT_EQ(c.bus.listen, "tcp://127.0.0.1:7471");
  EXPECT_EQ(c.bus.publish, "tcp://127.0.0.1:7472");
  EXPECT_EQ(c.bus.hwm, 5000);
  EXPECT_EQ(c.bus.batch, 256);
  EXPECT_EQ(c.max_active_jobs, 0);
  EXPECT_ERROR("[bus]\nlisten = \"127.0.0.1:7471\"\n", "bus.listen",
               "expected an endpoint like tcp://127.0.0.1:7471, got '127.0.0.1:7471'");
  EXPECT_ERROR("[bus]\npublish = \"\"\n", "bus.publish", "must not be empty");
  EXPECT_ERROR("[bus]\nbatch = 0\n", "bus.batch", "out of range (1..100000), got 0");
  EXPECT_ERROR("[bus]\nhwm = \"big\"\n", "bus.hwm", "expected an integer, got string");
  EXPECT_ERROR("[bus]\nlisen = \"x\"\n", "bus.lisen",
               "unknown key (expected one of: listen, publish, hwm, batch)");
  EXPECT_ERROR("[intake]\nmax_active_jobs = -1\n", "intake.max_active_jobs",
               "out of range (0..1000000), got -1");
}

TEST(node_config, peers_and_federation) {
  auto c = ok("[node]\nname = \"site-b\"\n[federation]\nhop_limit = 3\nheartbeat = \"250ms\"\n"
              "[[peers]]\nname = \"site-a\"\nendpoint = \"tcp://127.0.0.1:7471\"\n"
              "[[peers]]\nname = \"site-c\"\nendpoint = \"tcp://10.0.0.3:7470\"\n"
              "server_key = \"keys/site-c.pub\"\n");
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[0].server_key, "");
  // A .pub path resolves against the config's directory (a Z85 key is kept as it is).
  EXPECT_NE(c.peers[1].server_key.find("keys/site-c.pub"), std::string::npos);
  EXPECT_EQ(c.peers[1].server_key.back(), 'b');
  EXPECT_EQ(c.peers[0].name, "site-a");
  EXPECT_EQ(c.peers[0].endpoint, "tcp://127.0.0.1:7471");
  EXPECT_EQ(c.peers[1].name, "site-c");
  EXPECT_EQ(c.federation.hop_limit, 3);
  EXPECT_EQ(c.federation.heartbeat, 250'000);
  auto d = ok("");
  EXPECT_TRUE(d.peers.empty());
  EXPECT_EQ(d.federation.hop_limit, 2);
  EXPECT_EQ(d.federation.heartbeat, 500'000);

  EXPECT_ERROR("[[peers]]\nendpoint = \"tcp://127.0.0.1:1\"\n", "peers[0].name",
               "missing: every peer needs a name");
  EXPECT_ERROR("[[peers]]\nname = \"a\"\n", "peers[0].endpoint",
               "missing: where the peer listens, e.g. tcp://127.0.0.1:7471");
  EXPECT_ERROR("[[peers]]\nname = \"a\"\nendpoint = \"127.0.0.1:1\"\n", "peers[0].endpoint",
               "expected an endpoint like tcp://127.0.0.1:7471, got '127.0.0.1:1'");
  EXPECT_ERROR("[node]\nname = \"a\"\n[[peers]]\nname = \"a\"\nendpoint = \"tcp://h:1\"\n",
               "peers[0].name", "a node cannot peer with itself ('a' is [node] name)");
  EXPECT_ERROR("[[peers]]\nname = \"a\"\nendpoint = \"tcp://h:1\"\n"
               "[[peers]]\nname = \"a\"\nendpoint = \"tcp://h:2\"\n",
               "peers[1].name", "duplicate peer name 'a' (also peers[0])");
  EXPECT_ERROR("[[peers]]\nname = \"a\"\nendpoint = \"tcp://h:1\"\nport = 3\n", "peers[0].port",
               "unknown key (expected one of: name, endpoint, server_key)");
  EXPECT_ERROR("[federation]\nhop_limit = 0\n", "federation.hop_limit",
               "out of range (1..16), got 0");
  EXPECT_ERROR("peers = 3\n", "peers", "expected an array of tables ([[peers]]), got integer");
}

} // namespace
} // namespace tender

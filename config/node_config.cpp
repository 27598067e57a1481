#include "config/node_config.hpp"

#include "config/toml_reader.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include <set>
#include <stdexcept>

namespace tender {

namespace {

using config_detail::config_failure;
using config_detail::table_reader;

// The configuration behind `tender agent --dev`. It is parsed by parse_node_toml
// like any file, so the defaults exercise the same code as a user's config.
constexpr const char* dev_config_toml = R"toml(# tender's built-in development configuration (`tender agent --dev`).
[node]
name = "dev"
listen = "tcp://127.0.0.1:7470"
data_dir = ""              # empty: a fresh temporary directory
sample_interval = "100ms"

[auction]
protocol = "iterated"
max_rounds = 2
round_timeout = "200ms"
hold_ttl = "30s"
commit_timeout = "1s"
lease_ttl = "10m"

[scoring]
w_cost = 1.0
w_deadline = 1.0
w_risk = 1.0
deadline_target = 0.9

# This machine: all its cores and 80 % of its memory, cost-plus pricing.
[[providers]]
name = "local"
kind = "local"
cpus = "auto"
memory = "80%"
price_per_core_hour = 0.040
price_per_gib_hour = 0.005
busy_markup = 1.5
latency = "1ms"
availability = 0.99
software = ["sh", "coreutils", "gzip", "python3"]
# When busy, offer the start the plan projects (EASY backfilling) up to a day ahead.
plan_horizon = "24h"

# A cloud market with cheap, preemptible spot capacity.
[[providers]]
name = "cloud-a"
kind = "market"
catalogue = "embedded:cloud-a"
offer_spot = true
offer_on_demand = true
provisioning_delay = "2s"
resize_delay = "2s"     # a running instance changes type: stop, change, start
preemption_per_hour = 0.05
availability = 0.995
latency = "20ms"
seed = 1
max_instances = 8
software = ["sh", "coreutils", "gzip", "python3"]

# A second market: on-demand only, slower to provision, more reliable.
[[providers]]
name = "cloud-b"
kind = "market"
catalogue = "embedded:cloud-b"
offer_spot = false
offer_on_demand = true
provisioning_delay = "4s"
resize_delay = "4s"
availability = 0.999
latency = "30ms"
seed = 2
max_instances = 8
software = ["sh", "coreutils", "gzip", "python3"]

# A GPU specialist.
[[providers]]
name = "gpu-vendor"
kind = "market"
catalogue = "embedded:gpu-vendor"
offer_spot = true
offer_on_demand = true
provisioning_delay = "5s"
resize_delay = "5s"
preemption_per_hour = 0.10
availability = 0.99
latency = "40ms"
seed = 3
max_instances = 4
software = ["sh", "coreutils", "python3", "cuda"]
)toml";

constexpr const char* dev_source = "<embedded dev config>";

millicores machine_cores() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return (n > 0 ? n : 1) * 1000;
}

bytes_t machine_memory() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<bytes_t>(pages) * page : 0;
}

void read_node(const table_reader& t, node_config& c, const std::string& base_dir) {
  t.allow_only({"name", "listen", "data_dir", "sample_interval"});
  if (auto v = t.nonempty_string("name")) c.node_name = *v;
  if (auto v = t.nonempty_string("listen")) {
    if (v->find("://") == std::string::npos)
      t.fail("listen", "expected an endpoint like tcp://127.0.0.1:7470, got '" + *v + "'");
    c.listen = *v;
  }
  if (auto v = t.string("data_dir"))
    c.data_dir = v->empty() ? std::string() : config_detail::resolve_path(base_dir, *v);
  if (auto v = t.positive_duration("sample_interval")) c.sample_interval = *v;
}

void read_auction(const table_reader& t, auction_config& a) {
  t.allow_only({"protocol", "max_rounds", "round_timeout", "hold_ttl", "commit_timeout", "lease_ttl"});
  if (auto v = t.string("protocol")) {
    if (*v != "iterated" && *v != "vickrey")
      t.fail("protocol", "unknown protocol '" + *v + "' (expected iterated or vickrey)");
    a.protocol = *v;
  }
  if (auto v = t.integer_in("max_rounds", 1, 100)) a.max_rounds = static_cast<std::int32_t>(*v);
  if (auto v = t.positive_duration("round_timeout")) a.round_timeout = *v;
  if (auto v = t.positive_duration("hold_ttl")) a.hold_ttl = *v;
  if (auto v = t.positive_duration("commit_timeout")) a.commit_timeout = *v;
  if (auto v = t.positive_duration("lease_ttl")) a.lease_ttl = *v;
}

void read_scoring(const table_reader& t, scoring_config& s) {
  t.allow_only({"w_cost", "w_deadline", "w_risk", "deadline_target"});
  constexpr double big = 1e9;
  if (auto v = t.number_in("w_cost", 0, big)) s.w_cost = *v;
  if (auto v = t.number_in("w_deadline", 0, big)) s.w_deadline = *v;
  if (auto v = t.number_in("w_risk", 0, big)) s.w_risk = *v;
  if (auto v = t.number_in("deadline_target", 0, 1)) s.deadline_target = *v;
}

void read_scaling(const table_reader& t, scaling_config& s) {
  t.allow_only({"enabled", "memory_horizon", "memory_window", "memory_margin", "throttle_window",
                "throttle_share", "throttle_min_span", "cpu_margin", "shrink_window",
                "runtime_extension", "min_gain", "disruptive_gap", "max_step", "answer_timeout",
                "move", "cpu_forecast", "forecast_short_cost"});
  if (auto v = t.boolean("enabled")) s.enabled = *v;
  if (auto v = t.positive_duration("memory_horizon")) s.memory_horizon = *v;
  if (auto v = t.positive_duration("memory_window")) s.memory_window = *v;
  if (auto v = t.number_in("memory_margin", 0, 10)) s.memory_margin = *v;
  if (auto v = t.positive_duration("throttle_window")) s.throttle_window = *v;
  if (auto v = t.number_in("throttle_share", 0, 1)) {
    if (*v <= 0) t.fail("throttle_share", "must be positive (0 would call every job throttled)");
    s.throttle_share = *v;
  }
  if (auto v = t.duration("throttle_min_span")) s.throttle_min_span = *v;
  if (auto v = t.number_in("cpu_margin", 0, 10)) s.cpu_margin = *v;
  if (auto v = t.positive_duration("shrink_window")) s.shrink_window = *v;
  if (auto v = t.number_in("runtime_extension", 0, 100)) {
    if (*v <= 0) t.fail("runtime_extension", "must be positive (the extended end must lie ahead)");
    s.runtime_extension = *v;
  }
  if (auto v = t.number_in("min_gain", 0, 0.99)) s.min_gain = *v;
  if (auto v = t.duration("disruptive_gap")) s.disruptive_gap = *v;
  if (auto v = t.number_in("max_step", 1, 1000)) {
    if (*v <= 1) t.fail("max_step", "must be above 1 (1 would forbid every change)");
    s.max_step = *v;
  }
  if (auto v = t.positive_duration("answer_timeout")) s.answer_timeout = *v;
  if (auto v = t.boolean("move")) s.move = *v;
  if (auto v = t.boolean("cpu_forecast")) s.cpu_forecast = *v;
  if (auto v = t.number_in("forecast_short_cost", 0, 1e9)) s.forecast_short_cost = *v;
  // The trend needs history reaching at least as far as the horizon it projects.
  if (s.memory_window < s.memory_horizon / 10)
    t.fail("memory_window", "is shorter than a tenth of memory_horizon: the trend would be "
                            "projected more than ten times as far as it was seen");
}

/// `cpus`: a number of cores, or "auto" (this machine's, local providers only).
void read_provider_cpus(const table_reader& t, provider_config& p) {
  auto n = t.get("cpus");
  if (n && n->is_string()) {
    if (n->as_string()->get() != "auto")
      t.fail("cpus", "expected a number of cores or \"auto\", got '" + n->as_string()->get() + "'");
    if (p.kind != "local") t.fail("cpus", "\"auto\" is only for local providers");
    p.capacity.cpu = machine_cores();
  } else if (auto v = t.cores("cpus")) {
    p.capacity.cpu = *v;
  } else if (p.kind == "local") {
    p.capacity.cpu = machine_cores();
  }
}

/// `memory`: a size, or "N%" of this machine's memory (local providers only).
void read_provider_memory(const table_reader& t, provider_config& p) {
  auto n = t.get("memory");
  if (n && n->is_string() && !n->as_string()->get().empty() &&
      n->as_string()->get().back() == '%') {
    auto s = n->as_string()->get();
    if (p.kind != "local") t.fail("memory", "a percentage is only for local providers");
    auto digits = s.substr(0, s.size() - 1);
    int pct = 0;
    auto r = std::from_chars(digits.data(), digits.data() + digits.size(), pct);
    if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size() || pct < 1 ||
        pct > 100)
      t.fail("memory", "invalid percentage '" + s + "' (expected a whole number from 1% to 100%)");
    p.capacity.memory = machine_memory() / 100 * pct;
  } else if (auto v = t.size("memory")) {
    p.capacity.memory = *v;
  } else if (p.kind == "local") {
    p.capacity.memory = machine_memory() / 100 * 80;
  }
}

void load_types(const table_reader& t, provider_config& p, const std::string& base_dir) {
  auto cat = t.nonempty_string("catalogue");
  if (!cat) t.fail("catalogue", "missing (a market provider needs a catalogue: a file path or \"embedded:NAME\")");
  std::variant<std::vector<instance_type>, config_error> types;
  const std::string prefix = "embedded:";
  if (cat->rfind(prefix, 0) == 0) {
    auto name = cat->substr(prefix.size());
    const auto& all = embedded_catalogues();
    auto it = all.find(name);
    if (it == all.end()) {
      std::string known;
      for (const auto& [k, v] : all) known += (known.empty() ? "" : ", ") + k;
      t.fail("catalogue", "no embedded catalogue '" + name + "' (available: " +
                              (known.empty() ? std::string("none") : known) + ")");
    }
    p.catalogue = *cat;
    types = parse_catalogue_toml(it->second, *cat);
  } else {
    p.catalogue = config_detail::resolve_path(base_dir, *cat);
    types = load_catalogue(p.catalogue);
  }
  if (auto* err = std::get_if<config_error>(&types)) throw config_failure{std::move(*err)};
  p.types = std::move(std::get<std::vector<instance_type>>(types));
  if (p.types.empty()) t.fail("catalogue", "catalogue '" + *cat + "' has no instance types");
}

provider_config read_provider(const table_reader& t, const std::string& base_dir) {
  t.allow_only({"name", "kind", "cpus", "memory", "gpus", "gpu_type", "gpu_memory",
                "price_per_core_hour", "price_per_gib_hour", "price_per_gpu_hour", "busy_markup",
                "reserve_price", "catalogue", "offer_spot", "offer_on_demand", "provisioning_delay",
                "refuse_probability", "preemption_per_hour", "availability", "seed", "latency",
                "hold_ttl", "software", "cpu_features", "max_instances", "slurm_conf",
                "partition", "account", "reservation_user", "slurm_bin_dir", "command_timeout",
                "poll_interval", "plan_horizon", "spot_follow", "spot_follow_speed",
                "resize_delay"});
  provider_config p;
  auto name = t.nonempty_string("name");
  if (!name) t.fail("name", "missing (every provider needs a unique name)");
  p.name = *name;
  auto kind = t.string("kind");
  if (!kind) t.fail("kind", "missing (expected local, market or slurm)");
  if (*kind != "local" && *kind != "market" && *kind != "slurm")
    t.fail("kind", "unknown provider kind '" + *kind + "' (expected local, market or slurm)");
  p.kind = *kind;

  // Keys that only mean something for the other kind are refused, not ignored.
  for (auto key : {"catalogue", "offer_spot", "offer_on_demand", "max_instances", "spot_follow",
                   "spot_follow_speed", "resize_delay"})
    if (p.kind != "market" && t.has(key)) t.fail(key, "only applies to market providers");
  for (auto key : {"slurm_conf", "partition", "account", "reservation_user", "slurm_bin_dir",
                   "command_timeout", "poll_interval"})
    if (p.kind != "slurm" && t.has(key)) t.fail(key, "only applies to slurm providers");
  for (auto key : {"busy_markup", "price_per_gpu_hour", "gpus", "gpu_type", "gpu_memory",
                   "provisioning_delay", "refuse_probability", "preemption_per_hour"})
    if (p.kind == "slurm" && t.has(key))
      t.fail(key, "does not apply to slurm providers (start times come from Slurm; no GPUs)");
  if (p.kind != "local" && t.has("plan_horizon"))
    t.fail("plan_horizon", "only applies to local providers (the internal cluster's plan)");
  for (auto key : {"price_per_core_hour", "price_per_gib_hour", "price_per_gpu_hour", "busy_markup"})
    if (p.kind == "market" && t.has(key))
      t.fail(key, "only applies to local providers (a market's prices come from its catalogue)");

  read_provider_cpus(t, p);
  read_provider_memory(t, p);
  if (auto v = t.integer_in("gpus", 0, 1024)) p.capacity.gpus = static_cast<std::int32_t>(*v);
  if (auto v = t.nonempty_string("gpu_type")) p.capacity.gpu_type = *v;
  if (auto v = t.size("gpu_memory")) p.capacity.gpu_memory = *v;

  if (auto v = t.dollars("price_per_core_hour")) p.price_per_core_hour = *v;
  if (auto v = t.dollars("price_per_gib_hour")) p.price_per_gib_hour = *v;
  if (auto v = t.dollars("price_per_gpu_hour")) p.price_per_gpu_hour = *v;
  if (auto v = t.number_in("busy_markup", 1.0, 100.0)) p.busy_markup = *v;
  if (auto v = t.dollars("reserve_price")) p.reserve_price = *v;

  if (auto v = t.boolean("offer_spot")) p.offer_spot = *v;
  if (auto v = t.boolean("offer_on_demand")) p.offer_on_demand = *v;
  if (auto v = t.boolean("spot_follow")) p.spot_follow = *v;
  if (auto v = t.integer_in("spot_follow_speed", 1, 1000))
    p.spot_follow_speed = static_cast<std::int32_t>(*v);
  if (p.kind == "market" && !p.offer_spot && !p.offer_on_demand)
    t.fail("offer_on_demand", "offer_spot and offer_on_demand are both false: the market would offer nothing");
  if (auto v = t.duration("provisioning_delay")) p.provisioning_delay = *v;
  if (auto v = t.duration("resize_delay")) p.resize_delay = *v;
  if (auto v = t.duration("plan_horizon")) p.plan_horizon = *v;
  if (auto v = t.number_in("refuse_probability", 0, 1)) p.refuse_probability = *v;
  if (auto v = t.number_in("preemption_per_hour", 0, 1e6)) p.preemption_per_hour = *v;
  if (auto v = t.number_in("availability", 0, 1)) {
    if (*v <= 0) t.fail("availability", "must be positive");
    p.availability = *v;
  }
  if (auto v = t.integer_in("seed", 0, std::numeric_limits<std::int64_t>::max()))
    p.seed = static_cast<std::uint64_t>(*v);
  if (auto v = t.duration("latency")) p.latency = *v;
  if (auto v = t.duration("hold_ttl")) p.hold_ttl = *v;
  if (auto v = t.strings("software")) p.software = std::move(*v);
  if (auto v = t.strings("cpu_features")) p.cpu_features = std::move(*v);
  if (auto v = t.integer_in("max_instances", 0, 1'000'000)) p.max_instances = static_cast<std::int32_t>(*v);

  if (auto v = t.string("slurm_conf"))
    p.slurm_conf = v->empty() ? std::string() : config_detail::resolve_path(base_dir, *v);
  if (auto v = t.nonempty_string("partition")) p.partition = *v;
  if (auto v = t.nonempty_string("account")) p.account = *v;
  if (auto v = t.nonempty_string("reservation_user")) p.reservation_user = *v;
  if (auto v = t.string("slurm_bin_dir"))
    p.slurm_bin_dir = v->empty() ? std::string() : config_detail::resolve_path(base_dir, *v);
  if (auto v = t.positive_duration("command_timeout")) p.command_timeout = *v;
  if (auto v = t.positive_duration("poll_interval")) p.poll_interval = *v;

  if (p.kind == "market") load_types(t, p, base_dir);
  if (p.spot_follow && std::none_of(p.types.begin(), p.types.end(),
                                    [](const instance_type& it) { return !it.spot_series.empty(); }))
    t.fail("spot_follow", "catalogue '" + p.catalogue +
                              "' has no spot price series (spot_at/spot_usd) to follow");
  return p;
}

void read_providers(const table_reader& top, node_config& c, const std::string& base_dir) {
  auto n = top.get("providers");
  if (!n) return;
  if (!n->is_array_of_tables())
    top.type_error("providers", *n, "an array of tables ([[providers]])");
  const auto& arr = *n->as_array();
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    auto path = "providers[" + std::to_string(i) + "]";
    table_reader t(*arr[i].as_table(), path, top.file());
    auto p = read_provider(t, base_dir);
    if (auto [it, fresh] = seen.emplace(p.name, i); !fresh)
      t.fail("name", "duplicate provider name '" + p.name + "' (also providers[" +
                         std::to_string(it->second) + "])");
    c.providers.push_back(std::move(p));
  }
}

void read_console(const table_reader& t, console_config& c, const std::string& base_dir) {
  t.allow_only({"listen", "token", "token_file"});
  auto listen = t.nonempty_string("listen");
  if (!listen)
    t.fail("listen", "missing: the console's address, e.g. \"127.0.0.1:7480\" (no [console] "
                     "table = no console)");
  std::string host = "127.0.0.1", port = *listen;
  if (auto colon = listen->rfind(':'); colon != std::string::npos) {
    host = listen->substr(0, colon);
    port = listen->substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    if (host.empty())
      host = "127.0.0.1";
    if (host == "localhost")
      host = "127.0.0.1";
  }
  in6_addr a6;
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) != 1 && inet_pton(AF_INET6, host.c_str(), &a6) != 1)
    t.fail("listen", "expected HOST:PORT with an IP address as HOST (e.g. 127.0.0.1:7480), got '" +
                       *listen + "'");
  int p = -1;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p < 0 || p > 65535)
    t.fail("listen", "expected a port from 0 to 65535 after the host, got '" + *listen + "'");
  c.host = host;
  c.port = p;
  auto token = t.string("token");
  auto file = t.string("token_file");
  if (token && file)
    t.fail("token_file", "give token or token_file, not both");
  if (!token && !file)
    t.fail("token", "missing: the console requires a token (token = \"...\" or token_file = "
                    "\"PATH\"), e.g. from `openssl rand -hex 16`");
  std::string key = token ? "token" : "token_file";
  std::string value;
  if (token) {
    value = *token;
  } else {
    auto path = config_detail::resolve_path(base_dir, *file);
    if (auto err = config_detail::read_text_file(path, value))
      t.fail("token_file", "cannot read " + path + ": " + err->reason);
    value = value.substr(0, value.find('\n'));
    while (!value.empty() && (value.back() == '\r' || value.back() == ' ' || value.back() == '\t'))
      value.pop_back();
  }
  if (value.size() < 16)
    t.fail(key, "the token is too short (" + std::to_string(value.size()) +
                  " characters): use at least 16, e.g. from `openssl rand -hex 16`");
  for (unsigned char ch : value)
    if (ch <= 0x20 || ch >= 0x7f)
      t.fail(key, "the token may only hold printable ASCII without spaces");
  c.token = value;
  c.enabled = true;
}

void read_peers(const table_reader& top, node_config& c, const std::string& base_dir) {
  auto n = top.get("peers");
  if (!n) return;
  if (!n->is_array_of_tables())
    top.type_error("peers", *n, "an array of tables ([[peers]])");
  const auto& arr = *n->as_array();
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    table_reader t(*arr[i].as_table(), "peers[" + std::to_string(i) + "]", top.file());
    t.allow_only({"name", "endpoint", "server_key"});
    peer_config p;
    if (auto v = t.nonempty_string("name")) p.name = *v;
    else t.fail("name", "missing: every peer needs a name");
    if (auto v = t.nonempty_string("endpoint")) p.endpoint = *v;
    else t.fail("endpoint", "missing: where the peer listens, e.g. tcp://127.0.0.1:7471");
    if (p.endpoint.find("://") == std::string::npos)
      t.fail("endpoint", "expected an endpoint like tcp://127.0.0.1:7471, got '" + p.endpoint + "'");
    if (auto v = t.nonempty_string("server_key")) {
      bool pub = v->size() > 4 && v->compare(v->size() - 4, 4, ".pub") == 0;
      p.server_key = pub ? config_detail::resolve_path(base_dir, *v) : *v;
    }
    if (p.name == c.node_name)
      t.fail("name", "a node cannot peer with itself ('" + p.name + "' is [node] name)");
    if (auto [it, fresh] = seen.emplace(p.name, i); !fresh)
      t.fail("name", "duplicate peer name '" + p.name + "' (also peers[" +
                         std::to_string(it->second) + "])");
    c.peers.push_back(std::move(p));
  }
}

/// `[security]`: file paths resolve against the config's directory; an `allow` entry is a
/// 40-character Z85 key or a path ending in ".pub" (the keys themselves are read when
/// the node starts, protocol/curve.hpp).
void read_security(const table_reader& t, security_config& s, const std::string& base_dir) {
  t.allow_only({"key", "allow", "allow_dir", "insecure"});
  if (auto v = t.nonempty_string("key")) s.key = config_detail::resolve_path(base_dir, *v);
  if (auto v = t.strings("allow")) {
    static constexpr std::string_view z85 =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    for (std::size_t i = 0; i < v->size(); ++i) {
      const auto& e = (*v)[i];
      bool pub = e.size() > 4 && e.compare(e.size() - 4, 4, ".pub") == 0;
      if (pub) {
        s.allow.push_back(config_detail::resolve_path(base_dir, e));
      } else if (e.size() == 40 && e.find_first_not_of(z85) == std::string::npos) {
        s.allow.push_back(e);
      } else {
        t.fail_at(t.key_path("allow") + "[" + std::to_string(i) + "]",
                  "expected a 40-character Z85 public key or a path ending in .pub, got '" + e +
                    "'");
      }
    }
  }
  if (auto v = t.nonempty_string("allow_dir"))
    s.allow_dir = config_detail::resolve_path(base_dir, *v);
  if (auto v = t.boolean("insecure")) s.insecure = *v;
}

node_config read_config(const toml::table& root, const std::string& file_name,
                        const std::string& base_dir) {
  table_reader top(root, "", file_name);
  top.allow_only({"node", "auction", "scoring", "scaling", "models", "providers", "bus", "intake",
                  "console", "peers", "federation", "security"});
  node_config c;
  c.source = file_name;
  if (auto t = top.sub_table("node")) read_node(*t, c, base_dir);
  if (auto t = top.sub_table("auction")) read_auction(*t, c.auction);
  if (auto t = top.sub_table("scoring")) read_scoring(*t, c.scoring);
  if (auto t = top.sub_table("scaling")) read_scaling(*t, c.scaling);
  if (auto t = top.sub_table("models")) {
    t->allow_only({"runtime", "retrain_every", "retrain_min_jobs"});
    if (auto v = t->string("runtime"))
      c.models_runtime = v->empty() || *v == "requested"
                           ? *v
                           : config_detail::resolve_path(base_dir, *v);
    if (auto v = t->duration("retrain_every")) c.models_retrain_every = *v;
    if (auto v = t->integer_in("retrain_min_jobs", 20, 100000000)) c.models_retrain_min_jobs = *v;
  }
  if (auto t = top.sub_table("bus")) {
    t->allow_only({"listen", "publish", "hwm", "batch"});
    for (const char* key : {"listen", "publish"})
      if (auto v = t->nonempty_string(key)) {
        if (v->find("://") == std::string::npos)
          t->fail(key, "expected an endpoint like tcp://127.0.0.1:7471, got '" + *v + "'");
        (std::string_view(key) == "listen" ? c.bus.listen : c.bus.publish) = *v;
      }
    if (auto v = t->integer_in("hwm", 1, 10'000'000)) c.bus.hwm = static_cast<std::int32_t>(*v);
    if (auto v = t->integer_in("batch", 1, 100'000)) c.bus.batch = static_cast<std::int32_t>(*v);
  }
  if (auto t = top.sub_table("intake")) {
    t->allow_only({"max_active_jobs"});
    if (auto v = t->integer_in("max_active_jobs", 0, 1'000'000))
      c.max_active_jobs = static_cast<std::int32_t>(*v);
  }
  if (auto t = top.sub_table("console")) read_console(*t, c.console, base_dir);
  if (auto t = top.sub_table("security")) read_security(*t, c.security, base_dir);
  read_providers(top, c, base_dir);
  if (auto t = top.sub_table("federation")) {
    t->allow_only({"hop_limit", "heartbeat"});
    if (auto v = t->integer_in("hop_limit", 1, 16))
      c.federation.hop_limit = static_cast<std::int32_t>(*v);
    if (auto v = t->positive_duration("heartbeat")) c.federation.heartbeat = *v;
  }
  read_peers(top, c, base_dir);
  return c;
}

} // namespace

std::variant<node_config, config_error> parse_node_toml(const std::string& text,
                                                        const std::string& file_name,
                                                        const std::string& base_dir) {
  try {
    auto root = config_detail::parse_toml_text(text, file_name);
    return read_config(root, file_name, base_dir);
  } catch (config_failure& f) {
    return std::move(f.error);
  }
}

std::variant<node_config, config_error> load_node_config(const std::string& path) {
  std::string text;
  if (auto err = config_detail::read_text_file(path, text)) return *err;
  return parse_node_toml(text, path, config_detail::directory_of(path));
}

const std::string& dev_config_text() {
  static const std::string text = dev_config_toml;
  return text;
}

node_config dev_config() {
  auto r = parse_node_toml(dev_config_text(), dev_source, "");
  if (auto* err = std::get_if<config_error>(&r))
    throw std::logic_error("the embedded dev config is broken: " + err->to_string());
  return std::get<node_config>(std::move(r));
}

} // namespace tender

// Market catalogues: the instance types a market provider sells, with on-demand and
// spot prices (see the header comment of config/catalogues/*.toml for the format and
// tools/derive-catalogue for where the prices come from).

#include "config/node_config.hpp"
#include "config/toml_reader.hpp"

#include <map>

namespace tender {

using config_detail::config_failure;
using config_detail::table_reader;

namespace {

/// `spot_at` (whole seconds into the window, ascending) and `spot_usd` (USD per hour,
/// exact to the micro-dollar): the type's spot price series.
void read_spot_series(const table_reader& t, instance_type& it, usec window) {
  const toml::node* at = t.get("spot_at");
  const toml::node* price = t.get("spot_usd");
  if (!at && !price)
    return;
  if (!at || !price)
    t.fail(at ? "spot_usd" : "spot_at", "missing (spot_at and spot_usd come together)");
  if (!at->is_array())
    t.type_error("spot_at", *at, "an array of seconds into the price sheet's window");
  if (!price->is_array())
    t.type_error("spot_usd", *price, "an array of USD per hour");
  const auto& ats = *at->as_array();
  const auto& prices = *price->as_array();
  if (ats.size() != prices.size())
    t.fail("spot_usd", std::to_string(prices.size()) + " prices for " +
                           std::to_string(ats.size()) + " spot_at times (one price per time)");
  if (ats.empty())
    t.fail("spot_at", "empty (leave spot_at and spot_usd out for no series)");
  if (window <= 0)
    t.fail("spot_at", "a series needs the top-level spot_window (the window's length in seconds)");
  for (std::size_t i = 0; i < ats.size(); ++i) {
    const std::string at_key = "spot_at[" + std::to_string(i) + "]";
    const std::string usd_key = "spot_usd[" + std::to_string(i) + "]";
    auto s = ats[i].value<std::int64_t>();
    if (!ats[i].is_integer() || !s)
      t.fail(at_key, "expected whole seconds, got " + config_detail::type_name(ats[i]));
    const usec when = *s * sec_us;
    if (*s < 0 || when >= window)
      t.fail(at_key, std::to_string(*s) + " is outside the window [0, " +
                         std::to_string(window / sec_us) + ") s");
    if (!it.spot_series.empty() && when <= it.spot_series.back().at)
      t.fail(at_key, "times must ascend (" + std::to_string(*s) + " after " +
                         std::to_string(it.spot_series.back().at / sec_us) + ")");
    // One price at a time through the reader's exact dollar parsing.
    toml::table one;
    if (prices[i].is_floating_point())
      one.insert(usd_key, *prices[i].value<double>());
    else if (prices[i].is_integer())
      one.insert(usd_key, *prices[i].value<std::int64_t>());
    else if (prices[i].is_string())
      one.insert(usd_key, *prices[i].value<std::string>());
    else
      t.fail(usd_key, "expected an amount of US dollars, got " +
                          config_detail::type_name(prices[i]));
    auto m = table_reader(one, t.path(), t.file()).dollars(usd_key, /*positive=*/true);
    it.spot_series.push_back({when, *m});
  }
  it.spot_window = window;
}

instance_type read_type(const table_reader& t, std::map<std::string, std::string>& seen,
                        usec window) {
  t.allow_only({"name", "family", "vcpus", "memory", "gpus", "gpu_type", "gpu_memory",
                "on_demand", "spot", "spot_at", "spot_usd"});
  instance_type it;
  auto name = t.nonempty_string("name");
  if (!name)
    t.fail("name", "missing (every instance type needs a name, e.g. \"m5.large\")");
  if (auto [pos, fresh] = seen.emplace(*name, t.path()); !fresh)
    t.fail("name", "duplicate instance type '" + *name + "' (also " + pos->second + ")");
  it.name = *name;
  it.family = t.nonempty_string("family").value_or(it.name.substr(0, it.name.find('.')));

  auto vcpus = t.integer_in("vcpus", 1, 1'000'000);
  if (!vcpus)
    t.fail("vcpus", "missing (a number of vCPUs, e.g. 2)");
  it.cpu = *vcpus * 1000;

  auto memory = t.size("memory");
  if (!memory)
    t.fail("memory", "missing (a size, e.g. \"8GiB\")");
  if (*memory <= 0)
    t.fail("memory", "must be positive");
  it.memory = *memory;

  it.gpus = static_cast<std::int32_t>(t.integer_in("gpus", 0, 1024).value_or(0));
  auto gpu_type = t.nonempty_string("gpu_type");
  auto gpu_memory = t.size("gpu_memory");
  if (it.gpus > 0) {
    if (!gpu_type)
      t.fail("gpu_type", "missing (the type has " + std::to_string(it.gpus) +
                             " GPUs: name their model, e.g. \"T4\")");
    if (!gpu_memory || *gpu_memory <= 0)
      t.fail("gpu_memory", "missing or zero (memory per GPU, e.g. \"16GiB\")");
    it.gpu_type = *gpu_type;
    it.gpu_memory = *gpu_memory;
  } else {
    if (gpu_type)
      t.fail("gpu_type", "given for a type without GPUs (set gpus)");
    if (gpu_memory)
      t.fail("gpu_memory", "given for a type without GPUs (set gpus)");
  }

  auto on_demand = t.dollars("on_demand", /*positive=*/true);
  if (!on_demand)
    t.fail("on_demand", "missing (the on-demand price in USD per hour, e.g. 0.096)");
  it.on_demand_per_hour = *on_demand;
  it.spot_per_hour = t.dollars("spot").value_or(0);
  read_spot_series(t, it, window);
  if (!it.spot_series.empty() && it.spot_per_hour == 0)
    t.fail("spot_at", "a spot series for a type without a spot price (set spot)");
  return it;
}

} // namespace

std::variant<std::vector<instance_type>, config_error>
parse_catalogue_toml(const std::string& text, const std::string& file_name) {
  try {
    toml::table root = config_detail::parse_toml_text(text, file_name);
    table_reader top(root, "", file_name);
    top.allow_only({"source", "spot_window", "type"});
    top.string("source");
    const usec window = top.integer_in("spot_window", 1, 366 * 86400).value_or(0) * sec_us;
    std::vector<instance_type> out;
    const toml::node* types = top.get("type");
    if (!types)
      return out;
    if (!types->is_array_of_tables())
      top.type_error("type", *types, "an array of tables ([[type]])");
    std::map<std::string, std::string> seen;
    const auto& arr = *types->as_array();
    for (std::size_t i = 0; i < arr.size(); ++i)
      out.push_back(
          read_type(table_reader(*arr[i].as_table(), "type[" + std::to_string(i) + "]", file_name),
                    seen, window));
    return out;
  } catch (const config_failure& f) {
    return f.error;
  }
}

std::variant<std::vector<instance_type>, config_error> load_catalogue(const std::string& path) {
  std::string text;
  if (auto err = config_detail::read_text_file(path, text))
    return *err;
  return parse_catalogue_toml(text, path);
}

} // namespace tender

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

instance_type read_type(const table_reader& t, std::map<std::string, std::string>& seen) {
  t.allow_only({"name", "family", "vcpus", "memory", "gpus", "gpu_type", "gpu_memory",
                "on_demand", "spot"});
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
  return it;
}

} // namespace

std::variant<std::vector<instance_type>, config_error>
parse_catalogue_toml(const std::string& text, const std::string& file_name) {
  try {
    toml::table root = config_detail::parse_toml_text(text, file_name);
    table_reader top(root, "", file_name);
    top.allow_only({"source", "type"});
    top.string("source");
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
                    seen));
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

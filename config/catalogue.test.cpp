#include "config/node_config.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

namespace tender {
namespace {

constexpr bytes_t gib = bytes_t{1} << 30;

std::vector<instance_type> parse_ok(const std::string& text, const std::string& name = "t.toml") {
  auto r = parse_catalogue_toml(text, name);
  if (auto* e = std::get_if<config_error>(&r)) {
    ADD_FAILURE() << e->to_string();
    return {};
  }
  return std::get<std::vector<instance_type>>(r);
}

config_error parse_bad(const std::string& text) {
  auto r = parse_catalogue_toml(text, "bad.toml");
  if (!std::holds_alternative<config_error>(r)) {
    ADD_FAILURE() << "accepted:\n" << text;
    return {};
  }
  return std::get<config_error>(r);
}

const instance_type* find(const std::vector<instance_type>& types, const std::string& name) {
  auto it = std::find_if(types.begin(), types.end(), [&](auto& t) { return t.name == name; });
  return it == types.end() ? nullptr : &*it;
}

std::vector<instance_type> embedded(const std::string& stem) {
  auto& all = embedded_catalogues();
  auto it = all.find(stem);
  if (it == all.end()) {
    ADD_FAILURE() << "no embedded catalogue " << stem;
    return {};
  }
  return parse_ok(it->second, "embedded:" + stem);
}

TEST(catalogue, every_embedded_catalogue_parses) {
  auto& all = embedded_catalogues();
  for (auto stem : {"cloud-a", "cloud-b", "gpu-vendor"})
    EXPECT_TRUE(all.count(stem)) << stem;
  for (auto& [stem, text] : all) {
    auto types = parse_ok(text, "embedded:" + stem);
    EXPECT_FALSE(types.empty()) << stem;
    for (auto& t : types) {
      EXPECT_GT(t.cpu, 0) << t.name;
      EXPECT_GT(t.memory, 0) << t.name;
      EXPECT_GT(t.on_demand_per_hour, 0) << t.name;
      EXPECT_GT(t.spot_per_hour, 0) << t.name << ": every listed type has spot records";
      EXPECT_EQ(t.family, t.name.substr(0, t.name.find('.'))) << t.name;
    }
  }
}

TEST(catalogue, families_cover_cpu_and_gpu_work) {
  auto families = [](const std::vector<instance_type>& types, bool gpu) {
    std::set<std::string> out;
    for (auto& t : types)
      if ((t.gpus > 0) == gpu)
        out.insert(t.family);
    return out;
  };
  auto a = embedded("cloud-a");
  EXPECT_GE(a.size(), 30u);
  EXPECT_EQ(families(a, true), (std::set<std::string>{"g4dn", "g5", "p3"}));
  for (auto f : {"m5", "c5", "r5", "t3"})
    EXPECT_TRUE(families(a, false).count(f)) << f;

  auto b = embedded("cloud-b");
  for (auto f : {"m6i", "c6i", "r6i"})
    EXPECT_TRUE(families(b, false).count(f)) << f;
  for (auto f : {"p3", "p4d", "g4dn"})
    EXPECT_TRUE(families(b, true).count(f)) << f;
  // Different mixes: the two clouds do not sell the same list.
  std::set<std::string> na, nb;
  for (auto& t : a)
    na.insert(t.name);
  for (auto& t : b)
    nb.insert(t.name);
  EXPECT_NE(na, nb);

  auto v = embedded("gpu-vendor");
  EXPECT_FALSE(v.empty());
  EXPECT_TRUE(families(v, false).empty()) << "the GPU vendor sells GPU types only";
}

TEST(catalogue, known_shapes_and_on_demand_prices) {
  auto a = embedded("cloud-a");
  const instance_type* m5 = find(a, "m5.large");
  ASSERT_NE(m5, nullptr);
  EXPECT_EQ(m5->cpu, 2000);
  EXPECT_EQ(m5->memory, 8 * gib);
  EXPECT_EQ(m5->gpus, 0);
  EXPECT_EQ(m5->on_demand_per_hour, 96'000);

  const instance_type* p3 = find(a, "p3.2xlarge");
  ASSERT_NE(p3, nullptr);
  EXPECT_EQ(p3->cpu, 8000);
  EXPECT_EQ(p3->memory, 61 * gib);
  EXPECT_EQ(p3->gpus, 1);
  EXPECT_EQ(p3->gpu_type, "V100");
  EXPECT_EQ(p3->gpu_memory, 16 * gib);
  EXPECT_EQ(p3->on_demand_per_hour, 3'060'000);

  const instance_type* g4 = find(a, "g4dn.xlarge");
  ASSERT_NE(g4, nullptr);
  EXPECT_EQ(g4->gpu_type, "T4");
  EXPECT_EQ(g4->on_demand_per_hour, 526'000);

  const instance_type* g5 = find(a, "g5.xlarge");
  ASSERT_NE(g5, nullptr);
  EXPECT_EQ(g5->gpu_type, "A10G");
  EXPECT_EQ(g5->gpu_memory, 24 * gib);
  EXPECT_EQ(g5->on_demand_per_hour, 1'006'000);

  auto b = embedded("cloud-b");
  const instance_type* p4 = find(b, "p4d.24xlarge");
  ASSERT_NE(p4, nullptr);
  EXPECT_EQ(p4->cpu, 96'000);
  EXPECT_EQ(p4->memory, 1152 * gib);
  EXPECT_EQ(p4->gpus, 8);
  EXPECT_EQ(p4->gpu_type, "A100");
  EXPECT_EQ(p4->gpu_memory, 40 * gib);
  EXPECT_EQ(p4->on_demand_per_hour, 32'772'600);
}

TEST(catalogue, parses_a_minimal_file_with_defaults) {
  auto types = parse_ok(R"(
source = "test"
[[type]]
name = "x1.big"
vcpus = 4
memory = "16GiB"
on_demand = "0.5"

[[type]]
name = "gx.one"
family = "gx"
vcpus = 8
memory = 34359738368
gpus = 2
gpu_type = "L4"
gpu_memory = "24GiB"
on_demand = 2
spot = 0.000001
)");
  ASSERT_EQ(types.size(), 2u);
  EXPECT_EQ(types[0].family, "x1");
  EXPECT_EQ(types[0].gpus, 0);
  EXPECT_EQ(types[0].on_demand_per_hour, 500'000);
  EXPECT_EQ(types[0].spot_per_hour, 0); // no spot market
  EXPECT_EQ(types[1].memory, 32 * gib);
  EXPECT_EQ(types[1].gpus, 2);
  EXPECT_EQ(types[1].on_demand_per_hour, 2'000'000);
  EXPECT_EQ(types[1].spot_per_hour, 1);
  EXPECT_TRUE(parse_ok("source = \"empty\"\n").empty());
}

const char* two_types = R"(
[[type]]
name = "a.large"
vcpus = 2
memory = "8GiB"
on_demand = 0.1
)";

TEST(catalogue, bad_input_names_the_key) {
  struct bad_case {
    std::string extra; // appended as a second [[type]] (index 1)
    std::string key;
    std::string reason_part;
  };
  std::vector<bad_case> cases = {
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\ncolour = \"red\"\n",
       "type[1].colour", "unknown key"},
      {"name = \"b\"\nvcpus = \"2\"\nmemory = \"1GiB\"\non_demand = 0.1\n", "type[1].vcpus",
       "expected an integer, got string"},
      {"name = \"b\"\nvcpus = 0\nmemory = \"1GiB\"\non_demand = 0.1\n", "type[1].vcpus",
       "out of range"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\nspot = -0.01\n",
       "type[1].spot", "must not be negative"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = -1\n", "type[1].on_demand",
       "must be positive"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1234567\n",
       "type[1].on_demand", "more than six decimal places"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = true\n", "type[1].on_demand",
       "expected an amount of US dollars"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"lots\"\non_demand = 0.1\n", "type[1].memory",
       "invalid size"},
      {"name = \"b\"\nvcpus = 2\non_demand = 0.1\n", "type[1].memory", "missing"},
      {"vcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\n", "type[1].name", "missing"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\n", "type[1].on_demand", "missing"},
      {"name = \"a.large\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\n", "type[1].name",
       "duplicate instance type 'a.large' (also type[0])"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\ngpus = 1\n",
       "type[1].gpu_type", "missing"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\ngpus = 1\ngpu_type = "
       "\"T4\"\n",
       "type[1].gpu_memory", "missing"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\ngpu_type = \"T4\"\n",
       "type[1].gpu_type", "without GPUs"},
      {"name = \"b\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\ngpus = -1\n",
       "type[1].gpus", "out of range"},
  };
  for (auto& c : cases) {
    auto e = parse_bad(std::string(two_types) + "\n[[type]]\n" + c.extra);
    EXPECT_EQ(e.file, "bad.toml");
    EXPECT_EQ(e.key, c.key) << c.extra;
    EXPECT_NE(e.reason.find(c.reason_part), std::string::npos)
        << c.key << ": " << e.reason << " lacks " << c.reason_part;
  }
}

TEST(catalogue, bad_file_shapes) {
  auto e = parse_bad("colour = 1\n");
  EXPECT_EQ(e.key, "colour");
  e = parse_bad("type = 3\n");
  EXPECT_EQ(e.key, "type");
  EXPECT_NE(e.reason.find("array of tables"), std::string::npos) << e.reason;
  e = parse_bad("source = 3\n");
  EXPECT_EQ(e.key, "source");
  e = parse_bad("[[type]\nname = 1\n");
  EXPECT_EQ(e.key, "");
  EXPECT_NE(e.reason.find("TOML syntax error at 1:"), std::string::npos) << e.reason;
}

TEST(catalogue, load_from_a_file_and_a_missing_file) {
  auto dir = std::filesystem::temp_directory_path() /
             ("tender-catalogue-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "c.toml").string();
  {
    std::ofstream(path) << two_types;
  }
  auto ok = load_catalogue(path);
  ASSERT_TRUE(std::holds_alternative<std::vector<instance_type>>(ok));
  EXPECT_EQ(std::get<std::vector<instance_type>>(ok).size(), 1u);
  auto missing = load_catalogue((dir / "nope.toml").string());
  ASSERT_TRUE(std::holds_alternative<config_error>(missing));
  EXPECT_EQ(std::get<config_error>(missing).file, (dir / "nope.toml").string());
  std::filesystem::remove_all(dir);
}

// ---- the spot prices against the real price sheet ----------------------------

std::string price_sheet_path() {
  const std::string rel = "/data/prices/aws-spot-2022-05-31.tsv.gz";
  if (const char* d = std::getenv("TENDER_SHARED_DIR"); d && std::filesystem::exists(d + rel))
    return d + rel;
  if (std::filesystem::exists("/work/shared" + rel))
    return "/work/shared" + rel;
  return {};
}

bool parse_micros(const std::string& s, micros& out) {
  auto dot = s.find('.');
  std::string whole = s.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  if (whole.empty() || frac.size() > 6)
    return false;
  frac.resize(6, '0');
  out = std::stoll(whole) * 1'000'000 + std::stoll(frac);
  return true;
}

/// The rule of tools/derive-catalogue: per (zone, type) the latest Linux/UNIX record
/// (a later line wins a tie), then the low median over zones.
std::map<std::string, micros> spot_medians(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    ADD_FAILURE() << "cannot open " << path;
    return {};
  }
  std::map<std::pair<std::string, std::string>, std::pair<std::string, micros>> latest;
  std::string line;
  char buf[4096];
  std::size_t records = 0;
  while (gzgets(f, buf, sizeof buf)) {
    line.assign(buf);
    if (!line.empty() && line.back() == '\n')
      line.pop_back();
    if (line.empty())
      continue;
    std::vector<std::string> cols;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, '\t');)
      cols.push_back(c);
    if (cols.size() != 5) {
      ADD_FAILURE() << "bad line: " << line;
      continue;
    }
    ++records;
    if (cols[2] != "Linux/UNIX")
      continue;
    micros m = 0;
    if (!parse_micros(cols[3], m)) {
      ADD_FAILURE() << "bad price: " << line;
      continue;
    }
    auto& slot = latest[{cols[0], cols[1]}];
    if (slot.first.empty() || cols[4] >= slot.first)
      slot = {cols[4], m};
  }
  gzclose(f);
  EXPECT_GT(records, 30'000u);
  std::map<std::string, std::vector<micros>> per_type;
  for (auto& [key, v] : latest)
    per_type[key.second].push_back(v.second);
  std::map<std::string, micros> out;
  for (auto& [type, values] : per_type) {
    std::sort(values.begin(), values.end());
    out[type] = values[(values.size() - 1) / 2];
  }
  return out;
}

TEST(catalogue_data, spot_prices_are_the_median_rule_over_the_real_sheet) {
  auto path = price_sheet_path();
  if (path.empty())
    GTEST_SKIP() << "price sheet not found (set TENDER_SHARED_DIR)";
  auto medians = spot_medians(path);
  ASSERT_GT(medians.size(), 500u);
  std::size_t checked = 0;
  for (auto& [stem, text] : embedded_catalogues()) {
    for (auto& t : parse_ok(text, stem)) {
      auto it = medians.find(t.name);
      ASSERT_NE(it, medians.end()) << stem << ": " << t.name << " is not in the sheet";
      EXPECT_EQ(t.spot_per_hour, it->second) << stem << ": " << t.name;
      ++checked;
    }
  }
  EXPECT_GE(checked, 60u);
}

/// The series rule of tools/derive-catalogue: Linux/UNIX records in timestamp order
/// (file order within one), and after each timestamp the low median over the zones seen
/// so far of each zone's latest price; a point where that changes. Times are seconds
/// after 2022-05-31 18:20:00 UTC.
std::map<std::string, std::vector<std::pair<std::int64_t, micros>>>
spot_series_of(const std::string& path) {
  struct record {
    std::string stamp;
    std::size_t line;
    std::string zone, type;
    micros price;
  };
  std::vector<record> records;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    ADD_FAILURE() << "cannot open " << path;
    return {};
  }
  char buf[4096];
  std::size_t n = 0;
  while (gzgets(f, buf, sizeof buf)) {
    ++n;
    std::string line(buf);
    if (!line.empty() && line.back() == '\n')
      line.pop_back();
    std::vector<std::string> cols;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, '\t');)
      cols.push_back(c);
    micros m = 0;
    if (cols.size() == 5 && cols[2] == "Linux/UNIX" && parse_micros(cols[3], m))
      records.push_back({cols[4], n, cols[0], cols[1], m});
  }
  gzclose(f);
  std::sort(records.begin(), records.end(), [](const record& a, const record& b) {
    return std::tie(a.stamp, a.line) < std::tie(b.stamp, b.line);
  });
  std::map<std::string, std::map<std::string, micros>> latest;
  std::map<std::string, std::vector<std::pair<std::int64_t, micros>>> out;
  for (std::size_t i = 0; i < records.size();) {
    const std::string stamp = records[i].stamp;
    EXPECT_EQ(stamp.substr(0, 11), "2022-05-31T") << stamp;
    const std::int64_t at = std::stoll(stamp.substr(11, 2)) * 3600 +
                            std::stoll(stamp.substr(14, 2)) * 60 + std::stoll(stamp.substr(17, 2)) -
                            (18 * 3600 + 20 * 60);
    std::set<std::string> touched;
    for (; i < records.size() && records[i].stamp == stamp; ++i) {
      latest[records[i].type][records[i].zone] = records[i].price;
      touched.insert(records[i].type);
    }
    for (auto& type : touched) {
      std::vector<micros> v;
      for (auto& [zone, m] : latest[type])
        v.push_back(m);
      std::sort(v.begin(), v.end());
      const micros median = v[(v.size() - 1) / 2];
      auto& series = out[type];
      if (series.empty() || series.back().second != median)
        series.emplace_back(at, median);
    }
  }
  return out;
}

TEST(catalogue_data, spot_series_follow_the_real_sheet_over_its_window) {
  auto path = price_sheet_path();
  if (path.empty())
    GTEST_SKIP() << "price sheet not found (set TENDER_SHARED_DIR)";
  auto series = spot_series_of(path);
  std::size_t checked = 0, moving = 0;
  for (auto& [stem, text] : embedded_catalogues()) {
    for (auto& t : parse_ok(text, stem)) {
      SCOPED_TRACE(stem + ": " + t.name);
      EXPECT_EQ(t.spot_window, 20400 * sec_us); // 18:20:00-24:00:00 UTC
      auto it = series.find(t.name);
      ASSERT_NE(it, series.end());
      std::vector<std::pair<std::int64_t, micros>> got;
      for (auto& p : t.spot_series)
        got.emplace_back(p.at / sec_us, p.price);
      EXPECT_EQ(got, it->second);
      // At the end of the window the series is the snapshot.
      ASSERT_FALSE(t.spot_series.empty());
      EXPECT_EQ(t.spot_series.back().price, t.spot_per_hour);
      moving += t.spot_series.size() > 1;
      ++checked;
    }
  }
  EXPECT_GE(checked, 60u);
  EXPECT_GE(moving, 50u); // most types' price moves during the window
  // One written out: m5.large, as zones' records appear (us-east-2 first).
  auto& m5 = series["m5.large"];
  std::vector<std::pair<std::int64_t, micros>> want{
      {1050, 20'000}, {3007, 28'700}, {11834, 31'400}, {13634, 30'400}, {14110, 31'400},
      {15597, 31'800}};
  EXPECT_EQ(m5, want);
}

TEST(catalogue, spot_series_errors_name_the_key) {
  const std::string head = "spot_window = 100\n[[type]]\nname = \"a\"\nvcpus = 2\n"
                           "memory = \"1GiB\"\non_demand = 0.1\nspot = 0.05\n";
  struct bad {
    std::string text, key, words;
  };
  for (auto& b : std::vector<bad>{
           {head + "spot_at = [0, 10]\n", "type[0].spot_usd", "spot_at and spot_usd"},
           {head + "spot_at = [0, 10]\nspot_usd = [0.01]\n", "type[0].spot_usd", "1 prices for 2"},
           {head + "spot_at = [10, 5]\nspot_usd = [0.01, 0.02]\n", "type[0].spot_at[1]",
            "ascend"},
           {head + "spot_at = [0, 100]\nspot_usd = [0.01, 0.02]\n", "type[0].spot_at[1]",
            "outside the window"},
           {head + "spot_at = [0]\nspot_usd = [\"0.0000001\"]\n", "type[0].spot_usd[0]",
            "six decimal"},
           {head + "spot_at = [0]\nspot_usd = [true]\n", "type[0].spot_usd[0]", "US dollars"},
           {"[[type]]\nname = \"a\"\nvcpus = 2\nmemory = \"1GiB\"\non_demand = 0.1\n"
            "spot = 0.05\nspot_at = [0]\nspot_usd = [0.01]\n",
            "type[0].spot_at", "spot_window"},
       }) {
    auto r = parse_catalogue_toml(b.text, "bad.toml");
    ASSERT_TRUE(std::holds_alternative<config_error>(r)) << b.text;
    auto& e = std::get<config_error>(r);
    EXPECT_EQ(e.key, b.key) << b.text << e.to_string();
    EXPECT_NE(e.reason.find(b.words), std::string::npos) << e.to_string();
  }
  auto ok = parse_catalogue_toml(head + "spot_at = [0, 40]\nspot_usd = [0.01, \"0.02\"]\n", "ok.toml");
  ASSERT_TRUE(std::holds_alternative<std::vector<instance_type>>(ok))
      << std::get<config_error>(ok).to_string();
  auto& t = std::get<std::vector<instance_type>>(ok).at(0);
  ASSERT_EQ(t.spot_series.size(), 2u);
  EXPECT_EQ(t.spot_series[1].at, 40 * sec_us);
  EXPECT_EQ(t.spot_series[1].price, 20'000);
  EXPECT_EQ(t.spot_window, 100 * sec_us);
}

} // namespace
} // namespace tender

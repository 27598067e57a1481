#include "protocol/json.hpp"

#include <gtest/gtest.h>

namespace tender {
namespace {

constexpr usec t0 = 1'795'611'229'123'000; // 2026-11-25T12:53:49.123Z

void expect_keys(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  ASSERT_TRUE(j.is_object()) << j.dump();
  for (const char* k : keys)
    EXPECT_TRUE(j.contains(k)) << "missing key " << k << " in " << j.dump();
  EXPECT_EQ(j.size(), keys.size()) << j.dump();
}

resource_profile sample_profile() {
  resource_profile p;
  p.job_id = "job-1";
  p.cpu_mean = 1.5;
  p.mem_peak = 3LL << 30;
  p.runtime = 90 * sec_us + 500'000;
  p.runtime_lo = 60 * sec_us;
  p.runtime_hi = 120 * sec_us;
  p.profile_time = 2 * sec_us;
  p.software_stack = {"python3"};
  p.findings = {{"gpu", "CUDA 12", "libcudart.so.12"}};
  p.source = "sandbox";
  return p;
}

TEST(json, job_status_has_the_documented_keys_and_units) {
  job_status s;
  s.job_id = "job-1";
  s.name = "train";
  s.user = "ada";
  s.state = job_state::running;
  s.provider = "local";
  s.price = 123'456;
  s.allocated = resources{1500, 2LL << 30, 0, "", 0};
  s.offers = {{"o-1", "local", 1, 123'456, t0, 150'000.0, "won"}};
  s.submitted_at = t0;
  s.has_profile = true;
  s.profile = sample_profile();
  s.cpu_used_mean = 1.25;
  s.mem_used_peak = 1LL << 30;

  nlohmann::json j = to_json_value(s);
  expect_keys(j, {"id", "name", "user", "state", "reason", "provider", "allocation_id", "price",
                  "offers", "submitted_at", "started_at", "finished_at", "exit_code", "allocated",
                  "profile", "usage"});
  EXPECT_EQ(j["id"], "job-1");
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["price"].get<double>(), 0.123456);
  EXPECT_EQ(j["submitted_at"], "2026-11-25T12:53:49.123Z");
  EXPECT_TRUE(j["started_at"].is_null());
  EXPECT_TRUE(j["finished_at"].is_null());
  EXPECT_TRUE(j["exit_code"].is_null());
  EXPECT_EQ(j["allocated"]["cpu"].get<double>(), 1.5);
  EXPECT_EQ(j["allocated"]["memory_bytes"].get<std::int64_t>(), 2LL << 30);
  ASSERT_EQ(j["offers"].size(), 1u);
  expect_keys(j["offers"][0],
              {"offer_id", "provider", "round", "price", "earliest_start", "score", "verdict"});
  EXPECT_EQ(j["offers"][0]["score"].get<double>(), 0.15);
  EXPECT_EQ(j["offers"][0]["earliest_start"], "2026-11-25T12:53:49.123Z");
  expect_keys(j["usage"], {"cpu_mean", "mem_peak_bytes", "io_read_bytes", "io_write_bytes"});
  EXPECT_EQ(j["usage"]["mem_peak_bytes"].get<std::int64_t>(), 1LL << 30);

  s.exit_code = 3;
  s.has_profile = false;
  j = s; // ADL to_json
  EXPECT_EQ(j["exit_code"], 3);
  EXPECT_TRUE(j["profile"].is_null());
}

TEST(json, profile_keys_and_units) {
  nlohmann::json j = to_json_value(sample_profile());
  expect_keys(j, {"job_id",           "cpu_mean",
                  "cpu_stddev",       "cpu_lo",
                  "cpu_hi",           "mem_mean_bytes",
                  "mem_stddev_bytes", "mem_peak_bytes",
                  "mem_lo_bytes",     "mem_hi_bytes",
                  "io_read_bytes",    "io_write_bytes",
                  "net_bytes",        "net_bandwidth_bps",
                  "gpu_type",         "gpus",
                  "software_stack",   "runtime_s",
                  "runtime_lo_s",     "runtime_hi_s",
                  "confidence",       "source",
                  "model_version",    "partial",
                  "profile_time_s",   "findings"});
  EXPECT_EQ(j["runtime_s"].get<double>(), 90.5);
  EXPECT_EQ(j["runtime_hi_s"].get<double>(), 120.0);
  EXPECT_EQ(j["mem_peak_bytes"].get<std::int64_t>(), 3LL << 30);
  EXPECT_EQ(j["software_stack"], nlohmann::json::array({"python3"}));
  ASSERT_EQ(j["findings"].size(), 1u);
  expect_keys(j["findings"][0], {"kind", "detail", "evidence"});
  EXPECT_EQ(j["findings"][0]["detail"], "CUDA 12");
}

TEST(json, allocation_never_prints_the_lease_token) {
  allocation a;
  a.allocation_id = "alloc-1";
  a.lease_token = "secret-token-123";
  a.price = 2'000'000;
  a.lease_expires = t0;
  nlohmann::json j = to_json_value(a);
  EXPECT_FALSE(j.contains("lease_token"));
  EXPECT_EQ(j.dump().find("secret-token-123"), std::string::npos);
  expect_keys(j, {"allocation_id", "job_id", "offer_id", "provider", "granted", "price",
                  "rate_per_hour", "terms", "lease_expires", "start_at", "instance_type"});
  EXPECT_EQ(j["price"].get<double>(), 2.0);
  EXPECT_EQ(j["lease_expires"], "2026-11-25T12:53:49.123Z");
  EXPECT_TRUE(j["start_at"].is_null());
}

TEST(json, offer_sla_resources) {
  offer o;
  o.offer_id = "o-1";
  o.granted = resources{250, 512LL << 20, 1, "T4", 16LL << 30};
  o.price = 1;
  o.rate_per_hour = 3'600'000;
  o.terms = sla{0.99, 0.05, 1500 * ms_us};
  o.spot = true;
  nlohmann::json j = to_json_value(o);
  expect_keys(j,
              {"offer_id", "job_id", "auction_id", "round", "provider", "granted", "price",
               "rate_per_hour", "earliest_start", "terms", "valid_until", "instance_type", "spot"});
  EXPECT_EQ(j["price"].get<double>(), 0.000001);
  EXPECT_EQ(j["rate_per_hour"].get<double>(), 3.6);
  expect_keys(j["terms"], {"availability", "preemption_probability", "latency_s"});
  EXPECT_EQ(j["terms"]["latency_s"].get<double>(), 1.5);
  expect_keys(j["granted"], {"cpu", "memory_bytes", "gpus", "gpu_type", "gpu_memory_bytes"});
  EXPECT_EQ(j["granted"]["cpu"].get<double>(), 0.25);
  EXPECT_EQ(j["granted"]["gpu_type"], "T4");
}

TEST(json, provider_usage_and_error) {
  provider_info p;
  p.name = "local";
  p.capacity.cpu = 8000;
  p.risk = 0.125;
  p.gpu_types = {"A100"};
  nlohmann::json j = p;
  expect_keys(j, {"name", "kind", "remote", "connected", "capacity", "free", "offers", "wins",
                  "breaches", "risk", "gpu_types", "drained", "plan"});
  EXPECT_TRUE(j["plan"].is_null()) << "a provider that does not plan ahead";
  EXPECT_EQ(j["drained"], false);
  p.plan_at = 1'780'000'000'000'000;
  p.plan_horizon = 3600 * sec_us;
  p.plan = {plan_entry{"j1", "j1/local/a", "running", p.capacity, p.plan_at, p.plan_at + sec_us}};
  p.free_over_time = {free_step{p.plan_at, p.free}};
  auto plan = to_json_value(p)["plan"];
  expect_keys(plan, {"at", "horizon_s", "jobs", "free_over_time"});
  EXPECT_EQ(plan["horizon_s"], 3600.0);
  expect_keys(plan["jobs"][0], {"job_id", "allocation_id", "state", "granted", "start",
                                "predicted_end"});
  expect_keys(plan["free_over_time"][0], {"at", "free"});
  EXPECT_EQ(j["capacity"]["cpu"].get<double>(), 8.0);

  usage_sample u{t0, 2500, 1LL << 30, 10, 20, 30, 4};
  j = to_json_value(u);
  expect_keys(
      j, {"at", "cpu", "rss_bytes", "io_read_bytes", "io_write_bytes", "net_bytes", "threads"});
  EXPECT_EQ(j["cpu"].get<double>(), 2.5);
  EXPECT_EQ(j["at"], "2026-11-25T12:53:49.123Z");

  error e{"wrong_type", "expected string", "job_query", "job_id"};
  j = to_json_value(e);
  EXPECT_EQ(j, nlohmann::json({{"code", "wrong_type"},
                               {"message", "expected string"},
                               {"type", "job_query"},
                               {"field", "job_id"}}));

  job_list l;
  l.jobs.resize(2);
  j = to_json_value(l);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j.size(), 2u);
}

} // namespace
} // namespace tender

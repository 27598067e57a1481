#include "protocol/envelope.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <sstream>

namespace tender {
namespace {

// ============================================================================
// Golden fixtures: one fully populated, deterministic envelope per body type.
//
// protocol/golden/<type>.msgpack holds the exact bytes `encode` must produce.
// A failing comparison means the wire format changed. If the change is a
// deliberate, additive one (a new field with a default, noted in the struct's
// "History:" line), update the fixtures on purpose and commit them:
//
//     TENDER_UPDATE_GOLDEN=1 ./build/protocol/tender_protocol_tests --gtest_filter='golden*'
//
// Never update them to silence a change that renames, removes or re-types a
// key: older peers would misread it.
// ============================================================================

constexpr usec fixed_sent_at = 1'795'611'229'123'000; // 2026-11-25T12:53:49.123Z
constexpr usec hour = 3600 * sec_us;

resources example_resources() {
  return resources{4000, 16LL << 30, 2, "A100", 40LL << 30};
}

sla example_sla() {
  return sla{0.995, 0.0125, 250 * ms_us};
}

resource_profile example_profile() {
  resource_profile p;
  p.job_id = "job-0001";
  p.cpu_mean = 3.25;
  p.cpu_stddev = 0.5;
  p.cpu_lo = 2.75;
  p.cpu_hi = 4.0; // integral: packed as an integer by msgpack, must still decode
  p.mem_mean = 6LL << 30;
  p.mem_stddev = 512LL << 20;
  p.mem_peak = 7LL << 30;
  p.mem_lo = 5LL << 30;
  p.mem_hi = 8LL << 30;
  p.gpu_type = "A100";
  p.gpus = 2;
  p.net_bandwidth_bps = 125'000'000;
  p.io_read = 3LL << 30;
  p.io_write = 1LL << 30;
  p.net_bytes = 200'000'000;
  p.software_stack = {"python3.11", "cuda12", "torch2.1"};
  p.runtime = 2 * hour;
  p.runtime_lo = 90 * 60 * sec_us;
  p.runtime_hi = 3 * hour;
  p.confidence = 0.85;
  p.source = "sandbox+hints";
  p.model_version = "xgb-2026-11-01";
  p.partial = true;
  p.profile_time = 42 * sec_us;
  p.findings = {{"gpu", "CUDA runtime 12", "libcudart.so.12"},
                {"cores", "OpenMP with 4 threads", "OMP_NUM_THREADS=4"}};
  return p;
}

job_spec example_spec() {
  job_spec s;
  s.name = "train-resnet";
  s.user = "ada";
  s.command = {"python3", "train.py", "--epochs", "10"};
  s.workdir = "/home/ada/resnet";
  s.env = {{"CUDA_VISIBLE_DEVICES", "0,1"}, {"OMP_NUM_THREADS", "4"}};
  s.walltime = 2 * hour;
  s.deadline = fixed_sent_at + 24 * hour;
  s.max_cost = 12'500'000;
  s.priority = -3; // negative msgpack int kind
  s.software = {"python3.11", "cuda12"};
  s.hints = example_resources();
  s.profile_command = {"python3", "train.py", "--epochs", "1"};
  s.profile_budget = 60 * sec_us;
  s.profile_skip = true;
  s.inputs = {"data/train.tar", "data/labels.csv"};
  return s;
}

allocation example_allocation() {
  allocation a;
  a.allocation_id = "alloc-0001";
  a.job_id = "job-0001";
  a.offer_id = "offer-0003";
  a.provider = "market-eu";
  a.granted = example_resources();
  a.price = 8'123'456;
  a.rate_per_hour = 4'061'728;
  a.terms = example_sla();
  a.lease_token = "lt-5f2b9c0e7a1d4e3f";
  a.lease_expires = fixed_sent_at + 5 * 60 * sec_us;
  a.start_at = fixed_sent_at + 60 * sec_us;
  a.instance_type = "p4d.24xlarge";
  a.committed_at = fixed_sent_at - sec_us;
  return a;
}

job_status example_status() {
  job_status s;
  s.job_id = "job-0001";
  s.name = "train-resnet";
  s.user = "ada";
  s.state = job_state::running;
  s.reason = "started on market-eu";
  s.provider = "market-eu";
  s.allocation_id = "alloc-0001";
  s.price = 8'123'456;
  s.allocated = example_resources();
  s.offers = {
      {"offer-0001", "local", 1, 9'000'000, fixed_sent_at, 9'450'000.5, "lost"},
      {"offer-0003", "market-eu", 2, 8'123'456, fixed_sent_at + 60 * sec_us, 8'300'000.25, "won"}};
  s.submitted_at = fixed_sent_at - 10 * 60 * sec_us;
  s.started_at = fixed_sent_at - 5 * 60 * sec_us;
  s.finished_at = fixed_sent_at + 3 * hour;
  s.exit_code = 0;
  s.has_profile = true;
  s.profile = example_profile();
  s.cpu_used_mean = 3.5;
  s.mem_used_peak = 7LL << 30;
  s.io_read = 2LL << 30;
  s.io_write = 1LL << 29;
  return s;
}

offer example_offer() {
  offer o;
  o.offer_id = "offer-0003";
  o.job_id = "job-0001";
  o.auction_id = "auction-0001";
  o.round = 2;
  o.provider = "market-eu";
  o.granted = example_resources();
  o.price = 8'123'456;
  o.rate_per_hour = 4'061'728;
  o.earliest_start = fixed_sent_at + 60 * sec_us;
  o.terms = example_sla();
  o.valid_until = fixed_sent_at + 30 * sec_us;
  o.instance_type = "p4d.24xlarge";
  o.spot = true;
  return o;
}

provider_info example_provider_info(std::string name) {
  provider_info p;
  p.name = std::move(name);
  p.kind = "market";
  p.remote = true;
  p.connected = false;
  p.capacity = example_resources();
  p.free = resources{1000, 2LL << 30, 0, "A100", 40LL << 30};
  p.offers = 120;
  p.wins = 33;
  p.breaches = 2;
  p.risk = 0.0625;
  p.gpu_types = {"A100", "H100"};
  p.drained = true;
  p.plan_at = 1'780'000'000'000'000;
  p.plan_horizon = 86'400'000'000;
  p.plan = {plan_entry{"job-1", "job-1/local/r1/abc-1/a", "running", example_resources(),
                       1'780'000'000'000'000, 1'780'000'600'000'000},
            plan_entry{"job-2", "job-2/local/r1/abc-2/a", "reserved", example_resources(),
                       1'780'000'600'000'000, 1'780'000'900'000'000}};
  p.free_over_time = {free_step{1'780'000'000'000'000, resources{1000, 2LL << 30, 0, "A100", 0}},
                      free_step{1'780'000'600'000'000, resources{0, 0, 0, "A100", 0}}};
  return p;
}

/// The fixtures, one per body type, in variant order.
std::vector<envelope> golden_examples() {
  std::vector<body> bodies;
  bodies.emplace_back(job_submit{example_spec(), "client-key-7"});
  bodies.emplace_back(example_status());
  bodies.emplace_back(job_query{"job-0001"});
  bodies.emplace_back(jobs_query{25});
  {
    job_status other = example_status();
    other.job_id = "job-0002";
    other.state = job_state::failed;
    other.exit_code = 137;
    bodies.emplace_back(job_list{{example_status(), other}});
  }
  bodies.emplace_back(job_cancel{"job-0001", "user asked"});
  bodies.emplace_back(example_profile());
  {
    resource_request r;
    r.job_id = "job-0001";
    r.auction_id = "auction-0001";
    r.round = 2;
    r.profile = example_profile();
    r.request = example_resources();
    r.software = {"python3.11", "cuda12"};
    r.deadline = fixed_sent_at + 24 * hour;
    r.max_cost = 12'500'000;
    r.protocol = protocols::vickrey;
    r.price_to_beat = 9'000'000;
    r.reply_by = fixed_sent_at + 2 * sec_us;
    r.hops = 1;
    r.path = {"site-a", "site-b"};
    bodies.emplace_back(r);
  }
  bodies.emplace_back(example_offer());
  bodies.emplace_back(decline{"job-0001", "auction-0001", "offer-0001", "local", "lost: price"});
  bodies.emplace_back(
      award{"offer-0003", "job-0001", "auction-0001", "market-eu", 30 * sec_us, 7'900'000});
  bodies.emplace_back(commit_confirm{"offer-0003", "job-0001", example_allocation()});
  bodies.emplace_back(commit_refuse{"offer-0003", "job-0001", "market-eu", "capacity gone"});
  bodies.emplace_back(example_allocation());
  bodies.emplace_back(release{"alloc-0001", "offer-0003", "job-0001", "job done"});
  bodies.emplace_back(launch{"job-0001", "alloc-0001", "lt-5f2b9c0e7a1d4e3f", example_spec()});
  {
    usage_report u;
    u.job_id = "job-0001";
    u.allocation_id = "alloc-0001";
    u.provider = "market-eu";
    u.samples = {{fixed_sent_at, 3500, 6LL << 30, 100'000, 2'000, 3'000, 12},
                 {fixed_sent_at + 5 * sec_us, 3900, 7LL << 30, 200'000, 4'000, 6'000, 13}};
    u.final = true;
    u.exit_code = 0;
    u.reason = "exited";
    u.started_at = fixed_sent_at - 5 * 60 * sec_us;
    u.finished_at = fixed_sent_at + 5 * sec_us;
    u.gpu_memory_needed = 18LL << 30;
    bodies.emplace_back(u);
  }
  bodies.emplace_back(scale_request{"job-0001", "alloc-0001", example_resources(),
                                    "memory above the 90% interval", false});
  bodies.emplace_back(scale_offer{"job-0001", "alloc-0001", "market-eu", false, true,
                                  example_resources(), -250'000, 15 * sec_us, "migrated"});
  bodies.emplace_back(provider_hello{"market-eu",
                                     "market",
                                     {"A100", "H100"},
                                     {"python3.11", "cuda12"},
                                     {"avx2", "avx512f"},
                                     {"iterated", "vickrey"},
                                     example_resources(),
                                     500'000,
                                     {"batch"}});
  bodies.emplace_back(welcome{"node-1", "market-eu", {"batch"}});
  bodies.emplace_back(providers_query{true});
  bodies.emplace_back(
      provider_list{{example_provider_info("market-eu"), example_provider_info("market-us")}});
  bodies.emplace_back(error{"wrong_type", "job_submit field `spec.command`: expected array",
                            "job_submit", "spec.command"});
  bodies.emplace_back(model_query{true});
  bodies.emplace_back(model_status{"xgboost:0123456789ab", "retrained", "/etc/tender/old.json: format_version 1, expected 2", 1200, 3, 2,
                                   fixed_sent_at, "replaced: MAE 410.5 s -> 388.2 s on 240 jobs",
                                   410.5, 388.2});
  bodies.emplace_back(explain_query{"job-0001"});
  {
    explanation x;
    x.job_id = "job-0001";
    x.state = job_state::committed;
    x.reason = "won by market-eu at $7.900000";
    x.protocol = protocols::vickrey;
    x.rounds = 2;
    x.winner = "market-eu";
    x.offer_id = "offer-0003";
    x.price = 7'900'000;
    x.why = "cheapest risk-adjusted cost: $8.300000 vs next best $9.100000 from local";
    offer_explanation o;
    o.offer_id = "offer-0003";
    o.auction_id = "auction-0001";
    o.round = 2;
    o.provider = "market-eu";
    o.price = 7'900'000;
    o.rate_per_hour = 3'950'000;
    o.earliest_start = fixed_sent_at + 2 * sec_us;
    o.terms = example_sla();
    o.instance_type = "p4d.24xlarge";
    o.score = score_terms{true,     7'950'000.5, 9'000'000, 0.97,     0.05,       0.054,
                          7'950'000.5, 238'500.25, 429'300.75, 8'617'801.5, "E[cost] $7.950000"};
    o.verdict = "won";
    x.offers = {o};
    x.declines = {decline_note{"auction-0001", 1, "local", "not enough memory"}};
    x.rejected = {{"late", 2}, {"duplicate", 1}};
    scaling_decision d;
    d.job_id = "job-0001";
    d.at = fixed_sent_at + 60 * sec_us;
    d.need = "grow_memory";
    d.action = "in_place";
    d.outcome = "granted";
    d.by = "market-eu";
    d.allocation_id = "alloc-0001";
    d.held = resources{2000, 1LL << 30, 0, "", 0};
    d.wanted = resources{2000, 2LL << 30, 0, "", 0};
    d.granted = d.wanted;
    d.price_delta = 12'500;
    d.disruptive = true;
    d.reason = "memory at 0.9 GiB rising 10 MiB/s: crosses 1 GiB in 12 s";
    d.detail = "cgroup limit raised";
    x.scaling = {d};
    bodies.emplace_back(x);
  }
  bodies.emplace_back(bus_submit{"producer-a", 42, example_spec()});
  bodies.emplace_back(bus_ack{"producer-a", 42, "job-0001", true,
                              error{"invalid", "job has no command", "bus_submit",
                                    "spec.command"}});
  bodies.emplace_back(job_event{"transition", "job-0001", job_state::committed,
                                job_state::running, "launched", "market-eu", "alloc-0001",
                                7'900'000, "in_place", "granted", fixed_sent_at + 3 * sec_us});

  std::vector<envelope> out;
  int n = 0;
  for (auto& b : bodies) {
    ++n;
    out.push_back(make_envelope(std::move(b), "node-1", fixed_sent_at + n,
                                "msg-" + std::to_string(n), "msg-corr-" + std::to_string(n)));
  }
  return out;
}

std::filesystem::path golden_dir() {
  const char* env = std::getenv("TENDER_SOURCE_DIR");
  std::filesystem::path root = env && *env ? env : TENDER_SOURCE_DIR;
  return root / "protocol" / "golden";
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool updating_golden() {
  const char* env = std::getenv("TENDER_UPDATE_GOLDEN");
  return env && std::string(env) == "1";
}

std::vector<std::string> golden_frames() {
  std::vector<std::string> frames;
  for (const auto& e : golden_examples())
    frames.push_back(encode(e));
  return frames;
}

template <std::size_t... I> std::set<std::string> all_type_names(std::index_sequence<I...>) {
  return {message_name<std::variant_alternative_t<I, body>>::value...};
}

TEST(golden, every_body_type_has_a_fixture) {
  std::set<std::string> want =
      all_type_names(std::make_index_sequence<std::variant_size_v<body>>{});
  std::set<std::string> have;
  auto examples = golden_examples();
  for (std::size_t i = 0; i < examples.size(); ++i) {
    EXPECT_EQ(examples[i].body.index(), i) << "fixtures must follow the variant order";
    have.insert(type_name(examples[i].body));
  }
  EXPECT_EQ(have, want);
  EXPECT_EQ(examples.size(), std::variant_size_v<body>);
}

/// Every key of `fixture` (and of its nested maps) must differ from `defaults`.
void expect_populated(const msgpack::object& fixture, const msgpack::object& defaults,
                      const std::string& path) {
  ASSERT_EQ(fixture.type, msgpack::type::MAP) << path;
  ASSERT_EQ(defaults.type, msgpack::type::MAP) << path;
  ASSERT_EQ(fixture.via.map.size, defaults.via.map.size) << path;
  for (std::uint32_t i = 0; i < defaults.via.map.size; ++i) {
    const auto& key = defaults.via.map.ptr[i].key;
    const auto& dflt = defaults.via.map.ptr[i].val;
    const auto& mine = fixture.via.map.ptr[i].val;
    std::string name = path + "." + key.as<std::string>();
    ASSERT_EQ(fixture.via.map.ptr[i].key, key) << name;
    // Nested structs are maps with keys even by default; a std::map field is empty.
    if (dflt.type == msgpack::type::MAP && dflt.via.map.size > 0)
      expect_populated(mine, dflt, name);
    else
      EXPECT_NE(mine, dflt) << name << " keeps its default: populate it so the fixture pins it";
  }
}

TEST(golden, fixtures_populate_every_field) {
  for (const auto& e : golden_examples()) {
    envelope empty = e;
    std::visit([&](const auto& b) { empty.body = std::decay_t<decltype(b)>{}; }, e.body);
    std::string a = encode(e), b = encode(empty);
    msgpack::object_handle ha = msgpack::unpack(a.data(), a.size());
    msgpack::object_handle hb = msgpack::unpack(b.data(), b.size());
    expect_populated(ha.get().via.map.ptr[6].val, hb.get().via.map.ptr[6].val, type_name(e.body));
  }
}

TEST(golden, encode_matches_fixture_bytes) {
  std::filesystem::path dir = golden_dir();
  if (updating_golden())
    std::filesystem::create_directories(dir);
  for (const auto& e : golden_examples()) {
    std::string bytes = encode(e);
    std::filesystem::path file = dir / (std::string(type_name(e.body)) + ".msgpack");
    if (updating_golden()) {
      std::ofstream out(file, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      ASSERT_TRUE(out.good()) << "could not write " << file;
      continue;
    }
    ASSERT_TRUE(std::filesystem::exists(file))
        << file << " is missing; create it with TENDER_UPDATE_GOLDEN=1";
    EXPECT_EQ(read_file(file), bytes)
        << type_name(e.body) << ": the encoding changed. If deliberate and additive, rerun with "
        << "TENDER_UPDATE_GOLDEN=1 and commit protocol/golden/.";
  }
}

TEST(golden, fixtures_decode_and_reencode_identically) {
  std::filesystem::path dir = golden_dir();
  for (const auto& e : golden_examples()) {
    std::string name = type_name(e.body);
    std::string bytes = read_file(dir / (name + ".msgpack"));
    ASSERT_FALSE(bytes.empty()) << name;
    decoded d = decode(bytes);
    ASSERT_TRUE(d) << name << ": " << d.failure.code << " " << d.failure.message;
    const envelope& m = *d.message;
    EXPECT_EQ(m.v, 1u);
    EXPECT_EQ(type_name(m.body), name);
    EXPECT_EQ(m.id, e.id);
    EXPECT_EQ(m.correlation_id, e.correlation_id);
    EXPECT_EQ(m.sender, e.sender);
    EXPECT_EQ(m.sent_at, e.sent_at);
    EXPECT_EQ(d.id, e.id);
    EXPECT_EQ(d.type, name);
    // Every field of a fixture differs from its default, so a field lost or
    // altered by decoding would change the re-encoded bytes.
    EXPECT_EQ(encode(m), bytes) << name;
  }
}

TEST(golden, a_hello_and_a_welcome_from_before_batches_decode_with_no_wire_capabilities) {
  // protocol/golden/compat/: the fixtures as they were before `wire` was added. A peer
  // that sends no `wire` key reads one envelope per frame: nothing is batched to it.
  const auto dir = golden_dir() / "compat";
  auto hello = decode(read_file(dir / "provider_hello.before-wire.msgpack"));
  ASSERT_TRUE(hello) << hello.failure.message;
  const auto& h = std::get<provider_hello>(hello.message->body);
  EXPECT_FALSE(h.name.empty());
  EXPECT_GT(h.heartbeat, 0); // the fields before it are all read
  EXPECT_TRUE(h.wire.empty());
  auto welcome_old = decode(read_file(dir / "welcome.before-wire.msgpack"));
  ASSERT_TRUE(welcome_old) << welcome_old.failure.message;
  const auto& w = std::get<welcome>(welcome_old.message->body);
  EXPECT_EQ(w.node, "node-1");
  EXPECT_TRUE(w.wire.empty());
}

TEST(golden, decoded_values_are_the_ones_sent) {
  auto examples = golden_examples();
  decoded d = decode(encode(examples[0]));
  ASSERT_TRUE(d);
  const auto& spec = std::get<job_submit>(d.message->body).spec;
  EXPECT_EQ(spec.command, example_spec().command);
  EXPECT_EQ(spec.env, example_spec().env);
  EXPECT_EQ(spec.priority, -3);
  EXPECT_EQ(spec.hints, example_resources());

  d = decode(encode(examples[1]));
  ASSERT_TRUE(d);
  const auto& status = std::get<job_status>(d.message->body);
  EXPECT_EQ(status.state, job_state::running);
  EXPECT_EQ(status.profile.cpu_hi, 4.0);
  EXPECT_EQ(status.profile.cpu_mean, 3.25);
  ASSERT_EQ(status.offers.size(), 2u);
  EXPECT_EQ(status.offers[1].score, 8'300'000.25);
  EXPECT_EQ(status.profile.findings.size(), 2u);
}

// ============================================================================
// Building hostile and odd frames by hand.

using packer = msgpack::packer<msgpack::sbuffer>;

struct frame_builder {
  msgpack::sbuffer buf;
  packer pk{buf};
  std::string bytes() const { return std::string(buf.data(), buf.size()); }
};

void key(packer& pk, std::string_view k) {
  pk.pack_str(static_cast<std::uint32_t>(k.size()));
  pk.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
}

/// {v: 1, type, id: "m-1", sender: "test", sent_at: 5, body: <body(pk)>}.
std::string frame_with_body(std::string_view type, const std::function<void(packer&)>& body_fn) {
  frame_builder f;
  f.pk.pack_map(6);
  key(f.pk, "v");
  f.pk.pack(1);
  key(f.pk, "type");
  key(f.pk, type);
  key(f.pk, "id");
  key(f.pk, "m-1");
  key(f.pk, "sender");
  key(f.pk, "test");
  key(f.pk, "sent_at");
  f.pk.pack(5);
  key(f.pk, "body");
  body_fn(f.pk);
  return f.bytes();
}

void expect_failure(const decoded& d, const std::string& code, const std::string& type,
                    const std::string& field) {
  ASSERT_FALSE(d) << "decoded although " << code << " was expected";
  EXPECT_EQ(d.failure.code, code) << d.failure.message;
  EXPECT_EQ(d.failure.type, type) << d.failure.message;
  EXPECT_EQ(d.failure.field, field) << d.failure.message;
  EXPECT_FALSE(d.failure.message.empty());
}

// ============================================================================
// Decode errors.

TEST(decode, empty_frame_is_truncated) {
  decoded d = decode("");
  expect_failure(d, "truncated", "", "");
}

TEST(decode, cut_frames_are_truncated) {
  std::string bytes = encode(golden_examples()[1]);
  for (std::size_t cut : {std::size_t{1}, std::size_t{2}, std::size_t{7}, bytes.size() / 3,
                          bytes.size() / 2, bytes.size() - 1}) {
    decoded d = decode(std::string_view(bytes).substr(0, cut));
    expect_failure(d, "truncated", "", "");
  }
}

TEST(decode, invalid_bytes) {
  // 0xc1 is never used in MessagePack.
  decoded d = decode(std::string("\xc1\x00\x01", 3));
  expect_failure(d, "invalid", "", "");
  EXPECT_NE(d.failure.message.find("offset"), std::string::npos) << d.failure.message;
}

TEST(decode, trailing_garbage_is_invalid) {
  std::string bytes = encode(golden_examples()[2]) + std::string("\x00", 1);
  decoded d = decode(bytes);
  expect_failure(d, "invalid", "", "");
  EXPECT_NE(d.failure.message.find("trailing"), std::string::npos) << d.failure.message;
  d = decode(encode(golden_examples()[2]) + encode(golden_examples()[3]));
  expect_failure(d, "invalid", "", "");
}

TEST(decode, top_level_must_be_a_map) {
  frame_builder f;
  f.pk.pack_array(2);
  f.pk.pack(1);
  f.pk.pack(2);
  expect_failure(decode(f.bytes()), "invalid", "", "");
  frame_builder s;
  key(s.pk, "job_submit");
  expect_failure(decode(s.bytes()), "invalid", "", "");
}

TEST(decode, missing_type_names_the_field) {
  frame_builder f;
  f.pk.pack_map(2);
  key(f.pk, "v");
  f.pk.pack(1);
  key(f.pk, "body");
  f.pk.pack_map(0);
  expect_failure(decode(f.bytes()), "invalid", "", "type");
}

TEST(decode, missing_version_names_the_field) {
  frame_builder f;
  f.pk.pack_map(2);
  key(f.pk, "type");
  key(f.pk, "job_query");
  key(f.pk, "body");
  f.pk.pack_map(0);
  expect_failure(decode(f.bytes()), "invalid", "job_query", "v");
}

TEST(decode, missing_body_names_the_field) {
  frame_builder f;
  f.pk.pack_map(3);
  key(f.pk, "v");
  f.pk.pack(1);
  key(f.pk, "type");
  key(f.pk, "job_query");
  key(f.pk, "id");
  key(f.pk, "m-9");
  decoded d = decode(f.bytes());
  expect_failure(d, "invalid", "job_query", "body");
  EXPECT_EQ(d.id, "m-9");
}

TEST(decode, unknown_type_is_named) {
  decoded d = decode(frame_with_body("frobnicate", [](packer& pk) { pk.pack_map(0); }));
  expect_failure(d, "unknown_type", "frobnicate", "type");
  EXPECT_EQ(d.type, "frobnicate");
  EXPECT_EQ(d.id, "m-1");
  EXPECT_NE(d.failure.message.find("frobnicate"), std::string::npos);
}

TEST(decode, other_versions_are_refused) {
  envelope e = golden_examples()[2];
  e.v = 2;
  decoded d = decode(encode(e));
  expect_failure(d, "version", "job_query", "v");
  EXPECT_EQ(d.id, e.id);
  EXPECT_NE(d.failure.message.find('2'), std::string::npos);
  e.v = 0;
  expect_failure(decode(encode(e)), "version", "job_query", "v");
}

TEST(decode, oversized_frames_are_refused_before_parsing) {
  std::string bytes = encode(golden_examples()[1]);
  expect_failure(decode(bytes, bytes.size() - 1), "oversized", "", "");
  EXPECT_TRUE(decode(bytes, bytes.size()));
  // Garbage that would be "invalid" if parsed: the size check comes first.
  std::string huge(default_max_frame + 1, '\xc1');
  expect_failure(decode(huge), "oversized", "", "");
}

TEST(decode, envelope_fields_of_the_wrong_type) {
  auto with = [](std::string_view field, const std::function<void(packer&)>& value) {
    frame_builder f;
    f.pk.pack_map(4);
    key(f.pk, "v");
    if (field == "v")
      value(f.pk);
    else
      f.pk.pack(1);
    key(f.pk, "type");
    key(f.pk, "job_query");
    key(f.pk, field == "v" ? "id" : field);
    if (field == "v")
      key(f.pk, "m-1");
    else
      value(f.pk);
    key(f.pk, "body");
    f.pk.pack_map(0);
    return f.bytes();
  };
  expect_failure(decode(with("sent_at", [](packer& pk) { key(pk, "yesterday"); })), "wrong_type",
                 "job_query", "sent_at");
  expect_failure(decode(with("sent_at", [](packer& pk) { pk.pack(1.5); })), "wrong_type",
                 "job_query", "sent_at");
  expect_failure(decode(with("sent_at", [](packer& pk) { pk.pack(~std::uint64_t{0}); })),
                 "wrong_type", "job_query", "sent_at");
  expect_failure(decode(with("id", [](packer& pk) { pk.pack(17); })), "wrong_type", "job_query",
                 "id");
  expect_failure(decode(with("sender", [](packer& pk) { pk.pack_array(0); })), "wrong_type",
                 "job_query", "sender");
  expect_failure(decode(with("correlation_id", [](packer& pk) { pk.pack(true); })), "wrong_type",
                 "job_query", "correlation_id");
  expect_failure(decode(with("v", [](packer& pk) { key(pk, "1"); })), "wrong_type", "job_query",
                 "v");
  expect_failure(decode(with("v", [](packer& pk) { pk.pack(-1); })), "wrong_type", "job_query",
                 "v");

  frame_builder t;
  t.pk.pack_map(3);
  key(t.pk, "v");
  t.pk.pack(1);
  key(t.pk, "type");
  t.pk.pack(7);
  key(t.pk, "body");
  t.pk.pack_map(0);
  expect_failure(decode(t.bytes()), "wrong_type", "", "type");

  // A negative sent_at (before 1970) is a valid integer.
  decoded ok = decode(with("sent_at", [](packer& pk) { pk.pack(-5); }));
  ASSERT_TRUE(ok) << ok.failure.message;
  EXPECT_EQ(ok.message->sent_at, -5);
}

TEST(decode, body_must_be_a_map) {
  decoded d = decode(frame_with_body("job_query", [](packer& pk) { pk.pack_array(0); }));
  expect_failure(d, "wrong_type", "job_query", "body");
}

TEST(decode, body_field_of_wrong_type_at_top_level) {
  decoded d = decode(frame_with_body("job_query", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "job_id");
    pk.pack(5);
  }));
  expect_failure(d, "wrong_type", "job_query", "job_id");
  EXPECT_NE(d.failure.message.find("expected string"), std::string::npos) << d.failure.message;
  EXPECT_NE(d.failure.message.find("integer 5"), std::string::npos) << d.failure.message;
}

TEST(decode, body_field_of_wrong_type_nested) {
  decoded d = decode(frame_with_body("job_submit", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "spec");
    pk.pack_map(2);
    key(pk, "name");
    key(pk, "fine");
    key(pk, "command");
    pk.pack(5);
  }));
  expect_failure(d, "wrong_type", "job_submit", "spec.command");

  d = decode(frame_with_body("job_submit", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "spec");
    pk.pack_map(1);
    key(pk, "hints");
    pk.pack_map(2);
    key(pk, "memory");
    pk.pack(1024);
    key(pk, "cpu");
    key(pk, "two");
  }));
  expect_failure(d, "wrong_type", "job_submit", "spec.hints.cpu");

  // An element of an array of strings.
  d = decode(frame_with_body("job_submit", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "spec");
    pk.pack_map(1);
    key(pk, "command");
    pk.pack_array(3);
    key(pk, "a");
    key(pk, "b");
    pk.pack(3);
  }));
  expect_failure(d, "wrong_type", "job_submit", "spec.command[2]");

  // A value of a string map.
  d = decode(frame_with_body("job_submit", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "spec");
    pk.pack_map(1);
    key(pk, "env");
    pk.pack_map(2);
    key(pk, "A");
    key(pk, "1");
    key(pk, "B");
    pk.pack(2);
  }));
  expect_failure(d, "wrong_type", "job_submit", "spec.env.B");
}

TEST(decode, body_field_of_wrong_type_inside_an_array_of_structs) {
  decoded d = decode(frame_with_body("job_status", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "offers");
    pk.pack_array(3);
    pk.pack_map(0);
    pk.pack_map(1);
    key(pk, "price");
    pk.pack(5);
    pk.pack_map(2);
    key(pk, "offer_id");
    key(pk, "o-3");
    key(pk, "price");
    key(pk, "cheap");
  }));
  expect_failure(d, "wrong_type", "job_status", "offers[2].price");

  d = decode(frame_with_body("job_list", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "jobs");
    pk.pack_array(2);
    pk.pack_map(0);
    pk.pack_map(1);
    key(pk, "profile");
    pk.pack_map(1);
    key(pk, "findings");
    pk.pack_array(1);
    pk.pack_map(1);
    key(pk, "detail");
    pk.pack_array(0);
  }));
  expect_failure(d, "wrong_type", "job_list", "jobs[1].profile.findings[0].detail");

  d = decode(frame_with_body("provider_list", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "providers");
    pk.pack_array(1);
    key(pk, "not a map");
  }));
  expect_failure(d, "wrong_type", "provider_list", "providers[0]");
}

TEST(decode, integer_overflow_and_floats_in_integer_fields_are_wrong_type) {
  decoded d = decode(frame_with_body("jobs_query", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "limit");
    pk.pack(std::int64_t{1} << 40); // does not fit int32
  }));
  expect_failure(d, "wrong_type", "jobs_query", "limit");
  EXPECT_NE(d.failure.message.find("32-bit"), std::string::npos) << d.failure.message;

  d = decode(frame_with_body("award", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "hold_ttl");
    pk.pack(2.5);
  }));
  expect_failure(d, "wrong_type", "award", "hold_ttl");

  d = decode(frame_with_body("providers_query", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "verbose");
    pk.pack(1);
  }));
  expect_failure(d, "wrong_type", "providers_query", "verbose");

  d = decode(frame_with_body("model_query", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "retrain");
    pk.pack("yes");
  }));
  expect_failure(d, "wrong_type", "model_query", "retrain");

  d = decode(frame_with_body("model_status", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "last_old_mae_s");
    pk.pack("n/a");
  }));
  expect_failure(d, "wrong_type", "model_status", "last_old_mae_s");

  d = decode(frame_with_body("explain_query", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "job_id");
    pk.pack(17);
  }));
  expect_failure(d, "wrong_type", "explain_query", "job_id");

  d = decode(frame_with_body("explanation", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "offers");
    pk.pack_array(1);
    pk.pack_map(1);
    key(pk, "score");
    pk.pack_map(1);
    key(pk, "risk_term");
    pk.pack("high");
  }));
  expect_failure(d, "wrong_type", "explanation", "offers[0].score.risk_term");

  d = decode(frame_with_body("explanation", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "rejected");
    pk.pack_map(1);
    key(pk, "late");
    pk.pack(-1.5);
  }));
  expect_failure(d, "wrong_type", "explanation", "rejected.late");
}

TEST(decode, non_string_key_in_body) {
  decoded d = decode(frame_with_body("job_query", [](packer& pk) {
    pk.pack_map(1);
    pk.pack(1);
    key(pk, "job-1");
  }));
  expect_failure(d, "wrong_type", "job_query", "body");
}

TEST(decode, integer_kinds_and_ints_for_doubles) {
  decoded d = decode(frame_with_body("scale_offer", [](packer& pk) {
    pk.pack_map(3);
    key(pk, "price_delta");
    pk.pack(-250'000); // negative int kind
    key(pk, "delay");
    pk.pack(std::uint64_t{15'000'000}); // positive int kind
    key(pk, "granted");
    pk.pack_map(1);
    key(pk, "gpus");
    pk.pack(std::uint8_t{2});
  }));
  ASSERT_TRUE(d) << d.failure.message;
  const auto& s = std::get<scale_offer>(d.message->body);
  EXPECT_EQ(s.price_delta, -250'000);
  EXPECT_EQ(s.delay, 15'000'000);
  EXPECT_EQ(s.granted.gpus, 2);

  d = decode(frame_with_body("resource_profile", [](packer& pk) {
    pk.pack_map(3);
    key(pk, "cpu_mean");
    pk.pack(3); // int for a double
    key(pk, "cpu_lo");
    pk.pack(-1);
    key(pk, "confidence");
    pk.pack(0.5f); // float32
  }));
  ASSERT_TRUE(d) << d.failure.message;
  const auto& p = std::get<resource_profile>(d.message->body);
  EXPECT_EQ(p.cpu_mean, 3.0);
  EXPECT_EQ(p.cpu_lo, -1.0);
  EXPECT_EQ(p.confidence, 0.5);
}

TEST(decode, missing_keys_keep_defaults_for_older_senders) {
  decoded d = decode(frame_with_body("job_status", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "job_id");
    key(pk, "job-7");
  }));
  ASSERT_TRUE(d) << d.failure.message;
  const auto& s = std::get<job_status>(d.message->body);
  EXPECT_EQ(s.job_id, "job-7");
  EXPECT_EQ(s.exit_code, -1);
  EXPECT_EQ(s.state, job_state::submitted);
  EXPECT_EQ(s.profile.confidence, 0.9);

  // Only v, type and body: the other envelope fields keep their defaults.
  frame_builder f;
  f.pk.pack_map(3);
  key(f.pk, "v");
  f.pk.pack(1);
  key(f.pk, "type");
  key(f.pk, "resource_request");
  key(f.pk, "body");
  f.pk.pack_map(0);
  d = decode(f.bytes());
  ASSERT_TRUE(d) << d.failure.message;
  EXPECT_EQ(d.message->id, "");
  EXPECT_EQ(d.message->sent_at, 0);
  const auto& r = std::get<resource_request>(d.message->body);
  EXPECT_EQ(r.round, 1);
  EXPECT_EQ(r.protocol, protocols::iterated);
}

TEST(decode, unknown_keys_are_ignored_for_newer_senders) {
  frame_builder f;
  f.pk.pack_map(5);
  key(f.pk, "v");
  f.pk.pack(1);
  key(f.pk, "type");
  key(f.pk, "job_cancel");
  key(f.pk, "trace_id");
  f.pk.pack_array(2);
  f.pk.pack(1);
  f.pk.pack_map(0);
  f.pk.pack(99); // a non-string key at the envelope level
  f.pk.pack(true);
  key(f.pk, "body");
  f.pk.pack_map(3);
  key(f.pk, "job_id");
  key(f.pk, "job-1");
  key(f.pk, "added_in_v9");
  f.pk.pack_map(1);
  key(f.pk, "x");
  f.pk.pack(1.5);
  key(f.pk, "reason");
  key(f.pk, "no longer needed");
  decoded d = decode(f.bytes());
  ASSERT_TRUE(d) << d.failure.message;
  const auto& c = std::get<job_cancel>(d.message->body);
  EXPECT_EQ(c.job_id, "job-1");
  EXPECT_EQ(c.reason, "no longer needed");
}

TEST(decode, deep_nesting_is_refused) {
  // 100'000 nested one-element arrays: a stack-exhaustion attempt.
  std::string deep(100'000, '\x91');
  deep += '\xc0';
  decoded d = decode(deep);
  expect_failure(d, "invalid", "", "");
  EXPECT_NE(d.failure.message.find("nesting"), std::string::npos) << d.failure.message;

  // The same hidden under an unknown key of a real body.
  d = decode(frame_with_body("job_query", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "extra");
    for (int i = 0; i < 40; ++i)
      pk.pack_map(1), key(pk, "k");
    pk.pack_nil();
  }));
  expect_failure(d, "invalid", "", "");
}

TEST(decode, huge_declared_sizes_do_not_allocate) {
  // Each declares about 4 billion elements (or bytes) in a few bytes.
  for (std::string hostile : {std::string("\xdd\xff\xff\xff\xff", 5),     // array 32
                              std::string("\xdf\xff\xff\xff\xff", 5),     // map 32
                              std::string("\xdb\xff\xff\xff\xff", 5),     // str 32
                              std::string("\xc6\xff\xff\xff\xff", 5),     // bin 32
                              std::string("\xc9\xff\xff\xff\xff\x01", 6), // ext 32
                              std::string("\x81\xa1v\xdd\x7f\xff\xff\xff\x01\x02", 10)}) {
    decoded d = decode(hostile);
    expect_failure(d, "truncated", "", "");
  }
  // A map that declares more pairs than the frame has bytes, followed by data.
  std::string m("\xdf\x00\x10\x00\x00", 5);
  m += std::string(200, '\x01');
  expect_failure(decode(m), "truncated", "", "");
}

// Found by protocol/fuzz/decode_fuzz.cpp: a string that is not UTF-8 decoded, and
// the JSON view of the message (`tender ... --json`) then threw.
TEST(decode, strings_must_be_utf8) {
  auto job_submit_named = [](std::string name) {
    return frame_with_body("job_submit", [&](packer& pk) {
      pk.pack_map(1);
      key(pk, "spec");
      pk.pack_map(2);
      key(pk, "name");
      key(pk, name);
      key(pk, "command");
      pk.pack_array(1);
      key(pk, "true");
    });
  };
  // Overlong, surrogate, above U+10FFFF, a lone continuation byte, cut short, never used.
  for (std::string bad : {std::string("\xC1\xBF"), std::string("\xE0\x80\xAF"),
                          std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80"),
                          std::string("ok\x80"), std::string("\xE2\x82"), std::string("\xFF")}) {
    decoded d = decode(job_submit_named(bad));
    expect_failure(d, "invalid", "job_submit", "spec.name");
    EXPECT_NE(d.failure.message.find("job_submit field `spec.name`"), std::string::npos)
        << d.failure.message;
    EXPECT_NE(d.failure.message.find("not valid UTF-8"), std::string::npos) << d.failure.message;
  }
  decoded d = decode(job_submit_named("ok\x80"));
  EXPECT_NE(d.failure.message.find("byte 0x80 at offset 2"), std::string::npos)
      << d.failure.message;
  // After ASCII runs around the eight bytes the check skips at a time, and valid
  // multi-byte characters after such runs.
  for (std::size_t run : {7, 8, 9, 15, 16, 17, 24}) {
    d = decode(job_submit_named(std::string(run, 'a') + "\xE2\x9C\x93" + "bc\xFF" + "abcdefgh"));
    EXPECT_NE(d.failure.message.find("byte 0xFF at offset " + std::to_string(run + 5)),
              std::string::npos)
        << run << ": " << d.failure.message;
    d = decode(job_submit_named(std::string(run, 'a') + "\xE2\x9C\x93" + std::string(run, 'b')));
    EXPECT_TRUE(d) << run << ": " << d.failure.message;
  }

  // Well-formed UTF-8 of every length decodes.
  const std::string fine = "Z\xC3\xBCrich \xE2\x9C\x93 \xF0\x9D\x84\x9E \xEF\xBF\xBD";
  d = decode(job_submit_named(fine));
  ASSERT_TRUE(d) << d.failure.message;
  EXPECT_EQ(std::get<job_submit>(d.message->body).spec.name, fine);

  // Inside an array, as a key of a map field, and in the envelope.
  d = decode(frame_with_body("provider_hello", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "software");
    pk.pack_array(2);
    key(pk, "gcc");
    key(pk, "\xC0\x80");
  }));
  expect_failure(d, "invalid", "provider_hello", "software[1]");
  d = decode(frame_with_body("job_submit", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "spec");
    pk.pack_map(1);
    key(pk, "env");
    pk.pack_map(2);
    key(pk, "LANG");
    key(pk, "C");
    key(pk, "X\xFE");
    key(pk, "1");
  }));
  expect_failure(d, "invalid", "job_submit", "spec.env");
  EXPECT_NE(d.failure.message.find("a key is not valid UTF-8"), std::string::npos)
      << d.failure.message;
  envelope e = make_envelope(job_query{"job-1"}, "cli\xFF", 1, "m-\xFF");
  d = decode(encode(e));
  expect_failure(d, "invalid", "job_query", "id");
  EXPECT_EQ(d.id, "") << "an id that is not UTF-8 must not be echoed in the error reply";

  // msgpack also turns `bin` into a std::string: the same rule (found by the fuzzer
  // as a `usage_report` that decoded, re-encoded as str, and was then refused).
  auto hello_with_binary_name = [](std::string bytes) {
    return frame_with_body("provider_hello", [&](packer& pk) {
      pk.pack_map(1);
      key(pk, "name");
      pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
      pk.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
    });
  };
  d = decode(hello_with_binary_name("market\xA7"));
  expect_failure(d, "invalid", "provider_hello", "name");
  d = decode(hello_with_binary_name("market-eu"));
  ASSERT_TRUE(d) << d.failure.message;
  EXPECT_EQ(std::get<provider_hello>(d.message->body).name, "market-eu");

  // Unknown keys are ignored whatever they hold.
  d = decode(frame_with_body("job_query", [](packer& pk) {
    pk.pack_map(2);
    key(pk, "job_id");
    key(pk, "job-1");
    key(pk, "extra\xFE");
    key(pk, "\xFF");
  }));
  ASSERT_TRUE(d) << d.failure.message;
  EXPECT_EQ(std::get<job_query>(d.message->body).job_id, "job-1");
}

TEST(decode, bodies_padded_with_empty_elements_are_refused_before_converting) {
  // 200,000 empty maps (one byte each) would become 200,000 default job_status
  // (~700 bytes each, ~140 MB): refused, naming the size.
  auto padded = [](std::uint32_t n) {
    return frame_with_body("job_list", [n](packer& pk) {
      pk.pack_map(1);
      key(pk, "jobs");
      pk.pack_array(n);
      for (std::uint32_t i = 0; i < n; ++i)
        pk.pack_map(0);
    });
  };
  decoded d = decode(padded(200'000));
  expect_failure(d, "oversized", "job_list", "body");
  EXPECT_NE(d.failure.message.find("MiB in memory"), std::string::npos) << d.failure.message;
  EXPECT_NE(d.failure.message.find("limit is 64 MiB"), std::string::npos) << d.failure.message;
  // The same at the full frame limit (3 GB once converted), and strings the same way.
  expect_failure(decode(padded(default_max_frame - 64)), "oversized", "job_list", "body");
  d = decode(frame_with_body("provider_hello", [](packer& pk) {
    pk.pack_map(1);
    key(pk, "software");
    pk.pack_array(3'000'000); // empty strings: 1 byte each, 32 in memory
    for (int i = 0; i < 3'000'000; ++i)
      key(pk, "");
  }));
  expect_failure(d, "oversized", "provider_hello", "body");

  // A few of them are fine, and so is a real list that fills most of a frame.
  d = decode(padded(1'000));
  ASSERT_TRUE(d) << d.failure.message;
  EXPECT_EQ(std::get<job_list>(d.message->body).jobs.size(), 1'000u);
  job_list many;
  for (const auto& e : golden_examples())
    if (std::holds_alternative<job_status>(e.body))
      many.jobs.assign(3'000, std::get<job_status>(e.body));
  ASSERT_EQ(many.jobs.size(), 3'000u);
  std::string big = encode(make_envelope(many, "node-1", 1, "m-1"));
  ASSERT_GT(big.size(), default_max_frame / 2);
  ASSERT_LT(big.size(), default_max_frame);
  d = decode(big);
  ASSERT_TRUE(d) << d.failure.message;
  EXPECT_EQ(std::get<job_list>(d.message->body).jobs.size(), 3'000u);
}

// ============================================================================
// Properties: decode never throws and never crashes.

TEST(decode_property, every_prefix_of_every_golden_message_is_truncated) {
  for (const auto& bytes : golden_frames()) {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      decoded d;
      ASSERT_NO_THROW(d = decode(std::string_view(bytes).substr(0, n)));
      ASSERT_FALSE(d) << "prefix of " << n << " bytes decoded";
      EXPECT_EQ(d.failure.code, "truncated") << n << ": " << d.failure.message;
    }
  }
}

TEST(decode_property, random_byte_flips_never_crash) {
  std::mt19937 rng(20261125);
  int decoded_ok = 0, refused = 0;
  for (const auto& original : golden_frames()) {
    std::uniform_int_distribution<std::size_t> pos(0, original.size() - 1);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> flips(1, 4);
    for (int round = 0; round < 300; ++round) {
      std::string bytes = original;
      for (int k = flips(rng); k > 0; --k)
        bytes[pos(rng)] = static_cast<char>(byte(rng));
      decoded d;
      ASSERT_NO_THROW(d = decode(bytes));
      if (d) {
        ++decoded_ok;
        // Whatever decoded must encode again and decode to the same bytes.
        std::string again = encode(*d.message);
        decoded d2 = decode(again);
        ASSERT_TRUE(d2) << d2.failure.message;
        EXPECT_EQ(encode(*d2.message), again);
      } else {
        ++refused;
        EXPECT_FALSE(d.failure.code.empty());
        EXPECT_FALSE(d.failure.message.empty());
      }
    }
  }
  // Both outcomes occur: the flips reach values as well as structure.
  EXPECT_GT(decoded_ok, 0);
  EXPECT_GT(refused, 0);
}

/// Writes `o` again with every map's entries shuffled, some dropped and some
/// repeated with another entry's value in their place (a duplicate key).
void pack_mutated(packer& pk, const msgpack::object& o, std::mt19937& rng) {
  if (o.type == msgpack::type::ARRAY) {
    pk.pack_array(o.via.array.size);
    for (std::uint32_t i = 0; i < o.via.array.size; ++i)
      pack_mutated(pk, o.via.array.ptr[i], rng);
    return;
  }
  if (o.type != msgpack::type::MAP) {
    pk.pack(o);
    return;
  }
  std::vector<std::pair<const msgpack::object*, const msgpack::object*>> kv;
  std::uniform_int_distribution<int> die(0, 9);
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const int roll = die(rng);
    if (roll == 0)
      continue; // dropped: the field keeps its default
    kv.push_back({&o.via.map.ptr[i].key, &o.via.map.ptr[i].val});
    if (roll == 1) // repeated with some other entry's value (maybe of another type)
      kv.push_back({&o.via.map.ptr[i].key,
                    &o.via.map.ptr[std::uniform_int_distribution<std::uint32_t>(
                                       0, o.via.map.size - 1)(rng)]
                         .val});
  }
  std::shuffle(kv.begin(), kv.end(), rng);
  pk.pack_map(static_cast<std::uint32_t>(kv.size()));
  for (auto [k, v] : kv) {
    pk.pack(*k);
    pack_mutated(pk, *v, rng);
  }
}

TEST(decode_property, bodies_decode_as_msgpack_itself_converts_them) {
  // decode() converts bodies with its own field matcher (envelope.cpp fast_convert),
  // not msgpack's; both must agree on every body: keys in any order, missing keys,
  // duplicate keys (the first wins in a struct, the last in a std::map), values of
  // the wrong type.
  std::mt19937 rng(20261204);
  int agreed_ok = 0, agreed_refused = 0;
  for (const auto& frame : golden_frames()) {
    msgpack::object_handle h = msgpack::unpack(frame.data(), frame.size());
    const msgpack::object& root = h.get();
    const decoded original = decode(frame);
    ASSERT_TRUE(original) << original.failure.message;
    for (int round = 0; round < 200; ++round) {
      frame_builder f;
      f.pk.pack_map(root.via.map.size);
      const msgpack::object* body_obj = nullptr;
      for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
        const auto& k = root.via.map.ptr[i].key;
        f.pk.pack(k);
        if (std::string_view(k.via.str.ptr, k.via.str.size) == "body") {
          pack_mutated(f.pk, root.via.map.ptr[i].val, rng);
        } else {
          f.pk.pack(root.via.map.ptr[i].val);
        }
      }
      const std::string bytes = f.bytes();
      // The reference: msgpack's own conversion of the mutated body.
      msgpack::object_handle mh = msgpack::unpack(bytes.data(), bytes.size());
      for (std::uint32_t i = 0; i < mh.get().via.map.size; ++i)
        if (std::string_view(mh.get().via.map.ptr[i].key.via.str.ptr,
                             mh.get().via.map.ptr[i].key.via.str.size) == "body")
          body_obj = &mh.get().via.map.ptr[i].val;
      ASSERT_NE(body_obj, nullptr);
      std::visit(
          [&](const auto& sent) {
            using T = std::decay_t<decltype(sent)>;
            T reference{};
            bool converts = true;
            try {
              body_obj->convert(reference);
            } catch (const msgpack::type_error&) {
              converts = false;
            }
            decoded d = decode(bytes);
            if (!converts) {
              EXPECT_FALSE(d) << type_name(sent) << ": msgpack refuses, decode accepted";
              EXPECT_EQ(d.failure.code, "wrong_type") << d.failure.message;
              ++agreed_refused;
              return;
            }
            ASSERT_TRUE(d) << type_name(sent) << ": " << d.failure.message;
            msgpack::sbuffer a, b;
            msgpack::pack(a, reference);
            msgpack::pack(b, std::get<T>(d.message->body));
            EXPECT_EQ(std::string_view(a.data(), a.size()), std::string_view(b.data(), b.size()))
                << type_name(sent) << " decoded differently from msgpack's conversion";
            ++agreed_ok;
          },
          original.message->body);
    }
  }
  // Both kinds of outcome were compared.
  EXPECT_GT(agreed_ok, 1000);
  EXPECT_GT(agreed_refused, 100);
}

TEST(decode_property, random_garbage_never_crashes) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> len(0, 300);
  for (int round = 0; round < 5000; ++round) {
    std::string bytes(len(rng), '\0');
    for (auto& c : bytes)
      c = static_cast<char>(byte(rng));
    decoded d;
    ASSERT_NO_THROW(d = decode(bytes));
    if (!d) {
      EXPECT_FALSE(d.failure.code.empty());
    }
  }
}

// Inputs that once broke the decoder (saved by libFuzzer, protocol/fuzz/regressions/decode/;
// the fuzz test replays them under the sanitizers too). Each must be refused with
// a reason, or decode to a message that encodes and decodes to the same bytes.
TEST(decode_property, saved_fuzzer_inputs_are_refused_or_round_trip) {
  std::filesystem::path dir = golden_dir().parent_path() / "fuzz" / "regressions" / "decode";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string bytes = read_file(entry.path());
    ++inputs;
    decoded d;
    ASSERT_NO_THROW(d = decode(bytes)) << entry.path();
    if (!d) {
      EXPECT_FALSE(d.failure.code.empty()) << entry.path();
      EXPECT_FALSE(d.failure.message.empty()) << entry.path();
      continue;
    }
    std::string again = encode(*d.message);
    decoded d2 = decode(again, again.size());
    ASSERT_TRUE(d2) << entry.path() << ": " << d2.failure.message;
    EXPECT_EQ(encode(*d2.message), again) << entry.path();
  }
  EXPECT_GT(inputs, 0);
  // An `explanation` with a string that is not UTF-8, and a `usage_report` whose
  // `provider` is a `bin` that is not UTF-8.
  for (const char* name :
       {"invalid-utf8-in-explanation.msgpack", "binary-not-utf8-as-string.msgpack"}) {
    decoded d = decode(read_file(dir / name));
    ASSERT_FALSE(d) << name;
    EXPECT_EQ(d.failure.code, "invalid") << name;
    EXPECT_NE(d.failure.message.find("not valid UTF-8"), std::string::npos) << d.failure.message;
  }
}

// ============================================================================
// Small API.

TEST(envelope, type_name_and_make_envelope) {
  envelope e = make_envelope(job_query{"job-1"}, "cli", 77, "m-1", "m-0");
  EXPECT_STREQ(type_name(e.body), "job_query");
  EXPECT_EQ(e.v, wire_version);
  EXPECT_EQ(e.sender, "cli");
  EXPECT_EQ(e.sent_at, 77);
  EXPECT_EQ(e.id, "m-1");
  EXPECT_EQ(e.correlation_id, "m-0");
  EXPECT_STREQ(type_name(body{error{}}), "error");
  EXPECT_STREQ(type_name(body{provider_list{}}), "provider_list");
}

TEST(envelope, encode_writes_the_seven_envelope_keys_in_order) {
  std::string bytes = encode(make_envelope(jobs_query{3}, "cli", 9, "m-1"));
  msgpack::object_handle h = msgpack::unpack(bytes.data(), bytes.size());
  const msgpack::object& o = h.get();
  ASSERT_EQ(o.type, msgpack::type::MAP);
  ASSERT_EQ(o.via.map.size, 7u);
  const char* keys[] = {"v", "type", "id", "correlation_id", "sender", "sent_at", "body"};
  for (std::uint32_t i = 0; i < 7; ++i)
    EXPECT_EQ(o.via.map.ptr[i].key.as<std::string>(), keys[i]);
  EXPECT_EQ(o.via.map.ptr[1].val.as<std::string>(), "jobs_query");
  EXPECT_EQ(o.via.map.ptr[6].val.type, msgpack::type::MAP);
}

// decode's fast path (one pass from the bytes into the structs) must give exactly what
// the general path gives: the same message for every frame it reads, and for every
// frame it declines the general path's answer. Every golden frame is read by the fast
// path, and so is each one with every single byte changed in four ways or cut short at
// every length; wherever either path accepts, both accept the same message, and
// wherever they refuse, they refuse alike.
TEST(decode_paths, agree_on_every_golden_frame_and_every_one_byte_change_of_it) {
  auto same = [](std::string_view bytes, const std::string& what) {
    auto fast = decode(bytes);
    auto general = decode_general(bytes);
    EXPECT_EQ(static_cast<bool>(fast), static_cast<bool>(general))
        << what << ": " << (fast ? general.failure.message : fast.failure.message);
    if (static_cast<bool>(fast) != static_cast<bool>(general))
      return false;
    EXPECT_EQ(fast.type, general.type) << what;
    EXPECT_EQ(fast.id, general.id) << what;
    if (fast) {
      EXPECT_EQ(encode(*fast.message), encode(*general.message)) << what;
    } else {
      EXPECT_EQ(fast.failure.code, general.failure.code) << what;
      EXPECT_EQ(fast.failure.message, general.failure.message) << what;
      EXPECT_EQ(fast.failure.field, general.failure.field) << what;
    }
    return static_cast<bool>(fast);
  };
  // Types whose structs hold a map, an enum or an optional go the general way; every
  // other type, the negotiation's and the providers' among them, is read fast.
  const std::set<std::string> general_only{"bus_submit", "explanation", "job_event", "job_list",
                                           "job_status", "job_submit",  "launch"};
  std::size_t accepted_changes = 0, frames = 0;
  for (const auto& frame : golden_frames()) {
    ++frames;
    const auto type = decode(frame).type;
    EXPECT_EQ(fast_path_reads(frame), !general_only.count(type)) << type;
    EXPECT_TRUE(same(frame, "golden " + decode(frame).type));
    for (std::size_t at = 0; at < frame.size(); ++at) {
      for (unsigned char how : {0x01, 0x20, 0x80, 0xff}) {
        std::string changed = frame;
        changed[at] = static_cast<char>(static_cast<unsigned char>(changed[at]) ^ how);
        accepted_changes +=
            same(changed, decode(frame).type + " byte " + std::to_string(at) + " ^ " +
                              std::to_string(how))
                ? 1
                : 0;
      }
      same(std::string_view(frame).substr(0, at), "cut at " + std::to_string(at));
    }
  }
  EXPECT_GE(frames, 30u);
  // Many changes still decode (a letter of a string, a number's value): the comparison
  // above covered accepted messages, not refusals only.
  EXPECT_GT(accepted_changes, 1000u);
}

TEST(decode_paths, frames_the_fast_path_declines_still_decode_as_before) {
  // What another client may send and tender does not write: keys out of order, an
  // unknown key, binary for a string, a repeated key, nil for a string. The
  // fast path leaves each to the general path, which decodes it as it always did.
  offer o;
  o.offer_id = "o-1";
  o.job_id = "j-1";
  o.provider = "p";
  o.price = 12;
  o.terms.availability = 0.5;
  const auto own = encode(make_envelope(o, "p", 7, "m-1"));
  ASSERT_TRUE(fast_path_reads(own));

  auto frame = [](auto&& write_body) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(7);
    pk.pack(std::string("v"));
    pk.pack(1);
    pk.pack(std::string("type"));
    pk.pack(std::string("offer"));
    pk.pack(std::string("id"));
    pk.pack(std::string("m-1"));
    pk.pack(std::string("correlation_id"));
    pk.pack(std::string(""));
    pk.pack(std::string("sender"));
    pk.pack(std::string("p"));
    pk.pack(std::string("sent_at"));
    pk.pack(7);
    pk.pack(std::string("body"));
    write_body(pk);
    return std::string(buf.data(), buf.size());
  };
  struct variant_case {
    std::string name;
    std::string bytes;
  };
  std::vector<variant_case> cases{
      {"keys out of order", frame([](auto& pk) {
         pk.pack_map(2);
         pk.pack(std::string("price"));
         pk.pack(12);
         pk.pack(std::string("offer_id"));
         pk.pack(std::string("o-1"));
       })},
      {"an unknown key", frame([](auto& pk) {
         pk.pack_map(2);
         pk.pack(std::string("offer_id"));
         pk.pack(std::string("o-1"));
         pk.pack(std::string("colour"));
         pk.pack(std::string("blue"));
       })},
      {"binary for a string", frame([](auto& pk) {
         pk.pack_map(1);
         pk.pack(std::string("offer_id"));
         pk.pack_bin(3);
         pk.pack_bin_body("o-1", 3);
       })},
      {"a repeated key (the first one counts)", frame([](auto& pk) {
         pk.pack_map(2);
         pk.pack(std::string("offer_id"));
         pk.pack(std::string("o-1"));
         pk.pack(std::string("offer_id"));
         pk.pack(std::string("o-2"));
       })},
  };
  for (auto& c : cases) {
    EXPECT_FALSE(fast_path_reads(c.bytes)) << c.name;
    auto d = decode(c.bytes);
    ASSERT_TRUE(d) << c.name << ": " << d.failure.message;
    auto g = decode_general(c.bytes);
    ASSERT_TRUE(g) << c.name;
    EXPECT_EQ(encode(*d.message), encode(*g.message)) << c.name;
    const auto& got = std::get<offer>(d.message->body);
    if (c.name == "keys out of order") {
      EXPECT_EQ(got.price, 12);
      EXPECT_EQ(got.offer_id, "o-1");
    }
    if (c.name == "binary for a string" || c.name.rfind("a repeated", 0) == 0)
      EXPECT_EQ(got.offer_id, "o-1");
  }
  // An integer where a number goes is read by both as msgpack-c reads it (msgpack-c
  // writes a double without a fraction as an integer: tender's own frames have them).
  auto whole = frame([](auto& pk) {
    pk.pack_map(1);
    pk.pack(std::string("terms"));
    pk.pack_map(1);
    pk.pack(std::string("availability"));
    pk.pack(-3);
  });
  EXPECT_TRUE(fast_path_reads(whole));
  ASSERT_TRUE(decode(whole));
  EXPECT_EQ(std::get<offer>(decode(whole).message->body).terms.availability, -3.0);
  EXPECT_EQ(encode(*decode(whole).message), encode(*decode_general(whole).message));
  // nil for a string is refused by both, naming the field.
  auto nil = frame([](auto& pk) {
    pk.pack_map(1);
    pk.pack(std::string("offer_id"));
    pk.pack_nil();
  });
  EXPECT_FALSE(fast_path_reads(nil));
  auto d = decode(nil);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.failure.field, "offer_id") << d.failure.message;
}

TEST(encode_paths, write_every_golden_message_and_every_accepted_change_of_it_as_msgpack_c) {
  // encode()'s own writer against msgpack-c's packer, byte for byte: every golden message,
  // and every message that a one-byte change of a golden frame still decodes to (other
  // numbers, strings, lengths).
  std::size_t compared = 0;
  auto same = [&](const envelope& m, const std::string& what) {
    ++compared;
    EXPECT_EQ(encode(m), encode_general(m)) << what;
  };
  // Types whose structs hold an enum or an optional are written by msgpack-c; every other
  // type, the negotiation's and the providers' among them (and the job files, whose maps
  // it writes too), by encode()'s own writer.
  const std::set<std::string> general_only{"explanation", "job_event", "job_list", "job_status"};
  std::size_t frames = 0;
  for (const auto& frame : golden_frames()) {
    auto d = decode(frame);
    ASSERT_TRUE(d) << d.failure.message;
    ++frames;
    EXPECT_EQ(fast_path_writes(*d.message), !general_only.count(d.type)) << d.type;
    same(*d.message, "golden " + d.type);
    for (std::size_t at = 0; at < frame.size(); ++at)
      for (unsigned char how : {0x01, 0x20, 0x80}) {
        std::string changed = frame;
        changed[at] = static_cast<char>(static_cast<unsigned char>(changed[at]) ^ how);
        if (auto c = decode(changed))
          same(*c.message, d.type + " byte " + std::to_string(at) + " ^ " + std::to_string(how));
      }
  }
  EXPECT_GE(frames, 30u);
  EXPECT_GT(compared, 1000u);
}

TEST(encode_paths, a_body_written_where_it_is_gives_the_bytes_of_its_envelope) {
  // encode_message(b, ...) is encode(make_envelope(b, ...)) without the copy, for every
  // type (the general path's too) and with or without a correlation id.
  std::size_t compared = 0;
  for (const auto& frame : golden_frames()) {
    auto d = decode(frame);
    ASSERT_TRUE(d) << d.failure.message;
    const auto& m = *d.message;
    for (const auto& corr : {std::string(), m.correlation_id + "-x"}) {
      auto want = encode(make_envelope(m.body, m.sender, m.sent_at, m.id, corr));
      auto got = std::visit(
          [&](const auto& b) { return encode_message(b, m.sender, m.sent_at, m.id, corr); },
          m.body);
      EXPECT_EQ(got, want) << d.type;
      ++compared;
    }
  }
  EXPECT_GE(compared, 60u);
  // A double msgpack-c has its own rules for leaves the message to msgpack-c here too.
  resource_request r;
  r.job_id = "j";
  r.profile.cpu_mean = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(encode_message(r, "node", 5, "m-1"), encode(make_envelope(r, "node", 5, "m-1")));
}

TEST(encode_paths, edge_values_are_written_as_msgpack_c_writes_them) {
  // Each encoding's boundaries: integers at the edges of fixint, 8, 16, 32 and 64 bits,
  // doubles that are whole numbers (msgpack-c writes them as integers) or not, strings
  // and arrays at their length classes. Doubles msgpack-c has rules of its own for (NaN,
  // infinities, beyond +-2^63) leave the whole message to msgpack-c.
  resource_request r;
  r.job_id = "j";
  const std::vector<std::int64_t> ints{
      0,  1,   127, 128,  255,  256,    65535,  65536,     4294967295LL,    4294967296LL, INT64_MAX,
      -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN, INT32_MIN - 1LL, INT64_MIN};
  for (auto i : ints) {
    r.max_cost = i;
    r.deadline = i == INT64_MIN ? INT64_MAX : -i; // -INT64_MIN would overflow
    const auto e = make_envelope(r, "n", i, "m");
    EXPECT_TRUE(fast_path_writes(e)) << i;
    EXPECT_EQ(encode(e), encode_general(e)) << i;
  }
  const double inf = std::numeric_limits<double>::infinity();
  struct d_case {
    double v;
    bool fast;
  };
  const std::vector<d_case> doubles{{0.0, true},
                                    {-0.0, true},
                                    {1.0, true},
                                    {-1.0, true},
                                    {0.5, true},
                                    {-0.25, true},
                                    {1e300, false},
                                    {-1e300, false},
                                    {9007199254740992.0, true},
                                    {4294967296.5, true},
                                    {9.2e18, true},
                                    {-9.2e18, true},
                                    {9223372036854775808.0, false},
                                    {-9223372036854775808.0, false},
                                    {inf, false},
                                    {-inf, false},
                                    {std::nan(""), false},
                                    {std::numeric_limits<double>::denorm_min(), true}};
  for (const auto& [v, fast] : doubles) {
    r.profile.cpu_mean = v;
    const auto e = make_envelope(r, "n", 1, "m");
    EXPECT_EQ(fast_path_writes(e), fast) << v;
    EXPECT_EQ(encode(e), encode_general(e)) << v;
  }
  r.profile.cpu_mean = 0.5;
  for (std::size_t n : {0, 1, 31, 32, 255, 256, 65535, 65536}) {
    r.job_id = std::string(n, 'x');
    const auto e = make_envelope(r, std::string(n, 'y'), 1, std::string(n, 'z'));
    EXPECT_TRUE(fast_path_writes(e)) << n;
    EXPECT_EQ(encode(e), encode_general(e)) << n;
  }
  r.job_id = "j";
  for (std::size_t n : {0, 15, 16, 65535, 65536}) {
    r.software.assign(n, "sh");
    const auto e = make_envelope(r, "n", 1, "m");
    EXPECT_TRUE(fast_path_writes(e)) << n;
    EXPECT_EQ(encode(e), encode_general(e)) << n;
  }
}

} // namespace
} // namespace tender

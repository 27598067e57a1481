// Batch frames (protocol/batch.hpp) between real processes: a node reads batches from
// anyone and answers each envelope; a `tender provider` answers what it read in one go
// with one batch frame, but only to a node whose welcome says it reads them.

#include "protocol/batch.hpp"
#include "protocol/envelope.hpp"
#include "tests/harness.hpp"
#include "tools/client.hpp"

#include <gtest/gtest.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <map>
#include <optional>
#include <set>

using namespace tender;
using namespace tender::test;
using namespace std::chrono_literals;

namespace {

using queue = std::vector<std::pair<std::string, std::string>>;

std::string enc(body b, const std::string& id) {
  return encode(make_envelope(std::move(b), "batch-test", wall_now(), id));
}

/// `envelopes` as one batch frame.
std::string batch_of(const std::vector<std::string>& envelopes) {
  queue q;
  for (auto& e : envelopes)
    q.emplace_back("peer", e);
  auto frames = frames_for(q, [](const std::string&) { return true; });
  EXPECT_EQ(frames.size(), 1u);
  return frames.empty() ? std::string() : frames[0].bytes;
}

/// The next frame's payload on `s` (a ROUTER's identity frame is skipped), or nothing
/// within the socket's receive timeout.
std::optional<std::string> next_frame(zmq::socket_t& s, std::string* peer = nullptr) {
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(s, std::back_inserter(parts)) || parts.empty())
    return std::nullopt;
  if (peer && parts.size() >= 2)
    *peer = parts.front().to_string();
  return parts.back().to_string();
}

resource_request call(const std::string& job) {
  resource_request r;
  r.job_id = job;
  r.auction_id = "a-" + job;
  r.round = 1;
  r.profile.job_id = job;
  r.profile.cpu_mean = 0.5;
  r.profile.cpu_hi = 1.0;
  r.profile.mem_peak = 100ll << 20;
  r.profile.runtime = 60 * sec_us;
  r.profile.runtime_lo = 30 * sec_us;
  r.profile.runtime_hi = 120 * sec_us;
  r.request.cpu = 1000;
  r.request.memory = 256ll << 20;
  r.software = {"sh"};
  r.deadline = wall_now() + 3600 * sec_us;
  r.max_cost = 5 * usd;
  r.reply_by = wall_now() + 10 * sec_us;
  return r;
}

} // namespace

TEST(batch_frames, a_node_answers_each_envelope_of_a_batch_and_refuses_a_broken_one_naming_where) {
  temp_dir t;
  agent a(t.path + "/data");
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvtimeo, 10000);
  s.connect(a.endpoint());

  const auto frame = batch_of(
      {enc(jobs_query{}, "q-1"), enc(providers_query{false}, "q-2"), enc(jobs_query{}, "q-3")});
  s.send(zmq::buffer(frame), zmq::send_flags::none);
  std::map<std::string, std::string> answered; // correlation id -> type
  for (int i = 0; i < 3; ++i) {
    auto f = next_frame(s);
    ASSERT_TRUE(f) << "no answer to every envelope of the batch: " << answered.size();
    EXPECT_FALSE(is_batch(*f)) << "a client that never said it reads batches got one";
    auto d = decode(*f);
    ASSERT_TRUE(d) << d.failure.message;
    answered[d.message->correlation_id] = d.type;
  }
  EXPECT_EQ(answered["q-1"], "job_list");
  EXPECT_EQ(answered["q-2"], "provider_list");
  EXPECT_EQ(answered["q-3"], "job_list");

  // The last envelope cut short: refused as a whole, naming the element.
  s.send(zmq::buffer(frame.substr(0, frame.size() - 4)), zmq::send_flags::none);
  auto f = next_frame(s);
  ASSERT_TRUE(f);
  auto d = decode(*f);
  ASSERT_TRUE(d);
  ASSERT_TRUE(std::holds_alternative<error>(d.message->body)) << d.type;
  const auto& e = std::get<error>(d.message->body);
  EXPECT_EQ(e.code, "malformed");
  EXPECT_EQ(e.field, "batch[2]") << e.message;
  EXPECT_NE(e.message.find("cut off"), std::string::npos) << e.message;
  // A batch's envelope that does not decode is answered like a lone bad frame, and the
  // envelopes around it are served.
  s.send(zmq::buffer(batch_of(
             {enc(jobs_query{}, "q-4"), std::string("\x81\xa1x", 3), enc(jobs_query{}, "q-5")})),
         zmq::send_flags::none);
  std::set<std::string> kinds;
  for (int i = 0; i < 3; ++i) {
    auto g = next_frame(s);
    ASSERT_TRUE(g);
    auto m = decode(*g);
    ASSERT_TRUE(m);
    kinds.insert(m.message->correlation_id + ":" + m.type);
  }
  EXPECT_TRUE(kinds.count("q-4:job_list")) << testing::PrintToString(kinds);
  EXPECT_TRUE(kinds.count("q-5:job_list")) << testing::PrintToString(kinds);
  EXPECT_EQ(kinds.size(), 3u) << testing::PrintToString(kinds); // and one error
  // Still serving.
  s.send(zmq::buffer(enc(jobs_query{}, "q-6")), zmq::send_flags::none);
  auto ok = next_frame(s);
  ASSERT_TRUE(ok);
  auto okd = decode(*ok);
  ASSERT_TRUE(okd);
  EXPECT_EQ(okd.message->correlation_id, "q-6");
  EXPECT_EQ(okd.type, "job_list");
}

TEST(batch_frames,
     a_provider_answers_what_it_read_together_in_one_batch_only_to_a_node_that_reads_them) {
  temp_dir t;
  zmq::context_t ctx(1);
  zmq::socket_t node(ctx, zmq::socket_type::router);
  node.set(zmq::sockopt::linger, 0);
  node.set(zmq::sockopt::rcvtimeo, 10000);
  node.bind("tcp://127.0.0.1:*");
  const auto endpoint = node.get(zmq::sockopt::last_endpoint);
  auto cfg = t.file("p.toml", "[[providers]]\nname = \"p\"\nkind = \"local\"\ncpus = 2\n"
                              "memory = \"2GiB\"\nprice_per_core_hour = 0.05\n"
                              "price_per_gib_hour = 0.0001\n");
  process prov({tender_bin(), "provider", "--config", cfg, "--connect", endpoint, "--data-dir",
                t.path + "/p"},
               t.path, "p");

  // Its hello says it reads batches.
  std::string peer;
  auto hello = next_frame(node, &peer);
  ASSERT_TRUE(hello) << prov.err();
  auto h = decode(*hello);
  ASSERT_TRUE(h);
  ASSERT_TRUE(std::holds_alternative<provider_hello>(h.message->body)) << h.type;
  EXPECT_TRUE(reads_batches(std::get<provider_hello>(h.message->body).wire));
  auto to_provider = [&](const std::string& bytes) {
    node.send(zmq::buffer(peer), zmq::send_flags::sndmore);
    node.send(zmq::buffer(bytes), zmq::send_flags::none);
  };
  /// Frames until `want` answers (not hellos) have come: how many frames that took.
  auto answers = [&](std::size_t want, std::set<std::string>& correlations) {
    std::size_t frames = 0, got = 0;
    while (got < want) {
      auto f = next_frame(node);
      if (!f)
        break;
      std::vector<std::string_view> envelopes{*f};
      if (is_batch(*f)) {
        auto s = split_batch(*f);
        EXPECT_FALSE(s.failure);
        envelopes = s.envelopes;
      }
      bool counted = false;
      for (auto e : envelopes) {
        auto d = decode(e);
        EXPECT_TRUE(d);
        if (!d || std::holds_alternative<provider_hello>(d.message->body))
          continue;
        EXPECT_TRUE(std::holds_alternative<offer>(d.message->body) ||
                    std::holds_alternative<decline>(d.message->body))
            << d.type;
        correlations.insert(d.message->correlation_id);
        ++got;
        counted = true;
      }
      frames += counted ? 1 : 0;
    }
    return frames;
  };

  // A node that reads batches: three calls for offers in one frame, three answers in one.
  to_provider(enc(welcome{"test-node", "p", {"batch"}}, "w-1"));
  to_provider(batch_of({enc(call("j1"), "c-1"), enc(call("j2"), "c-2"), enc(call("j3"), "c-3")}));
  std::set<std::string> corr;
  EXPECT_EQ(answers(3, corr), 1u) << prov.err();
  EXPECT_EQ(corr, (std::set<std::string>{"c-1", "c-2", "c-3"}));

  // A broken batch is reported and skipped; the provider goes on.
  to_provider(std::string("\x92\xc4\x05xy", 5));
  to_provider(enc(call("j4"), "c-4"));
  corr.clear();
  EXPECT_EQ(answers(1, corr), 1u);
  EXPECT_EQ(corr, (std::set<std::string>{"c-4"}));
  EXPECT_TRUE(eventually(
      [&] { return prov.err().find("bad batch from the node") != std::string::npos; }, 5s))
      << prov.err();

  // A node whose welcome does not list batches gets one frame per answer.
  to_provider(enc(welcome{"test-node", "p", {}}, "w-2"));
  to_provider(batch_of({enc(call("j5"), "c-5"), enc(call("j6"), "c-6")}));
  corr.clear();
  EXPECT_EQ(answers(2, corr), 2u);
  EXPECT_EQ(corr, (std::set<std::string>{"c-5", "c-6"}));
  EXPECT_TRUE(prov.alive());
}

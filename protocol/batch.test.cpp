#include "protocol/batch.hpp"

#include "protocol/envelope.hpp"

#include <gtest/gtest.h>

#include <set>

namespace tender {
namespace {

std::string enc(body b, const std::string& id) {
  return encode(make_envelope(std::move(b), "node-1", 1'700'000'000'000'000, id));
}

using queue = std::vector<std::pair<std::string, std::string>>;

TEST(batch, a_providers_frames_go_in_one_batch_in_order_and_read_back_as_the_same_envelopes) {
  queue q;
  std::vector<std::string> sent_to_a;
  for (int i = 0; i < 5; ++i) {
    auto bytes = enc(decline{"job-" + std::to_string(i), "a-1", "o-1", "spot", "another offer won"},
                     "m-a" + std::to_string(i));
    sent_to_a.push_back(bytes);
    q.emplace_back("peer-a", bytes);
    q.emplace_back("peer-b",
                   enc(release{"al-1", "o-2", "job-9", "bench"}, "m-b" + std::to_string(i)));
  }
  q.emplace_back("client", enc(error{"not_found", "no such job", "job_query", "job_id"}, "m-c"));
  std::set<std::string> asked;
  auto frames = frames_for(q, [&](const std::string& peer) {
    EXPECT_TRUE(asked.insert(peer).second) << "asked twice about " << peer;
    return peer != "client" && peer != "peer-b";
  });
  // peer-a: one batch of 5; peer-b does not read batches: 5 frames; the client: 1.
  ASSERT_EQ(frames.size(), 1u + 5u + 1u);
  EXPECT_EQ(frames[0].peer, "peer-a");
  EXPECT_EQ(frames[0].envelopes, 5u);
  ASSERT_TRUE(is_batch(frames[0].bytes));
  auto split = split_batch(frames[0].bytes);
  ASSERT_FALSE(split.failure) << split.failure->message;
  ASSERT_EQ(split.envelopes.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(split.envelopes[i], sent_to_a[i]) << i;
    auto d = decode(split.envelopes[i]);
    ASSERT_TRUE(d) << d.failure.message;
    EXPECT_EQ(d.message->id, "m-a" + std::to_string(i));
    EXPECT_EQ(std::get<decline>(d.message->body).job_id, "job-" + std::to_string(i));
  }
  for (std::size_t i = 1; i <= 5; ++i) {
    EXPECT_EQ(frames[i].peer, "peer-b");
    EXPECT_EQ(frames[i].envelopes, 1u);
    EXPECT_FALSE(is_batch(frames[i].bytes));
    auto d = decode(frames[i].bytes);
    ASSERT_TRUE(d);
    EXPECT_EQ(d.message->id, "m-b" + std::to_string(i - 1)); // in order
  }
  EXPECT_EQ(frames[6].peer, "client");
  EXPECT_FALSE(is_batch(frames[6].bytes));
}

TEST(batch, a_lone_envelope_stays_a_plain_frame_and_big_batches_are_cut_at_the_limits) {
  queue one = {{"p", enc(award{"o-1", "job-1", "a-1", "spot", 30 * sec_us, 0}, "m-1")}};
  auto f = frames_for(one, [](const std::string&) { return true; });
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(is_batch(f[0].bytes));
  EXPECT_TRUE(decode(f[0].bytes));

  // 5,000 envelopes of ~300 bytes: more than a batch's envelope limit (4,096) and
  // its byte limit (1 MiB) allow in one frame.
  queue many;
  const std::string note(250, 'x');
  for (int i = 0; i < 5000; ++i)
    many.emplace_back("p", enc(release{"al", "o", "job-" + std::to_string(i), note}, "m"));
  auto frames = frames_for(many, [](const std::string&) { return true; });
  ASSERT_GE(frames.size(), 2u);
  std::size_t total = 0;
  int next = 0;
  for (auto& fr : frames) {
    EXPECT_LE(fr.bytes.size(), max_batch_bytes);
    auto s = split_batch(fr.bytes);
    ASSERT_FALSE(s.failure) << s.failure->message;
    EXPECT_EQ(s.envelopes.size(), fr.envelopes);
    EXPECT_LE(s.envelopes.size(), max_batch_envelopes);
    total += s.envelopes.size();
    for (auto e : s.envelopes) {
      auto d = decode(e);
      ASSERT_TRUE(d);
      EXPECT_EQ(std::get<release>(d.message->body).job_id, "job-" + std::to_string(next++));
    }
  }
  EXPECT_EQ(total, 5000u);
}

TEST(batch, a_malformed_batch_is_refused_naming_what_and_where) {
  auto a = enc(decline{"job-1", "a-1", "", "spot", "busy"}, "m-1");
  auto b = enc(decline{"job-2", "a-2", "", "spot", "busy"}, "m-2");
  queue q = {{"p", a}, {"p", b}};
  auto good = frames_for(q, [](const std::string&) { return true; });
  ASSERT_EQ(good.size(), 1u);
  const std::string frame = good[0].bytes;
  ASSERT_FALSE(split_batch(frame).failure);

  auto refused = [](const std::string& bytes, const std::string& field, const std::string& says) {
    auto s = split_batch(bytes);
    ASSERT_TRUE(s.failure) << "accepted: " << field;
    EXPECT_EQ(s.failure->code, "malformed");
    EXPECT_EQ(s.failure->type, "batch");
    EXPECT_EQ(s.failure->field, field) << s.failure->message;
    EXPECT_NE(s.failure->message.find(says), std::string::npos) << s.failure->message;
    EXPECT_TRUE(s.envelopes.empty());
  };
  refused(a, "batch", "not a batch"); // an envelope (a map)
  refused("", "batch", "empty frame");
  refused(std::string("\x90", 1), "batch", "no envelopes");
  refused(std::string("\xdc\x00", 2), "batch", "length is cut off");
  refused(frame.substr(0, frame.size() - 3), "batch[1]", "cut off");
  refused(frame + "x", "batch", "1 bytes after its last envelope");
  // Three announced, two present.
  refused(std::string("\x93", 1) + frame.substr(1), "batch[2]", "3 envelopes announced, 2 present");
  // An element that is not a bin (a map: an envelope not wrapped).
  refused(std::string("\x91", 1) + a, "batch[0]", "is a bin");
  // More envelopes than a batch may hold, announced in an array32 header.
  refused(std::string("\xdd\x00\x01\x00\x00", 5), "batch", "at most 4096");
  // A batch inside a batch reads back as an element that is not an envelope.
  queue nested = {{"p", frame}, {"p", frame}};
  auto outer = frames_for(nested, [](const std::string&) { return true; });
  auto s = split_batch(outer[0].bytes);
  ASSERT_FALSE(s.failure);
  ASSERT_EQ(s.envelopes.size(), 2u);
  EXPECT_FALSE(decode(s.envelopes[0])) << "a batch is not an envelope";
}

TEST(batch, the_wire_capability_is_a_list_and_old_peers_say_nothing) {
  EXPECT_TRUE(reads_batches({"batch"}));
  EXPECT_TRUE(reads_batches({"zstd", "batch"}));
  EXPECT_FALSE(reads_batches({}));
  EXPECT_FALSE(reads_batches({"Batch"}));
  // A hello without the key (an older provider) decodes with no capabilities.
  provider_hello h;
  h.name = "old";
  auto d = decode(enc(h, "m-1"));
  ASSERT_TRUE(d);
  EXPECT_TRUE(std::get<provider_hello>(d.message->body).wire.empty());
  h.wire = {"batch"};
  d = decode(enc(h, "m-2"));
  ASSERT_TRUE(d);
  EXPECT_TRUE(reads_batches(std::get<provider_hello>(d.message->body).wire));
}

} // namespace
} // namespace tender

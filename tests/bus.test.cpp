// The message bus end to end: a real `tender agent` with `[bus]`, producers on
// real DEALER sockets over loopback, a PUB subscriber, and the journal file itself.

#include "actors/journal.hpp"
#include "tests/harness.hpp"
#include "tools/client.hpp"
#include "tools/producer.hpp"

#include <gtest/gtest.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

using namespace tender;
using namespace tender::test;
using namespace std::chrono_literals;

namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

/// A config with a bus; `extra` adds sections (providers, [intake]).
std::string bus_config(const temp_dir& t, const std::string& listen, const std::string& extra,
                       bool publish = false) {
  std::string text = "[bus]\nlisten = \"" + listen + "\"\n";
  if (publish)
    text += "publish = \"tcp://127.0.0.1:*\"\n";
  return t.file("agent.toml", text + extra);
}

/// Starts an agent and waits for its bus endpoint.
struct bus_agent {
  std::unique_ptr<agent> a;
  std::string bus;
  std::string events;
  bus_agent(const std::string& data_dir, const std::string& config) {
    std::remove((data_dir + "/bus-endpoint").c_str());
    a = std::make_unique<agent>(data_dir,
                                std::vector<std::string>{"--config", config, "--insecure"});
    bool up =
        eventually([&] { return !(bus = read_line(data_dir + "/bus-endpoint")).empty(); }, 30s);
    EXPECT_TRUE(up) << a->proc().err();
    events = read_line(data_dir + "/bus-publish-endpoint");
  }
};

job_spec spec_of(const std::string& name, std::vector<std::string> command = {"true"}) {
  job_spec s;
  s.name = name;
  s.user = "tester";
  s.command = std::move(command);
  s.walltime = 60 * sec_us;
  return s;
}

/// A raw DEALER: sends frames, reads acks.
struct raw_producer {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::dealer};
  explicit raw_producer(const std::string& ep) {
    sock.set(zmq::sockopt::linger, 0);
    sock.connect(ep);
  }
  void send_bytes(const std::string& bytes) {
    sock.send(zmq::buffer(bytes), zmq::send_flags::none);
  }
  void send(body b, const std::string& id) {
    send_bytes(encode(make_envelope(std::move(b), "test", wall_now(), id)));
  }
  /// The next decoded reply (fails the test after 30 s).
  std::optional<envelope> next() {
    zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 30s) <= 0) {
      ADD_FAILURE() << "no reply from the bus";
      return std::nullopt;
    }
    zmq::message_t m;
    (void)sock.recv(m);
    auto d = decode(std::string_view(static_cast<const char*>(m.data()), m.size()));
    EXPECT_TRUE(d) << d.failure.message;
    return d.message;
  }
  bus_ack next_ack() {
    auto e = next();
    if (!e)
      return {};
    auto* ack = std::get_if<bus_ack>(&e->body);
    EXPECT_TRUE(ack) << "expected bus_ack, got " << type_name(e->body);
    return ack ? *ack : bus_ack{};
  }
};

std::unique_ptr<journal> open_journal(const std::string& data_dir) {
  auto j = journal::open(data_dir + "/journal.db");
  if (auto* err = std::get_if<std::string>(&j)) {
    ADD_FAILURE() << *err;
    return nullptr;
  }
  return std::move(std::get<0>(j));
}

} // namespace

TEST(bus, acks_after_the_journal_commit_and_dedups_a_resend) {
  temp_dir t;
  // Accept only: jobs stay queued, so the journal holds exactly what the bus wrote.
  bus_agent n(t.path + "/data",
              bus_config(t, "tcp://127.0.0.1:*", "[intake]\nmax_active_jobs = 0\n"));
  raw_producer p(n.bus);
  p.send(bus_submit{"p1", 1, spec_of("one")}, "m1");
  auto ack = p.next_ack();
  EXPECT_EQ(ack.producer, "p1");
  EXPECT_EQ(ack.seq, 1u);
  EXPECT_EQ(ack.error.code, "") << ack.error.message;
  EXPECT_FALSE(ack.duplicate);
  ASSERT_FALSE(ack.job_id.empty());
  // The ack came after the commit: the job is in the journal file now.
  {
    auto j = open_journal(t.path + "/data");
    ASSERT_TRUE(j);
    auto rec = j->load_job(ack.job_id);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->client_key, "bus:p1:1");
    EXPECT_EQ(rec->spec.name, "one");
    EXPECT_EQ(rec->status.state, job_state::submitted);
  }
  // A resend (the producer never saw the ack) is the same job.
  p.send(bus_submit{"p1", 1, spec_of("one")}, "m1-again");
  auto again = p.next_ack();
  EXPECT_EQ(again.job_id, ack.job_id);
  EXPECT_TRUE(again.duplicate);
  // Another producer's seq 1 is another job.
  p.send(bus_submit{"p2", 1, spec_of("two")}, "m2");
  auto other = p.next_ack();
  EXPECT_FALSE(other.duplicate);
  EXPECT_NE(other.job_id, ack.job_id);
  auto j = open_journal(t.path + "/data");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->load_jobs().size(), 2u);
  // The node's status board has the queued jobs too.
  auto st = n.a->cli_json({"status", ack.job_id});
  EXPECT_EQ(st.value("state", ""), "submitted") << st.dump();
}

TEST(bus, a_malformed_message_gets_an_error_ack_and_the_bus_serves_others) {
  temp_dir t;
  bus_agent n(t.path + "/data",
              bus_config(t, "tcp://127.0.0.1:*", "[intake]\nmax_active_jobs = 0\n"));
  raw_producer bad(n.bus), good(n.bus);

  bad.send_bytes("\xc1 not msgpack");
  auto a1 = bad.next_ack();
  EXPECT_FALSE(a1.error.code.empty());
  EXPECT_TRUE(a1.job_id.empty());

  bad.send(bus_submit{"bad", 1, spec_of("empty", {})}, "b1");
  auto a2 = bad.next_ack();
  EXPECT_EQ(a2.error.code, "invalid");
  EXPECT_EQ(a2.error.type, "bus_submit");
  EXPECT_EQ(a2.error.field, "spec.command");
  EXPECT_EQ(a2.seq, 1u);

  bad.send(bus_submit{"", 2, spec_of("nameless")}, "b2");
  auto a3 = bad.next_ack();
  EXPECT_EQ(a3.error.field, "producer");

  bad.send(job_query{"j-1"}, "b3");
  auto a4 = bad.next_ack();
  EXPECT_EQ(a4.error.code, "unexpected");
  EXPECT_EQ(a4.error.type, "job_query");

  {
    // A seq of the wrong type: the decoder names the field.
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    auto env = encode(make_envelope(bus_submit{"bad", 3, spec_of("x")}, "test", wall_now(), "b4"));
    // Re-encode the body with seq as a string.
    msgpack::object_handle oh = msgpack::unpack(env.data(), env.size());
    std::map<std::string, msgpack::object> top;
    oh.get().convert(top);
    pk.pack_map(static_cast<std::uint32_t>(top.size()));
    for (auto& [k, v] : top) {
      pk.pack(k);
      if (k != "body") {
        pk.pack(v);
        continue;
      }
      std::map<std::string, msgpack::object> b;
      v.convert(b);
      pk.pack_map(static_cast<std::uint32_t>(b.size()));
      for (auto& [bk, bv] : b) {
        pk.pack(bk);
        if (bk == "seq")
          pk.pack(std::string("three"));
        else
          pk.pack(bv);
      }
    }
    bad.send_bytes(std::string(buf.data(), buf.size()));
    auto a5 = bad.next_ack();
    EXPECT_EQ(a5.error.code, "wrong_type") << a5.error.message;
    EXPECT_EQ(a5.error.type, "bus_submit");
    EXPECT_EQ(a5.error.field, "seq");
  }

  good.send(bus_submit{"good", 1, spec_of("fine")}, "g1");
  auto ok = good.next_ack();
  EXPECT_EQ(ok.error.code, "") << ok.error.message;
  EXPECT_FALSE(ok.job_id.empty());
  EXPECT_TRUE(n.a->proc().alive());
  auto j = open_journal(t.path + "/data");
  ASSERT_TRUE(j);
  auto jobs = j->load_jobs();
  ASSERT_EQ(jobs.size(), 1u); // nothing of the bad producer
  EXPECT_EQ(jobs[0].client_key, "bus:good:1");
}

TEST(bus, a_producer_with_a_window_of_zero_is_refused_when_made) {
  producer_options o;
  o.endpoint = "tcp://127.0.0.1:1";
  o.producer_id = "w0";
  o.window = 0;
  EXPECT_THROW(producer p(o), std::invalid_argument);
  o.window = 1;
  EXPECT_NO_THROW(producer p(o));
}

TEST(bus, a_subscriber_sees_a_job_through_to_done) {
  temp_dir t;
  auto cfg =
      bus_config(t, "tcp://127.0.0.1:*",
                 "[[providers]]\nname = \"local\"\nkind = \"local\"\ncpus = 1\n"
                 "memory = \"1GiB\"\nprice_per_core_hour = 0.01\nprice_per_gib_hour = 0.001\n",
                 true);
  bus_agent n(t.path + "/data", cfg);
  ASSERT_FALSE(n.events.empty());
  zmq::context_t ctx(1);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::subscribe, "job.");
  sub.connect(n.events);

  producer_options o;
  o.endpoint = n.bus;
  o.producer_id = "sub-test";
  producer p(o, &ctx);
  std::string job_id;
  std::vector<std::string> warm_ups;
  p.on_result([&](const producer_result& r) {
    job_id = r.job_id;
    warm_ups.push_back(r.job_id);
  });

  std::vector<job_event> seen;
  std::vector<std::string> topics;
  std::string raw;
  auto read_events = [&](std::chrono::milliseconds wait) {
    zmq::pollitem_t item{static_cast<void*>(sub), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) <= 0)
      return;
    std::vector<zmq::message_t> frames;
    while (zmq::recv_multipart(sub, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      if (frames.size() == 2) {
        raw += frames[1].to_string();
        auto d = decode(frames[1].to_string_view());
        if (d)
          if (auto* e = std::get_if<job_event>(&d.message->body)) {
            seen.push_back(*e);
            topics.push_back(frames[0].to_string());
          }
      }
      frames.clear();
    }
  };
  // PUB drops what it sends before the subscription arrives: warm up with a job
  // until its events come through, then follow a fresh job from its first event.
  ASSERT_TRUE(eventually(
      [&] {
        p.submit(spec_of("warm-up"));
        p.flush(10s);
        read_events(500ms);
        return !seen.empty();
      },
      60s));
  // The followed job must not find the provider busy with a warm-up job.
  for (auto& id : warm_ups)
    n.a->wait_final(id, 60s);
  read_events(0ms);
  seen.clear();
  topics.clear();
  job_id.clear();
  p.submit(spec_of("followed", {"sh", "-c", "exit 0"}));
  ASSERT_TRUE(p.flush(30s));
  ASSERT_FALSE(job_id.empty());
  std::vector<std::string> states;
  std::vector<std::string> state_topics;
  bool allocation = false;
  ASSERT_TRUE(eventually(
      [&] {
        read_events(200ms);
        states.clear();
        state_topics.clear();
        for (std::size_t i = 0; i < seen.size(); ++i) {
          const auto& e = seen[i];
          if (e.job_id != job_id)
            continue;
          if (e.kind == "transition") {
            states.push_back(to_string(e.to));
            state_topics.push_back(topics[i]);
          }
          if (e.kind == "allocation") {
            allocation = true;
            EXPECT_EQ(e.provider, "local");
            EXPECT_GT(e.price, 0);
            EXPECT_EQ(topics[i], "job.allocation");
          }
        }
        job_state last;
        return !states.empty() && parse_job_state(states.back(), last) && is_final(last);
      },
      90s))
      << ::testing::PrintToString(states);
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.front(), "submitted");
  EXPECT_EQ(states.back(), "done");
  EXPECT_NE(std::find(states.begin(), states.end(), "running"), states.end());
  EXPECT_EQ(state_topics.back(), "job.done");
  EXPECT_TRUE(allocation);
  // The same transitions as the journal, in its order; never the lease token.
  auto j = open_journal(t.path + "/data");
  ASSERT_TRUE(j);
  std::vector<std::string> journaled;
  for (auto& [from, to] : j->transitions(job_id))
    journaled.push_back(to_string(to));
  EXPECT_EQ(states, journaled);
  auto rec = j->load_job(job_id);
  ASSERT_TRUE(rec && rec->alloc);
  ASSERT_FALSE(rec->alloc->lease_token.empty());
  EXPECT_EQ(raw.find(rec->alloc->lease_token), std::string::npos);
}

TEST(bus, kill_9_midway_and_restart_keeps_every_submission_exactly_once) {
  temp_dir t;
  // `tender bench bus` runs the agent, producers, the SIGKILL and the restart; this
  // test then reads the journal file itself.
  auto r = run({"bench", "bus", "--producers", "3", "--jobs", "5000", "--kill-at", "0.5",
                "--window", "500", "--json", "--keep", t.path});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["exactly_once"], true);
  EXPECT_GT(out["acked_at_kill"].get<std::int64_t>(), 0);
  EXPECT_LT(out["acked_at_kill"].get<std::int64_t>(), 5000);
  EXPECT_GT(out["restarted_at_s"].get<double>(), 0.0);

  auto j = open_journal(t.path + "/data");
  ASSERT_TRUE(j);
  std::map<std::string, std::vector<std::uint64_t>> by_producer;
  std::size_t bus_jobs = 0;
  for (auto& rec : j->load_jobs()) {
    if (rec.client_key.rfind("bus:", 0) != 0)
      continue;
    ++bus_jobs;
    auto colon = rec.client_key.rfind(':');
    by_producer[rec.client_key.substr(4, colon - 4)].push_back(
        std::stoull(rec.client_key.substr(colon + 1)));
    EXPECT_EQ(j->transitions(rec.job_id).size(), 1u) << rec.job_id; // accepted once
  }
  EXPECT_EQ(bus_jobs, 5000u);
  ASSERT_EQ(by_producer.size(), 3u);
  for (auto& [producer, seqs] : by_producer) {
    std::sort(seqs.begin(), seqs.end());
    std::set<std::uint64_t> unique(seqs.begin(), seqs.end());
    EXPECT_EQ(unique.size(), seqs.size()) << producer << ": a (producer, seq) twice";
    EXPECT_EQ(seqs.front(), 1u);
    EXPECT_EQ(seqs.back(), seqs.size()) << producer << ": a gap";
  }
}

TEST(bus, queued_jobs_survive_a_restart_and_start_in_order_within_max_active_jobs) {
  temp_dir t;
  const std::string data = t.path + "/data";
  const std::string local = "[[providers]]\nname = \"local\"\nkind = \"local\"\ncpus = 2\n"
                            "memory = \"1GiB\"\nprice_per_core_hour = 0.01\n"
                            "price_per_gib_hour = 0.001\n";
  std::vector<std::string> ids;
  {
    // Accept only: the jobs are journaled as submitted and wait.
    bus_agent n(data,
                bus_config(t, "tcp://127.0.0.1:*", local + "[intake]\nmax_active_jobs = 0\n"));
    raw_producer p(n.bus);
    for (std::uint64_t seq = 1; seq <= 3; ++seq) {
      p.send(bus_submit{"queue", seq, spec_of("q" + std::to_string(seq), {"sh", "-c", "exit 0"})},
             "q" + std::to_string(seq));
      auto ack = p.next_ack();
      ASSERT_EQ(ack.error.code, "") << ack.error.message;
      ids.push_back(ack.job_id);
    }
    auto st = n.a->cli_json({"status", ids[0]});
    EXPECT_EQ(st.value("state", ""), "submitted") << st.dump();
    n.a->proc().signal(SIGKILL);
    n.a->proc().wait(10s);
  }
  // Restarted with room for one job at a time: the queue comes back from the journal.
  bus_agent n(data, bus_config(t, "tcp://127.0.0.1:*", local + "[intake]\nmax_active_jobs = 1\n"));
  for (auto& id : ids) {
    auto st = n.a->wait_final(id, 90s);
    EXPECT_EQ(st.value("state", ""), "done") << st.dump();
  }
  // One at a time, in submission order: each job left `submitted` only after the
  // previous one had finished (transition ids are the journal's commit order).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((data + "/journal.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  auto first_and_last = [&](const std::string& id) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db,
                       "SELECT min(CASE WHEN to_state <> 0 THEN id END), max(id) FROM transitions "
                       "WHERE job_id = ?",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    std::pair<std::int64_t, std::int64_t> r{-1, -1};
    if (sqlite3_step(st) == SQLITE_ROW)
      r = {sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1)};
    sqlite3_finalize(st);
    return r;
  };
  auto a = first_and_last(ids[0]), b = first_and_last(ids[1]), c = first_and_last(ids[2]);
  sqlite3_close(db);
  EXPECT_GT(b.first, a.second);
  EXPECT_GT(c.first, b.second);
}

TEST(bus, a_bus_port_in_use_is_one_clear_line_and_a_failure) {
  temp_dir t;
  bus_agent first(t.path + "/one", bus_config(t, "tcp://127.0.0.1:*", ""));
  auto cfg = t.file("taken.toml", "[bus]\nlisten = \"" + first.bus + "\"\n");
  auto r = run({"agent", "--config", cfg, "--data-dir", t.path + "/two", "--listen",
                "tcp://127.0.0.1:*", "--insecure", "--quiet"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bus: cannot listen on " + first.bus + ": Address already in use"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(first.a->proc().alive());
}

TEST(bus, a_producer_that_does_not_read_its_acks_is_held_back_and_nothing_is_lost) {
  temp_dir t;
  // Small high-water marks at both ends: the acks the producer does not read fill the
  // pipe and the kernel's buffers, the bus stops reading, and the producer's own sends
  // stop going out (backpressure) instead of anything being dropped. (A tiny SO_RCVBUF
  // would get there sooner but stalls TCP itself in zero-window probing.)
  bus_agent n(t.path + "/data",
              bus_config(t, "tcp://127.0.0.1:*", "hwm = 10\n[intake]\nmax_active_jobs = 0\n"));
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::dealer};
  sock.set(zmq::sockopt::linger, 0);
  sock.set(zmq::sockopt::sndhwm, 10);
  sock.set(zmq::sockopt::rcvhwm, 10);
  sock.connect(n.bus);
  auto spec = spec_of("held-back");
  const std::uint64_t most = 300000; // far more acks than the kernel's buffers hold
  std::uint64_t sent = 0;
  bool held_back = false;
  while (sent < most) {
    auto bytes = encode(make_envelope(bus_submit{"slow", sent + 1, spec}, "test", wall_now(),
                                      "m" + std::to_string(sent + 1)));
    if (sock.send(zmq::buffer(bytes), zmq::send_flags::dontwait)) {
      ++sent;
      continue;
    }
    zmq::pollitem_t out{static_cast<void*>(sock), 0, ZMQ_POLLOUT, 0};
    if (zmq::poll(&out, 1, std::chrono::milliseconds(5000)) == 0) {
      held_back = true; // nothing can go out while the acks are not read
      break;
    }
  }
  EXPECT_TRUE(held_back) << "all " << sent << " submissions went out without backpressure";
  ASSERT_GT(sent, 0u);
  // Reading the acks now: every submission sent is acknowledged, once, in the journal.
  std::vector<int> acks(sent + 1, 0);
  std::uint64_t got = 0, errors = 0;
  while (got < sent) {
    zmq::pollitem_t in{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&in, 1, std::chrono::milliseconds(30000)) == 0)
      break;
    zmq::message_t m;
    while (sock.recv(m, zmq::recv_flags::dontwait)) {
      auto d = decode(std::string_view(static_cast<const char*>(m.data()), m.size()));
      auto* ack = d ? std::get_if<bus_ack>(&d.message->body) : nullptr;
      if (!ack || ack->seq == 0 || ack->seq > sent || !ack->error.code.empty()) {
        ++errors;
        continue;
      }
      if (acks[ack->seq]++ == 0)
        ++got;
    }
  }
  EXPECT_EQ(got, sent) << "acks missing";
  EXPECT_EQ(errors, 0u);
  sqlite3* db = nullptr;
  ASSERT_EQ(
      sqlite3_open_v2((t.path + "/data/journal.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
      SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT COUNT(*), COUNT(DISTINCT client_key) FROM jobs", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(static_cast<std::uint64_t>(sqlite3_column_int64(st, 0)), sent);
  EXPECT_EQ(static_cast<std::uint64_t>(sqlite3_column_int64(st, 1)), sent);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

#include "actors/journal.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

namespace tender {
namespace {

namespace fs = std::filesystem;

/// Whole-value comparison for wire structs: equal MessagePack bytes.
template <class T> std::string bytes(const T& value) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, value);
  return std::string(buf.data(), buf.size());
}

std::unique_ptr<journal> open_ok(const std::string& path, const journal_options& o = {}) {
  auto opened = journal::open(path, o);
  if (auto* err = std::get_if<std::string>(&opened)) {
    ADD_FAILURE() << *err;
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<journal>>(opened));
}

std::string open_error(const std::string& path) {
  auto opened = journal::open(path);
  if (auto* err = std::get_if<std::string>(&opened))
    return *err;
  return "(opened)";
}

/// Runs SQL on a file with a plain connection, the way an older tender would have.
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* msg = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
  std::string err = msg ? msg : "";
  sqlite3_free(msg);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << err;
}

std::string raw_text(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW)
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

job_spec sample_spec(const std::string& name) {
  job_spec s;
  s.name = name;
  s.user = "ada";
  s.command = {"python3", "train.py", "--epochs", "3"};
  s.workdir = "/srv/work";
  s.env = {{"OMP_NUM_THREADS", "4"}, {"SEED", "7"}};
  s.walltime = 1800 * sec_us;
  s.deadline = 1'790'000'000 * sec_us;
  s.max_cost = 2 * usd + 250'000;
  s.priority = 3;
  s.software = {"python3", "cuda12"};
  s.hints = {4000, 8ll << 30, 1, "a100", 40ll << 30};
  s.profile_command = {"python3", "train.py", "--epochs", "0"};
  s.profile_budget = 30 * sec_us;
  s.profile_skip = false;
  s.inputs = {"data/train.csv"};
  return s;
}

resource_profile sample_profile(const std::string& job_id) {
  resource_profile p;
  p.job_id = job_id;
  p.cpu_mean = 3.5;
  p.cpu_stddev = 0.25;
  p.cpu_lo = 3.0;
  p.cpu_hi = 4.0;
  p.mem_mean = 6ll << 30;
  p.mem_stddev = 1ll << 28;
  p.mem_peak = 7ll << 30;
  p.mem_lo = 5ll << 30;
  p.mem_hi = 7ll << 30;
  p.gpu_type = "a100";
  p.gpus = 1;
  p.net_bandwidth_bps = 1'000'000;
  p.io_read = 1 << 20;
  p.io_write = 1 << 10;
  p.net_bytes = 4096;
  p.software_stack = {"python3", "torch"};
  p.runtime = 1500 * sec_us;
  p.runtime_lo = 1200 * sec_us;
  p.runtime_hi = 1900 * sec_us;
  p.source = "sandbox+hints";
  p.model_version = "gbt-3";
  p.partial = true;
  p.profile_time = 12 * sec_us;
  p.findings = {{"gpu", "CUDA runtime 12", "libcudart.so.12"}};
  return p;
}

offer sample_offer(const std::string& id, const std::string& job_id, std::int32_t round,
                   const std::string& provider, micros price) {
  offer o;
  o.offer_id = id;
  o.job_id = job_id;
  o.auction_id = "auc-" + job_id;
  o.round = round;
  o.provider = provider;
  o.granted = {4000, 8ll << 30, 1, "a100", 40ll << 30};
  o.price = price;
  o.rate_per_hour = price * 2;
  o.earliest_start = 1'000 + round;
  o.terms = {0.99, 0.01, 200 * ms_us};
  o.valid_until = 5'000;
  o.instance_type = "p4d";
  o.spot = true;
  return o;
}

/// Job j1's iterated negotiation auc-j1, recorded at 40.
negotiation_record sample_negotiation(std::int32_t rounds, const std::string& outcome) {
  negotiation_record n;
  n.job_id = "j1";
  n.auction_id = "auc-j1";
  n.protocol = "iterated";
  n.rounds = rounds;
  n.outcome = outcome;
  n.at = 40;
  return n;
}

allocation sample_allocation(const std::string& id, const std::string& job_id,
                             const std::string& offer_id) {
  allocation a;
  a.allocation_id = id;
  a.job_id = job_id;
  a.offer_id = offer_id;
  a.provider = "market";
  a.granted = {4000, 8ll << 30, 1, "a100", 40ll << 30};
  a.price = 1'750'000;
  a.rate_per_hour = 3'500'000;
  a.terms = {0.99, 0.01, 200 * ms_us};
  a.lease_token = "tok-" + id + "-5f1c9e0b7a3d";
  a.lease_expires = 9'000;
  a.start_at = 2'000;
  a.instance_type = "p4d";
  return a;
}

class journal_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tender-journal-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "journal.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string path_;
};

TEST_F(journal_test, fully_populated_job_round_trips) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j);
  const job_spec spec = sample_spec("train");
  ASSERT_TRUE(j->insert_job("j1", "key-1", spec, 100));
  ASSERT_TRUE(j->transition("j1", job_state::submitted, job_state::profiling, "", 110));
  ASSERT_TRUE(j->save_profile("j1", sample_profile("j1")));
  ASSERT_TRUE(j->transition("j1", job_state::profiling, job_state::negotiating, "", 120));
  const offer won = sample_offer("o2", "j1", 1, "market", 1'750'000);
  ASSERT_TRUE(
      j->save_offer("j1", sample_offer("o1", "j1", 1, "local", 2'000'000), 2.1e6, "lost", 130));
  ASSERT_TRUE(j->save_offer("j1", won, 1.8e6, "won", 131));
  award a;
  a.offer_id = "o2";
  a.job_id = "j1";
  a.auction_id = "auc-j1";
  a.provider = "market";
  a.hold_ttl = 30 * sec_us;
  ASSERT_TRUE(j->save_award(a, 140));
  const allocation alloc = sample_allocation("a1", "j1", "o2");
  ASSERT_TRUE(j->save_allocation(alloc, 150));
  ASSERT_TRUE(j->transition("j1", job_state::negotiating, job_state::committed, "", 150));
  ASSERT_TRUE(j->transition("j1", job_state::committed, job_state::running, "", 160));
  ASSERT_TRUE(j->transition("j1", job_state::running, job_state::done, "exit 0", 900));

  job_status status;
  status.job_id = "j1";
  status.provider = "market";
  status.allocation_id = "a1";
  status.price = 1'750'000;
  status.allocated = alloc.granted;
  status.started_at = 160;
  status.finished_at = 900;
  status.exit_code = 0;
  status.has_profile = true;
  status.profile = sample_profile("j1");
  status.cpu_used_mean = 3.25;
  status.mem_used_peak = 6ll << 30;
  status.io_read = 12345;
  status.io_write = 678;
  ASSERT_TRUE(j->save_status(status));

  job_status expected = status;
  expected.name = "train";
  expected.user = "ada";
  expected.state = job_state::done;
  expected.reason = "exit 0";
  expected.submitted_at = 100;
  expected.offers = {{"o1", "local", 1, 2'000'000, 1'001, 2.1e6, "lost"},
                     {"o2", "market", 1, 1'750'000, 1'001, 1.8e6, "won"}};

  auto r = j->load_job("j1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->job_id, "j1");
  EXPECT_EQ(r->client_key, "key-1");
  EXPECT_EQ(bytes(r->spec), bytes(spec));
  EXPECT_EQ(bytes(r->status), bytes(expected));
  ASSERT_TRUE(r->alloc);
  EXPECT_EQ(bytes(*r->alloc), bytes(alloc));
  EXPECT_EQ(j->last_error(), "");
  EXPECT_FALSE(j->load_job("nope"));
}

TEST_F(journal_test, transitions_keep_their_order) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
  ASSERT_TRUE(j->insert_job("j2", "", sample_spec("b"), 2));
  using s = job_state;
  const std::vector<std::pair<s, s>> path = {
      {s::submitted, s::profiling}, {s::profiling, s::negotiating}, {s::negotiating, s::committed},
      {s::committed, s::running},   {s::running, s::rescaling},     {s::rescaling, s::running},
      {s::running, s::failed}};
  usec at = 10;
  for (auto [from, to] : path) {
    ASSERT_TRUE(j->transition("j1", from, to, "r", at++));
    // Interleave another job: each keeps its own order.
    ASSERT_TRUE(j->transition("j2", s::submitted, s::submitted, "", at++));
  }
  EXPECT_EQ(j->transitions("j1"), path);
  EXPECT_EQ(j->transitions("j2").size(), path.size());
  EXPECT_EQ(j->load_job("j1")->status.state, s::failed);
  EXPECT_TRUE(j->transitions("none").empty());
}

TEST_F(journal_test, transition_is_one_transaction) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
  // Make the log insert fail after the state update has already run.
  raw_exec(path_, "CREATE TRIGGER refuse BEFORE INSERT ON transitions WHEN NEW.reason = 'boom' "
                  "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
  EXPECT_FALSE(j->transition("j1", job_state::submitted, job_state::failed, "boom", 2));
  EXPECT_NE(j->last_error().find("disk on fire"), std::string::npos) << j->last_error();
  EXPECT_EQ(j->load_job("j1")->status.state, job_state::submitted);

  ASSERT_TRUE(j->begin_batch()); // the same inside a batch (a savepoint)
  EXPECT_FALSE(j->transition("j1", job_state::submitted, job_state::failed, "boom", 3));
  EXPECT_EQ(j->load_job("j1")->status.state, job_state::submitted);
  ASSERT_TRUE(j->transition("j1", job_state::submitted, job_state::profiling, "", 4));
  ASSERT_TRUE(j->commit_batch());
  EXPECT_EQ(j->load_job("j1")->status.state, job_state::profiling);
  EXPECT_EQ(j->transitions("j1"), (std::vector<std::pair<job_state, job_state>>{
                                      {job_state::submitted, job_state::profiling}}));
}

TEST_F(journal_test, offers_keep_verdicts_and_round_order) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
  ASSERT_TRUE(j->save_offer("j1", sample_offer("o3", "j1", 2, "c", 900), 950.0, "pending", 30));
  ASSERT_TRUE(j->save_offer("j1", sample_offer("o1", "j1", 1, "a", 1000), 1100.0, "pending", 10));
  ASSERT_TRUE(j->save_offer("j1", sample_offer("o2", "j1", 1, "b", 1200), 1300.5,
                            "rejected: over budget", 20));
  // The same offer arriving twice is one offer.
  ASSERT_TRUE(j->save_offer("j1", sample_offer("o1", "j1", 1, "a", 1000), 1100.0, "pending", 10));
  ASSERT_TRUE(j->update_offer_verdict("o1", "lost"));
  ASSERT_TRUE(j->update_offer_verdict("o3", "won"));
  EXPECT_FALSE(j->update_offer_verdict("o9", "won"));
  EXPECT_NE(j->last_error().find("no offer o9"), std::string::npos) << j->last_error();

  const std::vector<offer_summary> expected = {
      {"o1", "a", 1, 1000, 1001, 1100.0, "lost"},
      {"o2", "b", 1, 1200, 1001, 1300.5, "rejected: over budget"},
      {"o3", "c", 2, 900, 1002, 950.0, "won"}};
  EXPECT_EQ(bytes(j->load_job("j1")->status.offers), bytes(expected));
}

TEST_F(journal_test, score_breakdowns_and_negotiations_survive_a_reopen) {
  const score_terms won{true, 1'050'000.5, 1'400'000, 0.97, 0.05, 0.0595, 1'050'000.5,
                        31'500.25, 62'475.0, 1'143'975.75, "E[cost] $1.050001"};
  const score_terms lost{true, 1'050'000.5, 1'400'000, 0.97, 0.2, 0.208, 1'050'000.5,
                         31'500.25, 218'400.0, 1'299'900.75, "E[cost] $1.050001"};
  negotiation_record n = sample_negotiation(2, "won by a at $1.000000");
  n.declines = {{"auc-j1", 1, "gpu", "no GPU of type a100"}};
  n.rejected = {{"late", 2}, {"duplicate", 1}};
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
    ASSERT_TRUE(j->save_offer("j1", sample_offer("o1", "j1", 1, "a", 1'000'000), won, "won", 10));
    ASSERT_TRUE(j->save_offer("j1", sample_offer("o2", "j1", 1, "b", 1'000'000), lost, "lost", 11));
    // A duplicate (or a stranger reusing the id) cannot overwrite the real offer.
    ASSERT_TRUE(j->save_rejected_offer("j1", sample_offer("o1", "j1", 1, "a", 1), "rejected: duplicate offer o1", 12));
    ASSERT_TRUE(j->save_rejected_offer("j1", sample_offer("o3", "j1", 2, "c", 5), "rejected: late: arrived after the round closed", 13));
    ASSERT_TRUE(j->save_negotiation(n));
    n.rounds = 3; // a later save of the same auction replaces it
    ASSERT_TRUE(j->save_negotiation(n));
  }
  auto j = open_ok(path_);
  auto xs = j->offer_explanations("j1");
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs[0].offer_id, "o1");
  EXPECT_EQ(xs[0].verdict, "won");
  EXPECT_EQ(xs[0].price, 1'000'000);
  EXPECT_EQ(xs[0].rate_per_hour, 2'000'000);
  EXPECT_EQ(xs[0].instance_type, "p4d");
  EXPECT_EQ(bytes(xs[0].score), bytes(won));
  EXPECT_EQ(bytes(xs[1].score), bytes(lost));
  EXPECT_EQ(xs[1].verdict, "lost");
  EXPECT_EQ(xs[2].offer_id, "o3");
  EXPECT_FALSE(xs[2].score.scored);
  EXPECT_EQ(xs[2].verdict, "rejected: late: arrived after the round closed");
  auto ns = j->negotiations("j1");
  ASSERT_EQ(ns.size(), 1u);
  EXPECT_EQ(ns[0].rounds, 3);
  EXPECT_EQ(bytes(ns[0].declines), bytes(n.declines));
  EXPECT_EQ(ns[0].rejected, n.rejected);
  EXPECT_EQ(ns[0].outcome, n.outcome);
  EXPECT_TRUE(j->negotiations("nope").empty());
}

TEST_F(journal_test, a_feasible_offer_recorded_without_its_account_reads_back_with_it) {
  // The scorer leaves a feasible offer's note empty; `tender explain` shows the account.
  const score_terms quiet{true, 1'250'000.0, 1'400'000, 0.97, 0.05, 0.0595, 1'250'000.0,
                          31'500.25, 62'475.0, 1'343'975.25, ""};
  const score_terms infeasible{true, 1'250'000.0, 9'400'000, 0.97, 0.05, 0.0595, 1'250'000.0,
                               31'500.25, 62'475.0, 1'343'975.25, "over budget: $9.4"};
  const negotiation_record n = sample_negotiation(1, "won by a");
  const offer o1 = sample_offer("o1", "j1", 1, "a", 1'000'000);
  const offer o2 = sample_offer("o2", "j1", 1, "b", 2'000'000);
  const offer o3 = sample_offer("o3", "j1", 1, "c", 3'000'000);
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
  std::vector<journal::offer_outcome> outcome = {{&o1, quiet, "won"},
                                                 {&o2, infeasible, "infeasible: over budget"},
                                                 {&o3, score_terms{}, "rejected: late"}};
  ASSERT_TRUE(j->save_outcome(outcome, n));
  auto xs = j->offer_explanations("j1");
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs[0].score.note, "E[cost] $1.250000, P(on time) 0.970, P(breach) 0.050");
  EXPECT_EQ(xs[1].score.note, "over budget: $9.4");
  EXPECT_EQ(xs[2].score.note, ""); // never scored: no account
}

TEST_F(journal_test, a_negotiation_is_one_row_read_back_like_offers_saved_one_by_one) {
  const score_terms won{true, 1'050'000.5, 1'400'000, 0.97, 0.05, 0.0595, 1'050'000.5,
                        31'500.25, 62'475.0, 1'143'975.75, "E[cost] $1.050001"};
  const score_terms lost{true, 2'050'000.5, 2'400'000, 0.9, 0.2, 0.208, 2'050'000.5,
                         31'500.25, 218'400.0, 2'299'900.75, "E[cost] $2.050001"};
  negotiation_record n = sample_negotiation(2, "won by a");
  n.rejected = {{"duplicate", 1}};
  const offer o1 = sample_offer("o1", "j1", 1, "a", 1'000'000);
  const offer o2 = sample_offer("o2", "j1", 2, "b", 2'000'000);
  offer o3 = sample_offer("o3", "j1", 1, "c", 3'000'000);
  o3.auction_id = "auc-j1-r1"; // a round's own id is kept
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
    // A duplicate of o1 was rejected first; the negotiation has the last word on o1.
    ASSERT_TRUE(j->save_rejected_offer("j1", sample_offer("o1", "j1", 1, "a", 1),
                                       "rejected: duplicate offer o1", 12));
    ASSERT_TRUE(j->save_rejected_offer("j1", sample_offer("o4", "j1", 2, "d", 5),
                                       "rejected: late: arrived after the round closed", 41));
    std::vector<journal::offer_outcome> outcome = {
        {&o2, lost, "lost"}, {&o1, won, "won"}, {&o3, lost, "lost: costlier"}};
    ASSERT_TRUE(j->save_outcome(outcome, n));
    // Saving the negotiation again replaces its offers instead of adding to them.
    ASSERT_TRUE(j->save_outcome(outcome, n));
  }
  // One negotiation row; the offers table holds only the rejected offers.
  EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM negotiations"), "1");
  EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM offers"), "2");
  auto j = open_ok(path_);
  auto xs = j->offer_explanations("j1");
  ASSERT_EQ(xs.size(), 4u);
  // By round, then when recorded.
  EXPECT_EQ(xs[0].offer_id, "o1");
  EXPECT_EQ(xs[0].auction_id, "auc-j1");
  EXPECT_EQ(xs[0].verdict, "won");
  EXPECT_EQ(xs[0].price, 1'000'000);
  EXPECT_EQ(xs[0].rate_per_hour, 2'000'000);
  EXPECT_EQ(xs[0].earliest_start, 1'001);
  EXPECT_EQ(bytes(xs[0].terms), bytes(o1.terms));
  EXPECT_EQ(xs[0].instance_type, "p4d");
  EXPECT_EQ(bytes(xs[0].score), bytes(won));
  EXPECT_EQ(xs[1].offer_id, "o3");
  EXPECT_EQ(xs[1].auction_id, "auc-j1-r1");
  EXPECT_EQ(xs[1].provider, "c");
  EXPECT_EQ(xs[1].verdict, "lost: costlier");
  EXPECT_EQ(xs[2].offer_id, "o2");
  EXPECT_EQ(xs[2].round, 2);
  EXPECT_EQ(bytes(xs[2].score), bytes(lost));
  EXPECT_EQ(xs[3].offer_id, "o4");
  EXPECT_FALSE(xs[3].score.scored);
  EXPECT_EQ(xs[3].verdict, "rejected: late: arrived after the round closed");

  const std::vector<offer_summary> summary = {
      {"o1", "a", 1, 1'000'000, 1'001, won.risk_adjusted, "won"},
      {"o3", "c", 1, 3'000'000, 1'001, lost.risk_adjusted, "lost: costlier"},
      {"o2", "b", 2, 2'000'000, 1'002, lost.risk_adjusted, "lost"},
      {"o4", "d", 2, 5, 1'002, 0.0, "rejected: late: arrived after the round closed"}};
  EXPECT_EQ(bytes(j->load_job("j1")->status.offers), bytes(summary));

  auto ns = j->negotiations("j1");
  ASSERT_EQ(ns.size(), 1u);
  EXPECT_EQ(ns[0].rounds, 2);
  EXPECT_EQ(ns[0].rejected, n.rejected);
  EXPECT_EQ(ns[0].outcome, n.outcome);

  // The console counts what was received: the rejected duplicate and the negotiation's o1.
  auto t = j->totals();
  EXPECT_EQ(t.negotiations, 1);
  EXPECT_EQ(t.offers_by_verdict,
            (std::map<std::string, std::int64_t>{{"won", 1}, {"lost", 2}, {"rejected", 2}}));
}

TEST_F(journal_test, a_negotiation_whose_offers_do_not_decode_is_named_and_the_rest_still_read) {
  negotiation_record n;
  n.job_id = "j1";
  n.auction_id = "auc-j1";
  n.at = 40;
  const offer o1 = sample_offer("o1", "j1", 1, "a", 1'000);
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
    ASSERT_TRUE(j->save_rejected_offer("j1", sample_offer("o9", "j1", 1, "z", 5),
                                       "rejected: foreign", 12));
    ASSERT_TRUE(j->save_outcome({{&o1, {}, "won"}}, n));
  }
  // A torn or hand-edited row: 0xc1 is never valid MessagePack.
  raw_exec(path_, "UPDATE negotiations SET offers = x'c1', verdicts = x'93c1' "
                  "WHERE auction_id = 'auc-j1'");
  auto j = open_ok(path_);
  std::vector<std::string> errors;
  j->set_error_handler([&](const std::string& e) { errors.push_back(e); });
  auto xs = j->offer_explanations("j1");
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].offer_id, "o9");
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("negotiation auc-j1 of j1"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find(path_), std::string::npos) << errors[0];
  auto job = j->load_job("j1");
  ASSERT_TRUE(job);
  ASSERT_EQ(job->status.offers.size(), 1u);
  errors.clear();
  auto t = j->totals();
  EXPECT_EQ(t.offers_by_verdict, (std::map<std::string, std::int64_t>{{"rejected", 1}}));
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("negotiation auc-j1"), std::string::npos) << errors[0];
  // The journal keeps serving: a new negotiation is written and read.
  n.auction_id = "auc-j1-b";
  n.at = 50;
  const offer o2 = sample_offer("o2", "j1", 2, "b", 2'000);
  ASSERT_TRUE(j->save_outcome({{&o2, {}, "won"}}, n));
  EXPECT_EQ(j->offer_explanations("j1").size(), 2u);
}

/// What `offer_explanations` should give for an offer saved in a negotiation's row.
offer_explanation explained(const offer& o, const score_terms& t, const std::string& verdict) {
  offer_explanation x;
  x.offer_id = o.offer_id;
  x.auction_id = o.auction_id;
  x.round = o.round;
  x.provider = o.provider;
  x.price = o.price;
  x.rate_per_hour = o.rate_per_hour;
  x.earliest_start = o.earliest_start;
  x.terms = o.terms;
  x.instance_type = o.instance_type;
  x.score = t;
  fill_account(x.score);
  x.verdict = verdict;
  return x;
}

TEST_F(journal_test, repeated_offers_and_provider_prefixed_ids_pack_small_and_read_back_exactly) {
  // A bench-like negotiation: 8 providers, 2 rounds, ids as the providers make them
  // ("<job>/<provider>/r<round>/<nonce>"), most providers offering the same again in round
  // 2; the others change exactly one field each, which a repeat would lose.
  negotiation_record n = sample_negotiation(2, "won by p3");
  n.at = 1'796'440'878'204'327;
  const score_terms base{true, 38'796.23393288431, 71'000, 0.9999999999999767, 0.05,
                         0.05095000000000005, 38'796.23393288431, 9.045219158016709e-10,
                         1'976.6681188804575, 40'772.90205176567, ""};
  std::vector<offer> offers;
  std::vector<score_terms> terms;
  std::vector<std::string> verdicts;
  for (int round = 1; round <= 2; ++round)
    for (int p = 0; p < 8; ++p) {
      const std::string provider = "p" + std::to_string(p);
      offer o = sample_offer("j1/" + provider + "/r" + std::to_string(round) + "/5f7aec-" +
                                 std::to_string(6 + 19 * round),
                             "j1", round, provider, 35'500 + p);
      o.earliest_start = n.at + 5'000'000 + p - 1000 * round;
      score_terms t = base;
      t.cost_term += p;
      std::string verdict = round == 1 ? "superseded by a later offer" : "lost";
      if (round == 2) {
        switch (p) {
        case 1: o.price += 1; break;
        case 2: t.p_deadline = std::nextafter(t.p_deadline, 0.0); break;
        case 3: verdict = "won"; break; // a repeat with its own verdict
        case 4: t.note = "over budget"; break;
        case 5: o.instance_type = "p5"; break;
        case 6: o.auction_id = "auc-j1-r2"; break; // a round's own id
        case 7: o.offer_id = "foreign-id"; break;  // not the providers' prefix
        default: break;
        }
      }
      if (round == 1 && p == 7) {
        o.earliest_start = n.at - 77; // before the negotiation
        verdict = "rejected: over the round's deadline";
      }
      offers.push_back(o);
      terms.push_back(t);
      verdicts.push_back(verdict);
    }
  offers[0].offer_id = "j1/p0/r2/x"; // the prefix of another round is no prefix
  std::vector<journal::offer_outcome> outcome;
  for (std::size_t i = 0; i < offers.size(); ++i)
    outcome.push_back({&offers[i], terms[i], verdicts[i]});
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
    ASSERT_TRUE(j->save_outcome(outcome, n));
  }
  auto j = open_ok(path_);
  auto xs = j->offer_explanations("j1");
  ASSERT_EQ(xs.size(), offers.size());
  // By round, then as saved (one `at`).
  for (std::size_t i = 0; i < offers.size(); ++i)
    EXPECT_EQ(bytes(xs[i]), bytes(explained(offers[i], terms[i], verdicts[i]))) << i;

  // Small: the same negotiation with every provider offering the same again in round 2
  // (as in the bench) takes under half the first format's ~185 bytes an offer.
  std::vector<offer> again(offers.begin(), offers.begin() + 8);
  for (auto& o : again) {
    o.job_id = "j2";
    o.offer_id = "j2/" + o.provider + "/r1/5f7aec-25";
  }
  for (int p = 0; p < 8; ++p) {
    offer o = again[static_cast<std::size_t>(p)];
    o.round = 2;
    o.offer_id = "j2/" + o.provider + "/r2/5f7aec-44";
    o.earliest_start += 700;
    again.push_back(o);
  }
  outcome.clear();
  for (std::size_t i = 0; i < again.size(); ++i)
    outcome.push_back({&again[i], terms[i % 8], verdicts[i]});
  n.job_id = "j2";
  n.auction_id = "auc-j2";
  ASSERT_TRUE(j->insert_job("j2", "", sample_spec("b"), 1));
  ASSERT_TRUE(j->save_outcome(outcome, n));
  xs = j->offer_explanations("j2");
  ASSERT_EQ(xs.size(), again.size());
  for (std::size_t i = 0; i < again.size(); ++i)
    EXPECT_EQ(bytes(xs[i]), bytes(explained(again[i], terms[i % 8], verdicts[i]))) << i;
  j.reset();
  const auto size =
      std::stoul(raw_text(path_, "SELECT length(offers) FROM negotiations WHERE job_id = 'j2'"));
  EXPECT_LT(size, 16u * 185u / 2u) << size;
}

TEST_F(journal_test, a_negotiation_in_the_first_offers_format_still_reads) {
  // As tender wrote before the compact format: one 24-field array an offer.
  negotiation_record n = sample_negotiation(1, "won by a");
  const offer o1 = sample_offer("o1", "j1", 1, "a", 1'000'000);
  const score_terms t{true, 1'250'000.5, 1'400'000, 0.97, 0.05, 0.0595, 1'250'000.5,
                      31'500.25, 62'475.0, 1'343'975.75, "E[cost] $1.250001"};
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
    ASSERT_TRUE(j->save_outcome({}, n));
  }
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(2);
  auto pack_v1 = [&](const offer& o, const std::string& auction, const std::string& verdict,
                     std::int64_t at) {
    pk.pack_array(24);
    pk.pack(o.offer_id), pk.pack(auction), pk.pack(o.round), pk.pack(o.provider);
    pk.pack(o.price), pk.pack(o.rate_per_hour), pk.pack(o.earliest_start);
    pk.pack(o.terms.availability), pk.pack(o.terms.preemption_probability);
    pk.pack(o.terms.latency), pk.pack(o.instance_type);
    pk.pack(t.scored), pk.pack(t.expected_cost), pk.pack(t.worst_cost), pk.pack(t.p_deadline);
    pk.pack(t.breach_probability), pk.pack(t.risk), pk.pack(t.cost_term);
    pk.pack(t.deadline_term), pk.pack(t.risk_term), pk.pack(t.risk_adjusted), pk.pack(t.note);
    pk.pack(verdict), pk.pack(at);
  };
  pack_v1(o1, "", "won", 40);
  offer o2 = sample_offer("o2", "j1", 1, "b", 2'000'000);
  o2.auction_id = "auc-j1-r1";
  pack_v1(o2, o2.auction_id, "lost", 40);
  std::string hex;
  for (unsigned char c : std::string(buf.data(), buf.size())) {
    static const char* d = "0123456789abcdef";
    hex += d[c >> 4];
    hex += d[c & 15];
  }
  raw_exec(path_, "UPDATE negotiations SET offers = x'" + hex + "'");
  auto j = open_ok(path_);
  auto xs = j->offer_explanations("j1");
  ASSERT_EQ(xs.size(), 2u);
  EXPECT_EQ(bytes(xs[0]), bytes(explained(o1, t, "won")));
  EXPECT_EQ(bytes(xs[1]), bytes(explained(o2, t, "lost")));
}

TEST_F(journal_test, a_compact_negotiation_that_does_not_decode_is_named) {
  const negotiation_record n = sample_negotiation(1, "won by a");
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
    ASSERT_TRUE(j->save_outcome({}, n));
  }
  // A repeat of an offer not before it; a common verdict that does not exist; a format
  // from the future; offers that are not an array; an offer of two fields.
  for (const char* blob :
       {"92 02 91 95 a178 01 00 00 00",
        "92 02 91 dc0017 a178 a0 01 a170 00 00 00 00 00 00 a0 c2 00 00 00 00 00 00 00 00 00 a0 09",
        "92 03 90", "92 02 05", "92 02 91 92 a178 01"}) {
    std::string b = blob;
    b.erase(std::remove(b.begin(), b.end(), ' '), b.end());
    raw_exec(path_, "UPDATE negotiations SET offers = x'" + b + "'");
    auto j = open_ok(path_);
    std::vector<std::string> errors;
    j->set_error_handler([&](const std::string& e) { errors.push_back(e); });
    EXPECT_TRUE(j->offer_explanations("j1").empty()) << blob;
    ASSERT_FALSE(errors.empty()) << blob;
    EXPECT_NE(errors[0].find("negotiation auc-j1 of j1: cannot decode its offers"),
              std::string::npos)
        << errors[0];
  }
}

TEST_F(journal_test, a_version_4_database_keeps_its_offer_rows_and_gains_negotiation_offers) {
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
    ASSERT_TRUE(j->save_offer("j1", sample_offer("o1", "j1", 1, "a", 1000), 1100.0, "lost", 10));
    ASSERT_TRUE(j->save_offer("j1", sample_offer("o2", "j1", 1, "b", 900), 950.0, "won", 11));
  }
  // Back to version 4, as tender wrote every offer before this version.
  raw_exec(path_, "ALTER TABLE negotiations DROP COLUMN offers; "
                  "ALTER TABLE negotiations DROP COLUMN verdicts; PRAGMA user_version = 4;");
  auto j = open_ok(path_);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->schema_version(), journal::current_schema_version);
  auto xs = j->offer_explanations("j1");
  ASSERT_EQ(xs.size(), 2u);
  EXPECT_EQ(xs[0].verdict, "lost");
  EXPECT_EQ(xs[1].verdict, "won");
  negotiation_record n;
  n.job_id = "j1";
  n.auction_id = "auc-j1-again";
  n.at = 60;
  const offer o3 = sample_offer("o3", "j1", 1, "c", 800);
  ASSERT_TRUE(j->save_outcome({{&o3, {}, "won"}}, n));
  xs = j->offer_explanations("j1");
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs[2].offer_id, "o3");
  EXPECT_EQ(j->totals().offers_by_verdict,
            (std::map<std::string, std::int64_t>{{"won", 2}, {"lost", 1}}));
}

TEST_F(journal_test, scaling_decisions_survive_a_reopen_in_order) {
  scaling_decision grown;
  grown.job_id = "j1";
  grown.at = 50;
  grown.need = "grow_memory";
  grown.action = "in_place";
  grown.outcome = "granted";
  grown.by = "local";
  grown.allocation_id = "a1";
  grown.held = {1000, 200ll << 20, 0, "", 0};
  grown.wanted = {1000, 800ll << 20, 0, "", 0};
  grown.granted = grown.wanted;
  grown.price_delta = 1'234;
  grown.reason = "memory at 120 MiB grows 1200.00 MiB/min";
  grown.detail = "raised";
  scaling_decision refused = grown;
  refused.at = 60;
  refused.need = "shrink";
  refused.outcome = "refused";
  refused.granted = refused.held;
  refused.price_delta = 0;
  refused.detail = "limits cannot change in place: in-place resize needs cgroups";
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
    ASSERT_TRUE(j->save_scaling(grown));
    ASSERT_TRUE(j->save_scaling(refused));
  }
  auto j = open_ok(path_);
  EXPECT_EQ(j->scaling("j1"), (std::vector<scaling_decision>{grown, refused}));
  EXPECT_TRUE(j->scaling("nope").empty());
  // The amounts are plain columns, for a person with sqlite3.
  EXPECT_EQ(raw_text(path_, "SELECT granted_memory FROM scaling WHERE need = 'grow_memory'"),
            std::to_string(800ll << 20));
}

TEST_F(journal_test, a_version_3_database_gains_the_scaling_table) {
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
  }
  // Back to version 3 as a tender before the scaling issue left it.
  raw_exec(path_, "DROP TABLE scaling; ALTER TABLE negotiations DROP COLUMN offers; "
                  "ALTER TABLE negotiations DROP COLUMN verdicts; PRAGMA user_version = 3;");
  auto j = open_ok(path_);
  EXPECT_EQ(j->schema_version(), journal::current_schema_version);
  EXPECT_EQ(raw_text(path_, "SELECT name FROM sqlite_master WHERE name = 'scaling_job'"),
            "scaling_job");
  scaling_decision d;
  d.job_id = "j1";
  d.need = "grow_cpu";
  EXPECT_TRUE(j->save_scaling(d));
  EXPECT_EQ(j->scaling("j1").size(), 1u);
  EXPECT_TRUE(j->load_job("j1"));
}

TEST_F(journal_test, status_offers_used_when_no_offer_rows) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
  job_status s;
  s.job_id = "j1";
  s.offers = {{"o1", "a", 1, 1000, 5, 1000.0, "won"}};
  ASSERT_TRUE(j->save_status(s));
  auto r = j->load_job("j1");
  EXPECT_EQ(bytes(r->status.offers), bytes(s.offers));
  EXPECT_FALSE(r->status.has_profile);
}

TEST_F(journal_test, committed_allocation_with_lease_token) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
  EXPECT_FALSE(j->load_job("j1")->alloc);

  const allocation first = sample_allocation("a1", "j1", "o1");
  const allocation second = sample_allocation("a2", "j1", "o2");
  ASSERT_TRUE(j->save_allocation(first, 100));
  ASSERT_TRUE(j->save_allocation(second, 50)); // older, but the only one left unreleased
  ASSERT_TRUE(j->save_release({"a1", "", "j1", "preempted"}, 200));
  auto r = j->load_job("j1");
  ASSERT_TRUE(r->alloc);
  EXPECT_EQ(bytes(*r->alloc), bytes(second));
  EXPECT_EQ(r->alloc->lease_token, second.lease_token);

  // Released by offer id; with nothing unreleased the latest one is reported.
  ASSERT_TRUE(j->save_release({"", "o2", "j1", "done"}, 300));
  EXPECT_EQ(bytes(*j->load_job("j1")->alloc), bytes(first));
  // A hold that never became an allocation is still a valid release.
  EXPECT_TRUE(j->save_release({"", "o7", "j1", "lost"}, 310));

  // A renewed lease replaces the body.
  allocation renewed = first;
  renewed.lease_token = "tok-renewed";
  ASSERT_TRUE(j->save_allocation(renewed, 400));
  EXPECT_EQ(j->load_job("j1")->alloc->lease_token, "tok-renewed");
}

TEST_F(journal_test, client_key_makes_submission_idempotent) {
  auto j = open_ok(path_);
  std::string existing = "junk";
  EXPECT_TRUE(j->insert_job("j1", "key", sample_spec("a"), 1, &existing));
  EXPECT_EQ(existing, "");
  EXPECT_FALSE(j->insert_job("j2", "key", sample_spec("b"), 2, &existing));
  EXPECT_EQ(existing, "j1");
  EXPECT_EQ(j->last_error(), ""); // a duplicate is not a failure
  // No key: never a duplicate.
  EXPECT_TRUE(j->insert_job("j3", "", sample_spec("c"), 3, &existing));
  EXPECT_TRUE(j->insert_job("j4", "", sample_spec("d"), 4, &existing));
  // The same job id twice is a failure, told apart by an empty `existing_id`.
  EXPECT_FALSE(j->insert_job("j1", "other", sample_spec("e"), 5, &existing));
  EXPECT_EQ(existing, "");
  EXPECT_NE(j->last_error().find("insert_job j1"), std::string::npos) << j->last_error();

  auto jobs = j->load_jobs();
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].spec.name, "a");
}

TEST_F(journal_test, everything_survives_close_and_reopen) {
  {
    auto j = open_ok(path_);
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(j->insert_job("j" + std::to_string(4 - i), "",
                                sample_spec("n" + std::to_string(i)), 100 - i));
    ASSERT_TRUE(j->transition("j2", job_state::submitted, job_state::cancelled, "user", 200));
    ASSERT_TRUE(j->save_usage("j2", {10, 1500, 1 << 20, 5, 6, 7, 8}));
    ASSERT_TRUE(j->save_usage("j2", {20, 2500, 2 << 20, 15, 16, 17, 9}));
    ASSERT_TRUE(j->save_sla_event({"market", "late_start", true, 30}));
    ASSERT_TRUE(j->save_sla_event({"market", "ok_start", false, 40}));
    ASSERT_TRUE(j->save_sla_event({"local", "confirm", false, 50}));
  }
  auto j = open_ok(path_);
  EXPECT_EQ(j->schema_version(), journal::current_schema_version);
  auto jobs = j->load_jobs();
  ASSERT_EQ(jobs.size(), 5u);
  for (int i = 0; i < 5; ++i) { // submission order, not id or time order
    EXPECT_EQ(jobs[i].job_id, "j" + std::to_string(4 - i));
    EXPECT_EQ(jobs[i].status.submitted_at, 100 - i);
  }
  EXPECT_EQ(jobs[2].status.state, job_state::cancelled);
  EXPECT_EQ(jobs[2].status.reason, "user");
  EXPECT_EQ(j->usage("j2"), (std::vector<usage_sample>{{10, 1500, 1 << 20, 5, 6, 7, 8},
                                                       {20, 2500, 2 << 20, 15, 16, 17, 9}}));
  auto events = j->sla_events("market");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, "late_start");
  EXPECT_TRUE(events[0].breach);
  EXPECT_EQ(events[1].kind, "ok_start");
  EXPECT_FALSE(events[1].breach);
  EXPECT_EQ(events[1].at, 40);
}

TEST_F(journal_test, wal_mode_is_on) {
  auto j = open_ok(path_);
  EXPECT_EQ(raw_text(path_, "PRAGMA journal_mode"), "wal");
  j.reset();
  auto full = open_ok(path_, {journal_sync::full, 100});
  ASSERT_TRUE(full);
  EXPECT_TRUE(full->insert_job("j1", "", sample_spec("a"), 1));
  EXPECT_EQ(raw_text(path_, "PRAGMA journal_mode"), "wal");
}

TEST_F(journal_test, the_wal_is_checkpointed_off_the_writers_path_and_stays_bounded) {
  // Checkpoints run on the journal's own thread and connection (the writers only
  // signal when the WAL passes 1,000 pages). A writer that keeps writing, in batches
  // as the agent and the benchmark do, writes ~40 MiB: the WAL must keep being
  // copied back and reused, not grow with everything written.
  auto j = open_ok(path_);
  const std::string big(4000, 'x'); // a page-sized spec per job
  std::uintmax_t wal_max = 0;
  for (int b = 0; b < 100; ++b) {
    ASSERT_TRUE(j->begin_batch());
    for (int i = 0; i < 100; ++i) {
      auto spec = sample_spec("w");
      spec.name = big;
      ASSERT_TRUE(j->insert_job("w" + std::to_string(b * 100 + i), "", spec, i));
    }
    ASSERT_TRUE(j->commit_batch());
    std::this_thread::sleep_for(std::chrono::milliseconds(2)); // let a checkpoint finish
    std::error_code ec;
    wal_max = std::max(wal_max, fs::file_size(path_ + "-wal", ec));
  }
  EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM jobs"), "10000");
  // Unchecked, the WAL would hold every page written (> 40 MiB).
  EXPECT_LT(wal_max, std::uintmax_t{16} << 20) << "the WAL grew to " << wal_max << " bytes";
  EXPECT_GT(fs::file_size(path_), std::uintmax_t{30} << 20) << "pages reached the database";
  EXPECT_GT(j->wal_waits(), 0); // the WAL was kept short by writers waiting for a copy
  j.reset();
  // The last close checkpoints and removes the WAL, as SQLite always did.
  EXPECT_FALSE(fs::exists(path_ + "-wal"));
  auto again = open_ok(path_);
  EXPECT_EQ(again->load_job("w9999")->spec.name, big);
}

TEST_F(journal_test, a_reader_holding_an_old_snapshot_does_not_make_every_writer_wait) {
  // While another connection holds a read transaction, no copy can pass its snapshot and
  // no writer can start the WAL over: waiting for copies is futile then, and is tried
  // again only after another 2,000 pages, not at every write.
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("first", "", sample_spec("a"), 1));
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &reader), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM jobs;", nullptr, nullptr, nullptr),
            SQLITE_OK);
  const std::string big(4000, 'x');
  for (int b = 0; b < 60; ++b) {
    ASSERT_TRUE(j->begin_batch());
    for (int i = 0; i < 50; ++i) {
      auto spec = sample_spec("w");
      spec.name = big;
      ASSERT_TRUE(j->insert_job("w" + std::to_string(b * 50 + i), "", spec, i));
    }
    ASSERT_TRUE(j->commit_batch());
  }
  // ~3,000 jobs of a page each (~4,000 pages with the index): a wait or two, not one per batch.
  EXPECT_LE(j->wal_waits(), 6);
  std::error_code ec;
  EXPECT_GT(fs::file_size(path_ + "-wal", ec), std::uintmax_t{12} << 20) << "the reader held the WAL";
  sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(reader);
  EXPECT_EQ(j->load_job("w2999")->spec.name, big);
}

TEST_F(journal_test, committed_writes_survive_kill_9) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto opened = journal::open(path_);
    if (!std::holds_alternative<std::unique_ptr<journal>>(opened))
      _exit(2);
    auto& j = *std::get<std::unique_ptr<journal>>(opened);
    bool ok = j.insert_job("j1", "key", sample_spec("a"), 1) &&
              j.transition("j1", job_state::submitted, job_state::profiling, "", 2) &&
              j.transition("j1", job_state::profiling, job_state::negotiating, "", 3) &&
              j.save_allocation(sample_allocation("a1", "j1", "o1"), 4) &&
              j.transition("j1", job_state::negotiating, job_state::committed, "", 5);
    if (!ok)
      _exit(3);
    raise(SIGKILL); // no close, no checkpoint, no destructors
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_TRUE(fs::exists(path_ + "-wal")); // the writes were still only in the log

  auto j = open_ok(path_);
  auto r = j->load_job("j1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->client_key, "key");
  EXPECT_EQ(r->status.state, job_state::committed);
  EXPECT_EQ((j->transitions("j1")), (std::vector<std::pair<job_state, job_state>>{
                                        {job_state::submitted, job_state::profiling},
                                        {job_state::profiling, job_state::negotiating},
                                        {job_state::negotiating, job_state::committed}}));
  ASSERT_TRUE(r->alloc);
  EXPECT_EQ(bytes(*r->alloc), bytes(sample_allocation("a1", "j1", "o1")));
}

/// The schema as migration 1 created it, frozen: what a database written by the
/// first release looks like.
constexpr const char* schema_v1 = R"(
  CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE,
    client_key TEXT UNIQUE, spec BLOB NOT NULL, state INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '',
    allocation_id TEXT NOT NULL DEFAULT '', price INTEGER NOT NULL DEFAULT 0, allocated BLOB,
    submitted_at INTEGER NOT NULL, started_at INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER NOT NULL DEFAULT 0, exit_code INTEGER NOT NULL DEFAULT -1, profile BLOB,
    cpu_used_mean REAL NOT NULL DEFAULT 0, mem_used_peak INTEGER NOT NULL DEFAULT 0,
    io_read INTEGER NOT NULL DEFAULT 0, io_write INTEGER NOT NULL DEFAULT 0, offers BLOB);
  CREATE TABLE transitions (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(job_id),
    from_state INTEGER NOT NULL, to_state INTEGER NOT NULL, reason TEXT NOT NULL,
    at INTEGER NOT NULL);
  CREATE TABLE offers (offer_id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(job_id),
    auction_id TEXT NOT NULL, round INTEGER NOT NULL, provider TEXT NOT NULL,
    price INTEGER NOT NULL, body BLOB NOT NULL, score REAL NOT NULL, verdict TEXT NOT NULL,
    at INTEGER NOT NULL);
  CREATE TABLE awards (id INTEGER PRIMARY KEY, offer_id TEXT NOT NULL,
    job_id TEXT NOT NULL REFERENCES jobs(job_id), auction_id TEXT NOT NULL,
    provider TEXT NOT NULL, hold_ttl INTEGER NOT NULL, body BLOB NOT NULL, at INTEGER NOT NULL);
  CREATE TABLE allocations (allocation_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(job_id), offer_id TEXT NOT NULL, provider TEXT NOT NULL,
    price INTEGER NOT NULL, body BLOB NOT NULL, created_at INTEGER NOT NULL,
    released_at INTEGER, release_reason TEXT);
  CREATE TABLE releases (id INTEGER PRIMARY KEY, allocation_id TEXT NOT NULL,
    offer_id TEXT NOT NULL, job_id TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL);
  CREATE TABLE usage (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(job_id),
    at INTEGER NOT NULL, cpu INTEGER NOT NULL, rss INTEGER NOT NULL, io_read INTEGER NOT NULL,
    io_write INTEGER NOT NULL, net_bytes INTEGER NOT NULL, threads INTEGER NOT NULL);
  CREATE TABLE sla_events (id INTEGER PRIMARY KEY, provider TEXT NOT NULL, kind TEXT NOT NULL,
    breach INTEGER NOT NULL, at INTEGER NOT NULL);
  PRAGMA user_version = 1;
)";

TEST_F(journal_test, migrates_a_version_1_database_keeping_its_rows) {
  raw_exec(path_, schema_v1);
  const std::string spec = bytes(sample_spec("old"));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "INSERT INTO jobs (job_id, client_key, spec, state, reason, "
                               "submitted_at) VALUES ('old1', 'k', ?, 4, 'was running', 77)",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  sqlite3_bind_blob(stmt, 1, spec.data(), static_cast<int>(spec.size()), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_DONE);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  raw_exec(path_, "INSERT INTO transitions (job_id, from_state, to_state, reason, at) "
                  "VALUES ('old1', 3, 4, '', 76)");

  auto j = open_ok(path_);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->schema_version(), journal::current_schema_version);
  EXPECT_EQ(raw_text(path_, "PRAGMA user_version"), std::to_string(journal::current_schema_version));
  EXPECT_EQ(raw_text(path_, "SELECT name FROM sqlite_master WHERE name = 'transitions_job'"),
            "transitions_job");
  auto r = j->load_job("old1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->client_key, "k");
  EXPECT_EQ(bytes(r->spec), spec);
  EXPECT_EQ(r->status.state, job_state::running);
  EXPECT_EQ(r->status.reason, "was running");
  EXPECT_EQ(r->status.submitted_at, 77);
  EXPECT_EQ(j->transitions("old1").size(), 1u);
  // Still usable, and the same client key is still known.
  std::string existing;
  EXPECT_FALSE(j->insert_job("new1", "k", sample_spec("new"), 80, &existing));
  EXPECT_EQ(existing, "old1");
  EXPECT_TRUE(j->transition("old1", job_state::running, job_state::done, "", 90));
  j.reset();
  EXPECT_EQ(open_ok(path_)->load_job("old1")->status.state, job_state::done);
}

TEST_F(journal_test, refuses_a_newer_schema_untouched) {
  raw_exec(path_, "CREATE TABLE future (x); PRAGMA user_version = 9;");
  EXPECT_EQ(open_error(path_),
            "journal " + path_ + ": database schema version 9 is newer than this tender (" +
              std::to_string(journal::current_schema_version) + ")");
  EXPECT_EQ(raw_text(path_, "PRAGMA journal_mode"), "delete"); // not switched to WAL
  EXPECT_EQ(raw_text(path_, "PRAGMA user_version"), "9");
}

TEST_F(journal_test, refuses_a_file_that_is_not_a_database) {
  std::ofstream(path_) << "this is a job file, not a journal\n" << std::string(4096, 'x');
  EXPECT_EQ(open_error(path_), "journal " + path_ + ": file is not a database");
}

TEST_F(journal_test, refuses_a_path_it_cannot_create) {
  // Tests run as root, so "unwritable" is a path under a regular file.
  const fs::path file = dir_ / "file";
  std::ofstream(file) << "x";
  const std::string bad = (file / "journal.db").string();
  EXPECT_EQ(open_error(bad), "journal " + bad + ": " + file.string() + " is not a directory");
  const std::string missing = (dir_ / "no" / "such" / "journal.db").string();
  EXPECT_EQ(open_error(missing), "journal " + missing + ": directory " +
                                     (dir_ / "no" / "such").string() + " does not exist");
}

TEST_F(journal_test, failed_writes_are_reported_without_the_token) {
  auto j = open_ok(path_);
  std::vector<std::string> seen;
  j->set_error_handler([&](const std::string& e) { seen.push_back(e); });

  EXPECT_FALSE(j->transition("ghost", job_state::submitted, job_state::profiling, "", 1));
  EXPECT_EQ(j->last_error(), "journal " + path_ + ": transition ghost: no job ghost");
  EXPECT_TRUE(j->transitions("ghost").empty()); // nothing half-written

  job_status ghost;
  ghost.job_id = "ghost";
  EXPECT_FALSE(j->save_status(ghost));
  EXPECT_FALSE(j->save_profile("ghost", {}));
  const allocation a = sample_allocation("a1", "ghost", "o1");
  EXPECT_FALSE(j->save_allocation(a, 1)); // foreign key: no such job
  EXPECT_NE(j->last_error().find("save_allocation a1"), std::string::npos) << j->last_error();
  EXPECT_NE(j->last_error().find("FOREIGN KEY"), std::string::npos) << j->last_error();
  EXPECT_FALSE(j->save_usage("ghost", {}));
  ASSERT_EQ(seen.size(), 5u);
  for (const auto& e : seen)
    EXPECT_EQ(e.find(a.lease_token), std::string::npos) << e;
  EXPECT_EQ(seen.back(), j->last_error());
}

TEST_F(journal_test, batches_commit_together) {
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->begin_batch());
    for (int i = 0; i < 50; ++i)
      ASSERT_TRUE(j->insert_job("b" + std::to_string(i), "", sample_spec("b"), i));
    ASSERT_TRUE(j->begin_batch()); // nested: joins the outer batch
    ASSERT_TRUE(j->transition("b0", job_state::submitted, job_state::profiling, "", 60));
    ASSERT_TRUE(j->commit_batch());
    // A failed write inside the batch fails alone.
    EXPECT_FALSE(j->transition("ghost", job_state::submitted, job_state::profiling, "", 61));
    ASSERT_TRUE(j->transition("b1", job_state::submitted, job_state::profiling, "", 62));
    EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM jobs"), "0"); // not committed yet
    ASSERT_TRUE(j->commit_batch());
    EXPECT_FALSE(j->commit_batch()); // none open
    EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM jobs"), "50");

    // A batch left open is lost, as in a crash.
    ASSERT_TRUE(j->begin_batch());
    ASSERT_TRUE(j->insert_job("lost", "", sample_spec("l"), 99));
  }
  auto j = open_ok(path_);
  EXPECT_EQ(j->load_jobs().size(), 50u);
  EXPECT_FALSE(j->load_job("lost"));
  EXPECT_EQ(j->load_job("b1")->status.state, job_state::profiling);
}

TEST_F(journal_test, a_batchs_negotiation_writes_are_queued_seen_by_the_next_read_and_committed) {
  {
    auto j = open_ok(path_);
    ASSERT_TRUE(j->insert_job("j1", "", sample_spec("j1"), 1));
    std::vector<std::string> errors;
    j->set_error_handler([&](const std::string& e) { errors.push_back(e); });
    ASSERT_TRUE(j->begin_batch());
    const offer o = sample_offer("o1", "j1", 1, "market", 1'000'000);
    ASSERT_TRUE(j->save_outcome({{&o, {}, "won"}}, sample_negotiation(1, "won by market")));
    award a;
    a.offer_id = "o1";
    a.job_id = "j1";
    a.auction_id = "auc-j1";
    a.provider = "market";
    ASSERT_TRUE(j->save_award(a, 41));
    ASSERT_TRUE(j->save_sla_event({"market", "confirm", false, 42}));
    ASSERT_TRUE(j->save_rejected_offer("j1", sample_offer("o2", "j1", 1, "stranger", 5),
                                       "rejected: foreign: unknown provider stranger", 42));
    EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM sla_events"), "0"); // not committed
    // A write for an unknown job is queued too (no error yet), and fails alone when made.
    negotiation_record ghost = sample_negotiation(1, "refused");
    ghost.job_id = "ghost";
    ghost.auction_id = "auc-ghost";
    EXPECT_TRUE(j->save_outcome({}, ghost));
    EXPECT_TRUE(j->save_rejected_offer("ghost", sample_offer("o3", "ghost", 1, "market", 5),
                                       "rejected: late", 42));
    EXPECT_TRUE(errors.empty());
    // The next read makes them first.
    EXPECT_EQ(j->sla_events("market").size(), 1u);
    ASSERT_EQ(j->negotiations("j1").size(), 1u);
    EXPECT_EQ(j->negotiations("j1")[0].outcome, "won by market");
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_NE(errors[0].find("save_outcome auc-ghost"), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find("FOREIGN KEY"), std::string::npos) << errors[0];
    EXPECT_NE(errors[1].find("save_rejected_offer o3"), std::string::npos) << errors[1];
    EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM sla_events"), "0"); // still uncommitted
    // Queued after the read, made by the commit.
    ASSERT_TRUE(j->save_sla_event({"market", "confirm", false, 43}));
    ASSERT_TRUE(j->commit_batch());
    EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM sla_events"), "2");
    EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM awards"), "1");
    EXPECT_EQ(raw_text(path_, "SELECT verdict FROM offers WHERE offer_id = 'o2'"),
              "rejected: foreign: unknown provider stranger");
    // Outside a batch they are made at once.
    ASSERT_TRUE(j->save_sla_event({"market", "refuse", true, 44}));
    EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM sla_events"), "3");
    // Queued in a batch that never commits: lost with it, as in a crash.
    ASSERT_TRUE(j->begin_batch());
    ASSERT_TRUE(j->save_sla_event({"market", "timeout", true, 45}));
  }
  auto j = open_ok(path_);
  EXPECT_EQ(j->sla_events("market").size(), 3u);
  EXPECT_EQ(j->negotiations("j1").size(), 1u);
  EXPECT_TRUE(j->negotiations("ghost").empty());
}

TEST_F(journal_test, next_batch_commits_and_keeps_queueing_into_the_next) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("j1", "", sample_spec("j1"), 1));
  std::vector<std::string> errors;
  j->set_error_handler([&](const std::string& e) { errors.push_back(e); });
  EXPECT_FALSE(j->next_batch());
  EXPECT_NE(errors.back().find("next_batch: no batch is open"), std::string::npos);
  ASSERT_TRUE(j->begin_batch());
  ASSERT_TRUE(j->save_sla_event({"market", "confirm", false, 1}));
  ASSERT_TRUE(j->begin_batch());
  EXPECT_FALSE(j->next_batch());
  EXPECT_NE(errors.back().find("next_batch: inside a nested batch"), std::string::npos);
  ASSERT_TRUE(j->commit_batch());
  ASSERT_TRUE(j->next_batch());
  EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM sla_events"), "1");
  // Still queueing: a write for an unknown job says nothing until it is made.
  const std::size_t before = errors.size();
  negotiation_record ghost = sample_negotiation(1, "refused");
  ghost.job_id = "ghost";
  EXPECT_TRUE(j->save_outcome({}, ghost));
  ASSERT_TRUE(j->save_sla_event({"market", "confirm", false, 2}));
  EXPECT_EQ(errors.size(), before);
  EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM sla_events"), "1");
  ASSERT_TRUE(j->commit_batch());
  ASSERT_EQ(errors.size(), before + 1);
  EXPECT_NE(errors.back().find("FOREIGN KEY"), std::string::npos) << errors.back();
  EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM sla_events"), "2");
}

TEST_F(journal_test, writes_queued_while_batches_commit_back_to_back_are_each_made_once) {
  // Writers on four threads while a committer ends and begins batches as fast as it can,
  // then ends the last batch while they still write: a write queued as a batch commits
  // goes into that batch or the next, never nowhere and never twice, and once no batch
  // is open writes are made at once (counted from another connection, which makes
  // nothing queued).
  auto j = open_ok(path_);
  constexpr int per_thread = 2'000;
  std::atomic<int> written{0};
  std::atomic<bool> last_committed{false};
  ASSERT_TRUE(j->begin_batch());
  std::thread committer([&] {
    for (int n = 0; written.load() < 4 * per_thread / 2; ++n) {
      if (n % 2 == 0) {
        EXPECT_TRUE(j->next_batch());
      } else {
        EXPECT_TRUE(j->commit_batch());
        EXPECT_TRUE(j->begin_batch());
      }
    }
    EXPECT_TRUE(j->commit_batch());
    last_committed = true;
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        if (i == per_thread / 2)
          while (!last_committed.load())
            std::this_thread::yield();
        EXPECT_TRUE(j->save_sla_event({"p" + std::to_string(t), "confirm", false, i}));
        ++written;
      }
    });
  committer.join();
  for (auto& w : writers)
    w.join();
  EXPECT_EQ(raw_text(path_, "SELECT count(*) FROM sla_events"), std::to_string(4 * per_thread));
  EXPECT_EQ(raw_text(path_, "SELECT count(DISTINCT provider || '/' || at) FROM sla_events"),
            std::to_string(4 * per_thread));
  for (int t = 0; t < 4; ++t) {
    auto events = j->sla_events("p" + std::to_string(t));
    ASSERT_EQ(events.size(), static_cast<std::size_t>(per_thread));
    for (int i = 0; i < per_thread; ++i)
      EXPECT_EQ(events[static_cast<std::size_t>(i)].at, i) << "one thread's writes in its order";
  }
}

TEST_F(journal_test, threads_share_one_journal) {
  auto j = open_ok(path_);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        EXPECT_TRUE(j->insert_job(id, id, sample_spec(id), i));
        EXPECT_TRUE(j->transition(id, job_state::submitted, job_state::profiling, "", i));
        EXPECT_TRUE(j->load_job(id));
      }
    });
  for (auto& t : threads)
    t.join();
  auto jobs = j->load_jobs();
  EXPECT_EQ(jobs.size(), 100u);
  for (const auto& r : jobs)
    EXPECT_EQ(r.status.state, job_state::profiling);
}

TEST_F(journal_test, insert_jobs_commits_a_batch_once_and_dedups_by_key) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("old", "bus:p:1", sample_spec("old"), 1));
  std::vector<journal::job_insert> batch;
  for (int i = 1; i <= 4; ++i)
    batch.push_back(
        {"n" + std::to_string(i), "bus:p:" + std::to_string(i), sample_spec("s"), 10 + i, "junk"});
  batch.push_back({"n5", "bus:p:3", sample_spec("again"), 20, ""}); // same key twice in one batch
  ASSERT_TRUE(j->insert_jobs(batch)) << j->last_error();
  std::vector<std::string> existing;
  for (const auto& b : batch)
    existing.push_back(b.existing_id);
  EXPECT_EQ(existing, (std::vector<std::string>{"old", "", "", "", "n3"}));

  auto jobs = j->load_jobs();
  std::vector<std::string> ids;
  for (const auto& r : jobs)
    ids.push_back(r.job_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"old", "n2", "n3", "n4"}));
  auto n2 = j->load_job("n2");
  ASSERT_TRUE(n2);
  EXPECT_EQ(n2->client_key, "bus:p:2");
  EXPECT_EQ(n2->status.state, job_state::submitted);
  EXPECT_EQ(n2->status.reason, "accepted");
  EXPECT_EQ(n2->status.submitted_at, 12);
  EXPECT_EQ(bytes(n2->spec), bytes(sample_spec("s")));
  // Each new job has its "accepted" transition, as a single submission does.
  EXPECT_EQ(j->transitions("n2"), (std::vector<std::pair<job_state, job_state>>{
                                      {job_state::submitted, job_state::submitted}}));
  EXPECT_TRUE(j->transitions("n5").empty());

  // Resubmitting the whole batch writes nothing new.
  for (auto& b : batch)
    b.job_id += "-again";
  ASSERT_TRUE(j->insert_jobs(batch));
  existing.clear();
  for (const auto& b : batch)
    existing.push_back(b.existing_id);
  EXPECT_EQ(existing, (std::vector<std::string>{"old", "n2", "n3", "n4", "n3"}));
  EXPECT_EQ(j->load_jobs().size(), 4u);
}

TEST_F(journal_test, a_failed_insert_jobs_records_nothing_of_the_batch) {
  auto j = open_ok(path_);
  ASSERT_TRUE(j->insert_job("taken", "", sample_spec("t"), 1));
  std::vector<journal::job_insert> batch{{"a", "bus:p:1", sample_spec("a"), 2, ""},
                                         {"taken", "bus:p:2", sample_spec("b"), 3, ""}};
  EXPECT_FALSE(j->insert_jobs(batch));
  EXPECT_NE(j->last_error().find("insert_jobs (2 jobs)"), std::string::npos) << j->last_error();
  EXPECT_EQ(batch[0].existing_id, "");
  EXPECT_FALSE(j->load_job("a")); // rolled back with the failing item
  EXPECT_EQ(j->load_jobs().size(), 1u);
}

TEST_F(journal_test, observer_sees_committed_transitions_allocations_and_scaling) {
  auto j = open_ok(path_);
  std::vector<std::string> seen;
  j->set_observer([&](const job_event& e) {
    seen.push_back(e.kind + " " + e.job_id + " " + to_string(e.from) + "->" + to_string(e.to) +
                   " " + e.reason + " " + e.provider + " " + std::to_string(e.price));
  });
  std::vector<journal::job_insert> batch{{"j1", "k1", sample_spec("a"), 1, ""}};
  ASSERT_TRUE(j->insert_jobs(batch));
  ASSERT_TRUE(j->insert_jobs(batch)); // a duplicate is no event
  ASSERT_TRUE(j->transition("j1", job_state::submitted, job_state::profiling, "profiling", 2));
  EXPECT_FALSE(j->transition("ghost", job_state::submitted, job_state::profiling, "", 3));
  const allocation a = sample_allocation("a1", "j1", "o1");
  ASSERT_TRUE(j->save_allocation(a, 4));
  scaling_decision d;
  d.job_id = "j1";
  d.by = "market";
  d.action = "in_place";
  d.outcome = "granted";
  d.price_delta = 25;
  d.reason = "memory rising";
  ASSERT_TRUE(j->save_scaling(d));
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "transition j1 submitted->submitted accepted  0",
                      "transition j1 submitted->profiling profiling  0",
                      "allocation j1 submitted->submitted  market 1750000",
                      "scaling j1 submitted->submitted memory rising market 25",
                  }));
}

TEST_F(journal_test, totals_and_recent_scaling_for_the_console) {
  auto j = open_ok(path_);
  auto empty = j->totals();
  EXPECT_EQ(empty.negotiations, 0);
  EXPECT_TRUE(empty.offers_by_verdict.empty());
  ASSERT_TRUE(j->insert_job("j1", "", sample_spec("a"), 1));
  ASSERT_TRUE(j->insert_job("j2", "", sample_spec("b"), 2));
  ASSERT_TRUE(j->save_offer("j1", sample_offer("o1", "j1", 1, "a", 1000), 1.0, "won", 10));
  ASSERT_TRUE(j->save_offer("j1", sample_offer("o2", "j1", 1, "b", 2000), 2.0, "lost", 10));
  ASSERT_TRUE(j->save_offer("j2", sample_offer("o3", "j2", 1, "b", 2000), 2.0, "lost", 11));
  ASSERT_TRUE(
      j->save_rejected_offer("j2", sample_offer("o4", "j2", 1, "c", 10), "rejected: late", 12));
  ASSERT_TRUE(j->save_offer("j2", sample_offer("o5", "j2", 1, "a", 10), 2.0,
                            "superseded by a later offer", 13));
  negotiation_record n;
  n.job_id = "j1";
  n.auction_id = "auc-1";
  ASSERT_TRUE(j->save_negotiation(n));
  n.job_id = "j2";
  n.auction_id = "auc-2";
  ASSERT_TRUE(j->save_negotiation(n));
  ASSERT_TRUE(j->save_sla_event({"a", "confirm", false, 20}));
  ASSERT_TRUE(j->save_sla_event({"b", "refuse", true, 21}));
  ASSERT_TRUE(j->save_sla_event({"b", "confirm", false, 22}));
  std::vector<scaling_decision> all;
  for (int i = 0; i < 5; ++i) {
    scaling_decision d;
    d.job_id = i % 2 ? "j1" : "j2";
    d.at = 100 + i;
    d.need = "grow_cpu";
    d.action = "in_place";
    d.outcome = i == 4 ? "refused" : "granted";
    ASSERT_TRUE(j->save_scaling(d));
    all.push_back(d);
  }
  auto t = j->totals();
  EXPECT_EQ(t.negotiations, 2);
  EXPECT_EQ(t.offers_by_verdict, (std::map<std::string, std::int64_t>{
                                     {"won", 1}, {"lost", 2}, {"rejected", 1}, {"superseded", 1}}));
  EXPECT_EQ(t.sla_breaches, 1);
  EXPECT_EQ(t.sla_kept, 2);
  EXPECT_EQ(t.scaling_by_outcome,
            (std::map<std::string, std::int64_t>{{"granted", 4}, {"refused", 1}}));
  // The latest decisions over every job, oldest first.
  EXPECT_EQ(j->recent_scaling(3), (std::vector<scaling_decision>{all[2], all[3], all[4]}));
  EXPECT_EQ(j->recent_scaling(100), all);
}

} // namespace
} // namespace tender

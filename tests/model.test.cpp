// The agent and its run-time model: a model trained with `tender model train` is
// loaded from the config and shows in a live job's status; a broken model file falls
// back to the baseline with the reason; retraining on demand answers over the mesh.

#include "actors/journal.hpp"
#include "tests/harness.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace tender::test;
using namespace std::chrono_literals;

namespace {

std::string shared_dir() {
  const char* env = std::getenv("TENDER_SHARED_DIR");
  return env ? env : "/work/shared";
}

/// The first `n` jobs of a real trace, as a plain SWF file (a real child process).
std::string trace_slice(const temp_dir& t, const std::string& trace, int n) {
  auto out = t.path + "/slice.swf";
  auto cmd = "zcat '" + shared_dir() + "/data/traces/" + trace + "' | grep -v '^;' | head -n " +
             std::to_string(n) + " > '" + out + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return out;
}

std::string node_config(const temp_dir& t, const std::string& model, int retrain_min_jobs = 200) {
  return t.file("node.toml", "[node]\nname = \"modelled\"\n\n[models]\nruntime = \"" + model +
                               "\"\nretrain_min_jobs = " + std::to_string(retrain_min_jobs) +
                               "\n\n[[providers]]\nname = \"local\"\nkind = \"local\"\ncpus = 2\n"
                               "memory = \"2GiB\"\nprice_per_core_hour = 0.01\n");
}

std::string job(const temp_dir& t) {
  return t.file("job.toml", "[job]\nname = \"modelled\"\nuser = \"ana\"\n"
                            "command = [\"sh\", \"-c\", \"exit 0\"]\nwalltime = \"20m\"\n"
                            "[job.hints]\ncpus = 1\n[job.profile]\nskip = true\n");
}

} // namespace

TEST(model, a_trained_model_drives_a_live_jobs_prediction) {
  temp_dir t;
  auto slice = trace_slice(t, "KTH-SP2-filtered.swf.gz", 3000);
  auto model = t.path + "/runtime.json";
  auto trained = run({"model", "train", "--swf", slice, "--out", model});
  ASSERT_EQ(trained.code, 0) << trained.out << trained.err;
  nlohmann::json meta;
  std::ifstream(model) >> meta;
  auto version = "xgboost:" + meta.at("model_digest").get<std::string>().substr(0, 12);

  agent a(t.path + "/data", {"--config", node_config(t, model)});
  auto m = a.cli_json({"model", "status"});
  EXPECT_EQ(m.value("version", ""), version) << m.dump(2);
  EXPECT_EQ(m.value("source", ""), model) << m.dump(2);
  EXPECT_EQ(m.value("load_error", "?"), "") << m.dump(2);

  auto id = a.submit(job(t));
  auto s = a.wait_final(id, 60s);
  ASSERT_EQ(s.value("state", ""), "done") << s.dump(2);
  auto& p = s.at("profile");
  EXPECT_EQ(p.value("model_version", ""), version) << p.dump(2);
  auto lo = p.at("runtime_lo_s").get<double>(), mid = p.at("runtime_s").get<double>(),
       hi = p.at("runtime_hi_s").get<double>();
  EXPECT_LE(lo, mid) << p.dump(2);
  EXPECT_LE(mid, hi) << p.dump(2);
  EXPECT_LT(lo, hi) << p.dump(2);
  EXPECT_LE(hi, 20 * 60 + 1) << "capped at the walltime: " << p.dump(2);
}

TEST(model, a_damaged_model_file_falls_back_to_the_baseline_with_its_reason) {
  temp_dir t;
  auto model = t.file("runtime.json", "{\"format\": \"tender-runtime-model\", \"format_versi");
  agent a(t.path + "/data", {"--config", node_config(t, model)});
  auto m = a.cli_json({"model", "status"});
  EXPECT_EQ(m.value("source", ""), "baseline") << m.dump(2);
  EXPECT_NE(m.value("load_error", "").find(model), std::string::npos) << m.dump(2);
  auto id = a.submit(job(t));
  auto s = a.wait_final(id, 60s);
  ASSERT_EQ(s.value("state", ""), "done") << s.dump(2);
  EXPECT_EQ(s.at("profile").value("model_version", "").rfind("baseline:", 0), 0u) << s.dump(2);
  EXPECT_NE(a.proc().err().find("predicting with the baseline instead"), std::string::npos)
    << a.proc().err();
}

// A format-3 file (point and spread boosters) from before the quantile boosters.
TEST(model, an_older_format_model_is_refused_with_its_reason) {
  temp_dir t;
  auto model = t.file("runtime.json", R"({"format": "tender-runtime-model", "format_version": 3,
                                          "boosters": {"point": "{}", "spread": "{}"}})");
  agent a(t.path + "/data", {"--config", node_config(t, model)});
  auto m = a.cli_json({"model", "status"});
  EXPECT_EQ(m.value("source", ""), "baseline") << m.dump(2);
  EXPECT_EQ(m.value("load_error", ""),
            model + ": format_version 3, this build reads 4 (retrain it with `tender model train`)")
    << m.dump(2);
  EXPECT_EQ(m.value("version", ""), "baseline:last2") << m.dump(2);
}

TEST(model, retraining_on_demand_says_what_it_did) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", node_config(t, "", 20)});
  auto id = a.submit(job(t));
  ASSERT_EQ(a.wait_final(id, 60s).value("state", ""), "done");
  auto m = a.cli_json({"model", "retrain"});
  EXPECT_EQ(m.value("retrains", 0), 1) << m.dump(2);
  EXPECT_EQ(m.value("replaced", -1), 0) << m.dump(2);
  EXPECT_EQ(m.value("finished_jobs", 0), 1) << m.dump(2);
  EXPECT_EQ(m.value("last_retrain", ""), "1 finished jobs, retraining needs 20") << m.dump(2);
  EXPECT_EQ(m.value("version", ""), "baseline:last2") << m.dump(2);
}

TEST(model, train_learns_from_a_nodes_journal) {
  temp_dir t;
  auto data = t.path + "/node";
  std::filesystem::create_directories(data);
  {
    auto opened = tender::journal::open(data + "/journal.db");
    ASSERT_TRUE(std::holds_alternative<std::unique_ptr<tender::journal>>(opened));
    auto& j = *std::get<std::unique_ptr<tender::journal>>(opened);
    tender::usec at = 1'790'000'000 * tender::sec_us;
    for (int i = 0; i < 120; ++i) {
      tender::job_spec s;
      s.name = "j" + std::to_string(i);
      s.user = "u" + std::to_string(i % 3);
      s.command = {i % 2 ? "solve" : "prep"};
      s.walltime = (i % 2 ? 3600 : 300) * tender::sec_us;
      auto id = "job-" + std::to_string(i);
      ASSERT_TRUE(j.insert_job(id, "", s, at));
      tender::job_status st;
      st.job_id = id;
      st.submitted_at = at;
      st.started_at = at + tender::sec_us;
      st.finished_at = st.started_at + (i % 2 ? 3000 : 200) * tender::sec_us;
      ASSERT_TRUE(j.save_status(st));
      ASSERT_TRUE(j.transition(id, tender::job_state::submitted, tender::job_state::done, "exit 0",
                               st.finished_at));
      at += 600 * tender::sec_us;
    }
  }
  auto model = t.path + "/from-history.json";
  auto r = run({"model", "train", "--history", data, "--out", model});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("120 finished jobs"), std::string::npos) << r.err;
  nlohmann::json meta;
  std::ifstream(model) >> meta;
  EXPECT_EQ(meta.at("n_train").get<int>(), 120) << meta.dump().substr(0, 400);

  auto missing = run({"model", "train", "--history", t.path + "/nowhere", "--out", model});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("nowhere: no such journal (expected a journal.db"), std::string::npos)
    << missing.err;
  auto neither = run({"model", "train", "--out", model});
  EXPECT_EQ(neither.code, 2);
  EXPECT_NE(neither.err.find("--swf FILE and/or --history"), std::string::npos) << neither.err;
}

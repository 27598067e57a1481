// The node's gateway on ZeroMQ's inproc:// transport: an in-process client shares
// the node's context and drives a job end to end, with no TCP involved.

#include "actors/node.hpp"
#include "tools/client.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

using namespace tender;

TEST(inproc, a_job_runs_end_to_end_over_inproc) {
  char tmpl[] = "/tmp/tender-inproc-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  node_options opt;
  opt.listen = "inproc://tender-inproc-test";
  opt.data_dir = dir;
  opt.quiet = true;
  auto started = node::start(dev_config(), opt);
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<node>>(started))
    << std::get<std::string>(started);
  auto& n = *std::get<std::unique_ptr<node>>(started);
  EXPECT_EQ(n.endpoint(), "inproc://tender-inproc-test");
  client c(n.endpoint(), "inproc-test", n.zmq_context());
  job_spec spec;
  spec.name = "inproc";
  spec.user = "tester";
  spec.command = {"sh", "-c", "exit 0"};
  spec.walltime = 60 * sec_us;
  auto r = c.call(job_submit{spec, ""});
  ASSERT_TRUE(std::holds_alternative<envelope>(r)) << std::get<std::string>(r);
  auto id = std::get<job_status>(std::get<envelope>(r).body).job_id;
  job_status s;
  for (int i = 0; i < 600 && !is_final(s.state); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto q = c.call(job_query{id});
    ASSERT_TRUE(std::holds_alternative<envelope>(q));
    s = std::get<job_status>(std::get<envelope>(q).body);
  }
  EXPECT_EQ(s.state, job_state::done) << s.reason;
  EXPECT_EQ(s.exit_code, 0);
  n.stop();
  std::filesystem::remove_all(dir);
}

#include "actors/node.hpp"

#include "actors/actors.hpp"
#include "actors/federation.hpp"
#include "actors/console.hpp"
#include "actors/bus.hpp"
#include "actors/scheduler.hpp"
#include "protocol/curve.hpp"
#include "providers/factory.hpp"

#include <caf/all.hpp>
#include <zmq.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace tender {

namespace fs = std::filesystem;

struct node::impl {
  std::unique_ptr<caf::actor_system_config> caf_cfg;
  std::unique_ptr<caf::actor_system> sys;
  context_ptr ctx;
  caf::actor intake;
  caf::actor profiler;
  std::vector<caf::actor> providers;
  gateway_handle gateway;
  console_handle console;
  bus_handle bus;
  std::vector<peer_link_handle> peers; ///< [[peers]]: sites this node bids in
  bool stopped = false;
};

namespace {

usec wall_clock() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::optional<std::string> prepare_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return "data dir " + dir + " cannot be created: " + ec.message();
  auto probe = dir + "/.write-test";
  {
    std::ofstream f(probe);
    if (!f || !(f << "ok") || !f.flush())
      return "data dir " + dir + " is not writable";
  }
  fs::remove(probe, ec);
  return std::nullopt;
}

std::atomic<int> logger_counter{0};

} // namespace

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() { stop(); }

std::string node::endpoint() const { return impl_->gateway.endpoint; }
std::string node::data_dir() const { return impl_->ctx->data_dir; }
std::string node::console_address() const { return impl_->console.address; }
zmq::context_t& node::zmq_context() const {
  return *static_cast<zmq::context_t*>(impl_->gateway.zmq_ctx);
}

std::variant<std::unique_ptr<node>, std::string> node::start(node_config cfg, node_options opt) {
  auto p = std::make_unique<impl>();
  auto ctx = std::make_shared<node_context>();
  if (!opt.listen.empty())
    cfg.listen = opt.listen;
  // Security first: a bad key or a plaintext endpoint that is not allowed stops the start
  // before anything else happens.
  {
    auto sec = curve::server_setup::load(
      opt.key.empty() ? cfg.security.key : opt.key, cfg.security.allow, cfg.security.allow_dir,
      opt.dev || opt.insecure || cfg.security.insecure);
    if (auto* err = std::get_if<std::string>(&sec))
      return *err;
    auto& setup = std::get<curve::server_setup>(sec);
    if (auto rule = curve::listen_rule(cfg.listen, setup.keys.has_value(), setup.plaintext_ok);
        std::holds_alternative<std::string>(rule))
      return std::get<std::string>(rule);
    ctx->security = std::make_shared<const curve::server_setup>(std::move(setup));
  }
  std::string dir = !opt.data_dir.empty() ? opt.data_dir : cfg.data_dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/tender-XXXXXX";
    if (!mkdtemp(tmpl))
      return std::string("cannot create a temporary data dir: ") + std::strerror(errno);
    dir = tmpl;
  }
  if (auto err = prepare_dir(dir))
    return *err;
  ctx->data_dir = fs::absolute(dir).string();
  ctx->clock = opt.clock ? opt.clock : std::function<usec()>(wall_clock);
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  ctx->log = std::make_shared<spdlog::logger>("tender-" + std::to_string(++logger_counter), sink);
  ctx->log->set_level(opt.quiet ? spdlog::level::warn : spdlog::level::from_str(opt.log_level));
  ctx->log->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  auto j = journal::open(ctx->data_dir + "/journal.db");
  if (auto* err = std::get_if<std::string>(&j))
    return *err;
  ctx->journal = std::move(std::get<0>(j));
  ctx->cfg = std::move(cfg);
  ctx->load_model();

  // Providers first: a bad provider configuration stops the start.
  std::vector<std::unique_ptr<provider>> plain;
  for (auto& pc : ctx->cfg.providers) {
    auto made = make_provider(pc, ctx->data_dir, random_token, ctx->cfg.auction.lease_ttl,
                              opt.make_executor);
    if (auto* err = std::get_if<std::string>(&made))
      return *err;
    plain.push_back(std::move(std::get<0>(made)));
  }

  p->caf_cfg = std::make_unique<caf::actor_system_config>();
  p->caf_cfg->set("scheduler.max-threads", 2);
  p->caf_cfg->set("logger.verbosity", caf::atom("quiet"));
  use_tender_scheduler(*p->caf_cfg);
  p->sys = std::make_unique<caf::actor_system>(*p->caf_cfg);
  p->sys->await_actors_before_shutdown(false);
  p->ctx = ctx;
  auto& sys = *p->sys;
  p->profiler = spawn_profiler(sys, ctx);
  p->intake = spawn_intake(sys, ctx, p->profiler);
  for (std::size_t i = 0; i < plain.size(); ++i) {
    auto name = plain[i]->name();
    auto a = spawn_provider(sys, ctx, std::move(plain[i]));
    p->providers.push_back(a);
    caf::anon_send(p->intake, register_atom::value, name, a, false);
  }
  auto gw = start_gateway(sys, ctx, p->intake, ctx->cfg.listen);
  if (auto* err = std::get_if<std::string>(&gw)) {
    auto msg = *err;
    for (auto& a : p->providers)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(p->intake, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(p->profiler, caf::exit_reason::user_shutdown);
    return msg;
  }
  p->gateway = std::get<gateway_handle>(std::move(gw));
  {
    std::ofstream f(ctx->data_dir + "/endpoint");
    f << p->gateway.endpoint << "\n";
  }
  // Resume what the journal knows. Finished jobs teach the predictor.
  auto jobs = ctx->journal->load_jobs();
  std::size_t resumed = 0;
  for (auto& rec : jobs) {
    auto& s = rec.status;
    if (s.state == job_state::done && s.started_at > 0 && s.finished_at > s.started_at) {
      finished_job f;
      f.spec = rec.spec;
      f.submitted_at = s.submitted_at;
      f.runtime = s.finished_at - s.started_at;
      f.finished_at = s.finished_at;
      f.cpu_mean = s.cpu_used_mean;
      f.mem_peak = s.mem_used_peak;
      ctx->observe(f);
    }
    if (!is_final(s.state))
      ++resumed;
    caf::anon_send(p->intake, resume_atom::value, std::move(rec));
  }
  // The bus last: the intake knows every journaled job before new ones arrive.
  if (!ctx->cfg.bus.listen.empty()) {
    auto b = start_bus(sys, ctx, p->intake);
    if (auto* err = std::get_if<std::string>(&b)) {
      auto msg = *err;
      node stopped(std::move(p)); // stops what has started
      return msg;
    }
    p->bus = std::get<bus_handle>(std::move(b));
    ctx->log->info("bus listening on {}{}{}", p->bus.endpoint,
                   p->bus.publish_endpoint.empty() ? "" : ", events on ",
                   p->bus.publish_endpoint);
    if (!p->bus.publish_endpoint.empty()) {
      std::ofstream f(ctx->data_dir + "/bus-publish-endpoint");
      f << p->bus.publish_endpoint << "\n";
    }
    // Written last: its presence says the bus is up.
    std::ofstream f(ctx->data_dir + "/bus-endpoint");
    f << p->bus.endpoint << "\n";
  }
  if (ctx->cfg.console.enabled) {
    auto c = start_console(sys, ctx, p->intake);
    if (auto* err = std::get_if<std::string>(&c)) {
      auto msg = *err;
      node stopped(std::move(p)); // stops what has started
      return msg;
    }
    p->console = std::get<console_handle>(std::move(c));
    ctx->log->info("console on http://{}/", p->console.address);
    std::ofstream f(ctx->data_dir + "/console-address");
    f << p->console.address << "\n";
  }
  // Federation: join each peer's auctions with this node's providers.
  for (auto& peer : ctx->cfg.peers) {
    auto l = start_peer_link(sys, ctx, p->intake, peer);
    if (auto* err = std::get_if<std::string>(&l)) {
      auto msg = *err;
      node stopped(std::move(p)); // stops what has started
      return msg;
    }
    p->peers.push_back(std::get<peer_link_handle>(std::move(l)));
  }
  ctx->log->info("node {} listening on {} (data dir {}, {} providers, {} jobs in the journal, {} "
                 "resumed)",
                 ctx->cfg.node_name, p->gateway.endpoint, ctx->data_dir, p->providers.size(),
                 jobs.size(), resumed);
  return std::unique_ptr<node>(new node(std::move(p)));
}

void node::stop() {
  auto& p = *impl_;
  if (p.stopped)
    return;
  p.stopped = true;
  for (auto& l : p.peers) {
    if (l.stop_io)
      l.stop_io(); // joins the link's I/O thread
    if (l.actor)
      caf::anon_send_exit(l.actor, caf::exit_reason::user_shutdown);
  }
  if (p.console.stop)
    p.console.stop(); // joins the HTTP thread
  if (p.console.actor)
    caf::anon_send_exit(p.console.actor, caf::exit_reason::user_shutdown);
  p.console = {}; // the last references to the (detached) console actor
  if (p.bus.stop)
    p.bus.stop(); // joins the bus I/O thread
  if (p.gateway.stop_io)
    p.gateway.stop_io(); // joins the I/O thread
  if (p.gateway.actor)
    caf::anon_send_exit(p.gateway.actor, caf::exit_reason::user_shutdown);
  for (auto& a : p.providers)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(p.intake, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(p.profiler, caf::exit_reason::user_shutdown);
  p.sys.reset();
}

} // namespace tender

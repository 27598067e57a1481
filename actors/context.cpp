#include "actors/context.hpp"

#include "models/retrainer.hpp"
#include "models/xgb_predictor.hpp"

#include <spdlog/spdlog.h>
#include <sys/random.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace tender {

std::string node_context::new_id(const char* prefix) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (epoch_.empty()) {
      unsigned char b[3] = {0, 0, 0};
      if (getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
        auto t = static_cast<unsigned>(clock());
        b[0] = t & 0xff, b[1] = (t >> 8) & 0xff, b[2] = (t >> 16) & 0xff;
      }
      char buf[8];
      std::snprintf(buf, sizeof buf, "%02x%02x%02x", b[0], b[1], b[2]);
      epoch_ = buf;
    }
  }
  return std::string(prefix) + "-" + epoch_ + "-" + std::to_string(++counter_);
}

prediction node_context::predict(const job_spec& spec, const resource_profile& measured) {
  std::lock_guard<std::mutex> g(mu_);
  const usec now = clock();
  auto p = predictor_->predict(spec, measured, now);
  predictor_->submitted(spec, now); // later jobs of the user see this one in flight
  return p;
}

void node_context::withdraw(const job_spec& spec) {
  std::lock_guard<std::mutex> g(mu_);
  predictor_->withdrawn(spec);
}

void node_context::observe(const finished_job& j) {
  std::lock_guard<std::mutex> g(mu_);
  predictor_->observe(j);
  history_.push_back(j);
}

namespace {

std::string current_model_pointer(const std::string& data_dir) {
  return data_dir + "/models/current";
}

} // namespace

void node_context::load_model() {
  std::string path;
  std::string source;
  if (cfg.models_runtime == "requested") {
    // The operator's choice: no model, not even one this node retrained.
    auto p = std::make_unique<requested_predictor>();
    std::lock_guard<std::mutex> g(mu_);
    for (auto& j : history_)
      p->observe(j);
    predictor_ = std::move(p);
    model_.source = "requested";
    model_.version = predictor_->version();
    return;
  }
  // A model this node retrained itself wins over the configured one.
  if (!data_dir.empty()) {
    std::ifstream f(current_model_pointer(data_dir));
    std::string line;
    if (f && std::getline(f, line) && !line.empty()) {
      path = data_dir + "/models/" + line;
      source = "retrained";
    }
  }
  if (path.empty() && !cfg.models_runtime.empty()) {
    path = cfg.models_runtime;
    source = path;
  }
  if (path.empty()) {
    std::lock_guard<std::mutex> g(mu_);
    model_.source = "baseline";
    model_.version = predictor_->version();
    return;
  }
  auto p = std::make_unique<xgb_predictor>(path);
  std::lock_guard<std::mutex> g(mu_);
  if (!p->model_usable()) {
    model_.load_error = p->load_error();
    model_.source = "baseline";
    if (log)
      log->warn("model: {}; predicting with the baseline instead", p->load_error());
  } else {
    model_.source = source;
    model_.load_error.clear();
    model_path_ = path;
    if (log)
      log->info("model: {} from {}", p->version(), path);
  }
  for (auto& j : history_)
    p->observe(j);
  predictor_ = std::move(p);
  model_.version = predictor_->version();
}

model_status node_context::model_info() {
  std::lock_guard<std::mutex> g(mu_);
  auto m = model_;
  m.version = predictor_->version();
  m.finished_jobs = static_cast<std::int64_t>(history_.size());
  return m;
}

model_status node_context::retrain() {
  std::lock_guard<std::mutex> one(retrain_mu_);
  if (cfg.models_runtime == "requested") {
    std::lock_guard<std::mutex> g(mu_);
    auto m = model_;
    m.last_retrain = "not retrained: [models] runtime = \"requested\" plans with requested times";
    m.version = predictor_->version();
    m.finished_jobs = static_cast<std::int64_t>(history_.size());
    return m;
  }
  std::vector<finished_job> jobs;
  runtime_model current;
  bool have_current = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    jobs = history_;
  }
  if (!model_path_.empty()) {
    std::string err;
    have_current = runtime_model::load(model_path_, current, err);
  }
  retrain_options opt;
  opt.min_jobs = static_cast<std::size_t>(std::max<std::int64_t>(20, cfg.models_retrain_min_jobs));
  runtime_model cand;
  auto out = retrain_runtime(jobs, have_current ? &current : nullptr, opt, cand);
  std::string saved_as;
  if (out.replaced) {
    namespace fs = std::filesystem;
    std::error_code ec;
    auto dir = data_dir + "/models";
    fs::create_directories(dir, ec);
    auto file = "runtime-" + cand.version().substr(cand.version().find(':') + 1) + ".json";
    std::string err;
    if (!cand.save(dir + "/" + file, err)) {
      out.replaced = false;
      out.reason = "kept the current model: the new one could not be saved: " + err;
    } else {
      // The pointer is replaced atomically, so a crash leaves the old or the new one.
      auto tmp = current_model_pointer(data_dir) + ".tmp";
      {
        std::ofstream f(tmp, std::ios::trunc);
        f << file << "\n";
      }
      fs::rename(tmp, current_model_pointer(data_dir), ec);
      saved_as = dir + "/" + file;
    }
  }
  std::lock_guard<std::mutex> g(mu_);
  model_.retrains++;
  model_.last_retrain_at = clock();
  model_.last_retrain = out.reason;
  model_.last_old_mae_s = out.old_mae_s;
  model_.last_new_mae_s = out.new_mae_s;
  if (out.replaced && !saved_as.empty()) {
    auto p = std::make_unique<xgb_predictor>(std::move(cand));
    for (auto& j : history_)
      p->observe(j);
    predictor_ = std::move(p);
    model_path_ = saved_as;
    model_.replaced++;
    model_.source = "retrained";
    model_.load_error.clear();
  }
  if (log)
    log->info("model retraining on {} finished jobs: {}", jobs.size(), out.reason);
  auto m = model_;
  m.version = predictor_->version();
  m.finished_jobs = static_cast<std::int64_t>(history_.size());
  return m;
}

void node_context::set_predictor(std::unique_ptr<predictor> p) {
  std::lock_guard<std::mutex> g(mu_);
  predictor_ = std::move(p);
}

scoring_config node_context::scoring() {
  std::lock_guard<std::mutex> g(mu_);
  return scoring_ ? *scoring_ : cfg.scoring;
}

void node_context::set_scoring(const scoring_config& w) {
  std::lock_guard<std::mutex> g(mu_);
  scoring_ = w;
}

double node_context::breach_probability(const std::string& provider) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = sla_.find(provider);
  if (it == sla_.end()) {
    std::pair<std::int64_t, std::int64_t> counts{0, 0};
    if (journal)
      for (auto& e : journal->sla_events(provider))
        (e.breach ? counts.first : counts.second)++;
    it = sla_.emplace(provider, counts).first;
  }
  return breach_posterior(it->second.first, it->second.second);
}

void node_context::record_sla(const std::string& provider, const std::string& kind, bool breach) {
  breach_probability(provider); // loads history first
  {
    std::lock_guard<std::mutex> g(mu_);
    auto& c = sla_[provider];
    (breach ? c.first : c.second)++;
  }
  if (journal)
    journal->save_sla_event(sla_event{provider, kind, breach, clock()});
}

} // namespace tender

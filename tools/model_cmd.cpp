#include "tools/model_cmd.hpp"

#include "models/evaluate.hpp"
#include "models/features.hpp"
#include "models/resource_model.hpp"
#include "models/runtime_model.hpp"
#include "models/swf.hpp"
#include "models/xgb_predictor.hpp"
#ifndef TENDER_MODEL_STANDALONE
#include "actors/journal.hpp"
#include "config/job_file.hpp"
#include "models/retrainer.hpp"
#endif

#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <unistd.h>

namespace tender {

namespace {

struct model_args {
  std::vector<std::string> swf;
  std::string out;
  double train_frac = 0.7;
  bool json = false;
  bool skip_malformed = false;
  std::size_t jobs = 100000;
  model_config model;
  std::size_t retrain_every = eval_options{}.retrain_every;
  std::size_t max_train_rows = eval_options{}.max_train_rows;
  std::size_t recal_window = eval_options{}.recal_window;
  std::string job_file;
  std::string model_file;
  std::vector<std::string> history; ///< node journals (journal.db or a data dir)
};

/// A progress bar on stderr (redrawn in place on a terminal, a few lines otherwise).
progress_fn progress_bar(const std::string& label) {
  bool tty = isatty(STDERR_FILENO) != 0;
  return [label, tty, last = -1](int done, int total) mutable {
    int pct = total > 0 ? done * 100 / total : 100;
    if (pct == last || (!tty && pct % 25 != 0 && pct != 100))
      return;
    last = pct;
    int w = 30, fill = pct * w / 100;
    std::fprintf(stderr, "%s%s [%s%s] %3d%%%s", tty ? "\r" : "", label.c_str(),
                 std::string(static_cast<std::size_t>(fill), '#').c_str(),
                 std::string(static_cast<std::size_t>(w - fill), '.').c_str(), pct,
                 tty && pct < 100 ? "" : "\n");
    std::fflush(stderr);
  };
}

bool load_records(const std::string& path, bool skip, std::vector<trace_job>& out) {
  swf_options o;
  o.on_malformed = skip ? swf_malformed::skip : swf_malformed::refuse;
  swf_trace t;
  std::string err;
  if (!read_swf(path, o, t, err)) {
    std::cerr << err << "\n";
    return false;
  }
  for (const auto& s : t.skipped)
    std::cerr << "skipped " << s << "\n";
  out = to_records(t);
  return true;
}

std::string stem(const std::string& path) {
  auto b = path.find_last_of('/');
  auto s = path.substr(b == std::string::npos ? 0 : b + 1);
  for (const char* ext : {".gz", ".swf"})
    if (s.size() > std::strlen(ext) && s.ends_with(ext))
      s.resize(s.size() - std::strlen(ext));
  return s;
}

int run_eval(const model_args& a) {
  std::vector<trace_job> jobs;
  if (!load_records(a.swf.front(), a.skip_malformed, jobs))
    return 2;
  eval_options o;
  o.train_frac = a.train_frac;
  o.model = a.model;
  o.retrain_every = a.retrain_every;
  o.max_train_rows = a.max_train_rows;
  o.recal_window = a.recal_window;
  eval_report r;
  r.trace = stem(a.swf.front());
  std::string err;
  if (!evaluate(jobs, o, r, err, progress_bar("training"))) {
    std::cerr << a.swf.front() << ": " << err << "\n";
    return 1;
  }
  // Memory peak and CPU against the VPA-style recommender (models/resource_model.hpp).
  resource_config rc;
  rc.train_frac = a.train_frac;
  resource_report rr;
  swf_options so;
  so.on_malformed = a.skip_malformed ? swf_malformed::skip : swf_malformed::refuse;
  if (!evaluate_swf_resources(a.swf.front(), so, rc, rr, err)) {
    std::cerr << err << "\n";
    return 1;
  }
  if (a.json) {
    auto j = r.to_json();
    j.update(rr.to_json());
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << r.table() << "\n" << rr.table();
  }
  return 0;
}

#ifndef TENDER_MODEL_STANDALONE
/// A node's finished jobs (state done, with start and finish) from its journal, as the
/// agent itself learns from them. `path` is a journal.db or the data dir holding one.
bool load_history(const std::string& path, std::vector<trace_job>& out) {
  std::string db = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    db = path + "/journal.db";
  if (!std::filesystem::exists(db, ec)) {
    std::cerr << path << ": no such journal (expected a journal.db or a node's data dir)\n";
    return false;
  }
  auto j = journal::open(db);
  if (auto* err = std::get_if<std::string>(&j)) {
    std::cerr << db << ": " << *err << "\n";
    return false;
  }
  std::vector<finished_job> done;
  for (auto& rec : std::get<std::unique_ptr<journal>>(j)->load_jobs()) {
    auto& s = rec.status;
    if (s.state != job_state::done || s.started_at <= 0 || s.finished_at <= s.started_at)
      continue;
    finished_job f;
    f.spec = rec.spec;
    f.submitted_at = s.submitted_at;
    f.runtime = s.finished_at - s.started_at;
    f.finished_at = s.finished_at;
    f.cpu_mean = s.cpu_used_mean;
    f.mem_peak = s.mem_used_peak;
    done.push_back(std::move(f));
  }
  out = history_records(done);
  return true;
}
#endif

int run_train(const model_args& a) {
  std::vector<feature_vector> x;
  std::vector<double> y;
  std::vector<std::string> names;
  if (a.swf.empty() && a.history.empty()) {
    std::cerr << "tender model train: give --swf FILE and/or --history DATA_DIR\n";
    return 2;
  }
#ifndef TENDER_MODEL_STANDALONE
  for (const auto& path : a.history) {
    std::vector<trace_job> jobs;
    if (!load_history(path, jobs))
      return 2;
    std::vector<feature_vector> xi;
    std::vector<double> yi;
    training_rows(jobs, xi, yi);
    std::cerr << path << ": " << xi.size() << " finished jobs\n";
    x.insert(x.end(), xi.begin(), xi.end());
    y.insert(y.end(), yi.begin(), yi.end());
    names.push_back("history:" + path);
  }
#endif
  for (const auto& path : a.swf) {
    std::vector<trace_job> jobs;
    if (!load_records(path, a.skip_malformed, jobs))
      return 2;
    std::vector<feature_vector> xi;
    std::vector<double> yi;
    training_rows(jobs, xi, yi);
    x.insert(x.end(), xi.begin(), xi.end());
    y.insert(y.end(), yi.begin(), yi.end());
    names.push_back(stem(path));
  }
  runtime_model m;
  std::string err;
  if (!runtime_model::train(x, y, a.model, m, err, progress_bar("training"))) {
    std::cerr << err << "\n";
    return 1;
  }
  m.metadata()["traces"] = names;
  if (!m.save(a.out, err)) {
    std::cerr << err << "\n";
    return 1;
  }
  std::cout << "wrote " << a.out << " (" << m.version() << ", " << x.size()
            << " jobs, 90% interval: q05 -" << m.static_calibration().lo90 << ", q95 +"
            << m.static_calibration().hi90 << " (" << m.static_calibration().mode()
            << " conformal))\n";
  return 0;
}

int run_bench(const model_args& a) {
  std::vector<trace_job> jobs;
  if (!load_records(a.swf.front(), a.skip_malformed, jobs))
    return 2;
  std::vector<feature_vector> x;
  std::vector<double> y;
  training_rows(jobs, x, y);
  // Repeat the trace's rows to reach the requested size.
  for (std::size_t i = 0; x.size() < a.jobs && i < 10 * a.jobs; ++i) {
    x.push_back(x[i]);
    y.push_back(y[i]);
  }
  x.resize(std::min(x.size(), a.jobs));
  y.resize(x.size());
  auto t0 = std::chrono::steady_clock::now();
  runtime_model m;
  std::string err;
  if (!runtime_model::train(x, y, a.model, m, err, progress_bar("training"))) {
    std::cerr << err << "\n";
    return 1;
  }
  double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int reps = 20000;
  runtime_estimate e;
  double sink = 0;
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) {
    m.predict(x[static_cast<std::size_t>(i) % x.size()], -1, e, err);
    sink += e.median;
  }
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t1).count() /
      reps;
  std::printf("training on %zu jobs: %.1f s\nprediction (one job, all boosters): %.2f us%s\n",
              x.size(), train_s, us, sink < 0 ? " " : "");
  return 0;
}

#ifndef TENDER_MODEL_STANDALONE
int run_predict(const model_args& a) {
  const usec now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto loaded = load_job_file(a.job_file, now);
  if (auto* e = std::get_if<config_error>(&loaded)) {
    std::cerr << e->to_string() << "\n";
    return 2;
  }
  auto& spec = std::get<job_spec>(loaded);
  xgb_predictor p(a.model_file);
  if (!p.model_usable())
    std::cerr << "model not used: " << p.load_error() << "; falling back to the baseline\n";
  auto pred = p.predict(spec, {}, now);
  auto rec = xgb_predictor::to_record(spec, now);
  job_history empty;
  auto x = empty.features(rec);
  if (a.json) {
    nlohmann::json f = nlohmann::json::object();
    for (std::size_t i = 0; i < n_features; ++i)
      if (!std::isnan(x[i]))
        f[feature_names()[i]] = x[i];
    std::cout << nlohmann::json{{"runtime_s", pred.runtime / 1e6},
                                {"runtime_lo_s", pred.runtime_lo / 1e6},
                                {"runtime_hi_s", pred.runtime_hi / 1e6},
                                {"model_version", pred.model_version},
                                {"basis", pred.basis},
                                {"features", f}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << "run time " << format_duration(pred.runtime) << ", 90% interval ["
            << format_duration(pred.runtime_lo) << ", " << format_duration(pred.runtime_hi)
            << "]\nmodel " << pred.model_version << "\n"
            << pred.basis << "\nfeatures:\n";
  for (std::size_t i = 0; i < n_features; ++i)
    if (!std::isnan(x[i]))
      std::cout << "  " << feature_names()[i] << " = " << x[i] << "\n";
  return 0;
}
#endif

} // namespace

void add_model_commands(CLI::App& app, std::function<int()>& action) {
  auto args = std::make_shared<model_args>();
  auto* model = app.add_subcommand("model", "Run-time models trained on SWF traces");
  model->require_subcommand(1);

  auto* eval = model->add_subcommand("eval", "Time-ordered evaluation against the baselines");
  eval->add_option("--swf", args->swf, "SWF trace (plain or gzip)")->required()->expected(1);
  eval->add_option("--train-frac", args->train_frac, "Share of jobs (by submit time) to train on")
      ->check(CLI::Range(0.05, 0.95))
      ->capture_default_str();
  eval->add_flag("--json", args->json, "Machine-readable output");
  eval->add_option("--rounds", args->model.rounds, "Boosting rounds")->capture_default_str();
  eval->add_option("--max-depth", args->model.max_depth, "Tree depth")->capture_default_str();
  eval->add_option("--eta", args->model.eta, "Learning rate")->capture_default_str();
  eval->add_option("--point-target", args->model.point_target,
                   "What the point model fits: anchor, auto, ratio, last2, seconds or log")
      ->capture_default_str();
  eval->add_option("--quantile-max-depth", args->model.quantile_max_depth,
                   "Tree depth of the quantile boosters")
      ->capture_default_str();
  eval->add_option("--quantile-rounds", args->model.quantile_rounds,
                   "Boosting rounds of each quantile booster")
      ->capture_default_str();
  eval->add_option("--quantile-eta", args->model.quantile_eta,
                   "Learning rate of the quantile boosters")
      ->capture_default_str();
  eval->add_option("--quantile-min-rows", args->model.quantile_min_rows,
                   "Fewest rows in a quantile booster's leaf")
      ->capture_default_str();
  eval->add_option("--conformal", args->model.conformal,
                   "Conformal scores: asymmetric, symmetric, asymmetric-scaled, symmetric-scaled")
      ->capture_default_str();
  eval->add_option("--recal-window", args->recal_window,
                   "Finished jobs kept for the online recalibration")
      ->capture_default_str();
  eval->add_option("--min-child-weight", args->model.min_child_weight, "Minimum leaf weight")
      ->capture_default_str();
  eval->add_option("--halflife", args->model.recency_halflife,
                   "Row weights halve every this many rows back (0 = off)")
      ->capture_default_str();
  eval->add_option("--max-train-rows", args->max_train_rows,
                   "Refits use at most this many recent jobs (0 = all)")
      ->capture_default_str();
  eval->add_option("--retrain-every", args->retrain_every,
                   "Refit the point model after this many test jobs (0 = never)")
      ->capture_default_str();
  eval->add_flag("--skip-malformed", args->skip_malformed,
                 "Skip malformed lines instead of refusing");
  eval->callback([&action, args] { action = [args] { return run_eval(*args); }; });

  auto* train = model->add_subcommand("train", "Train a model file on SWF traces");
  train->add_option("--swf", args->swf, "SWF traces (plain or gzip)");
#ifndef TENDER_MODEL_STANDALONE
  train->add_option("--history", args->history,
                    "A node's journal (journal.db or its data dir): its finished jobs");
#endif
  train->add_option("--out", args->out, "Model file to write (JSON)")->required();
  train->add_flag("--skip-malformed", args->skip_malformed,
                  "Skip malformed lines instead of refusing");
  train->callback([&action, args] { action = [args] { return run_train(*args); }; });

#ifndef TENDER_MODEL_STANDALONE
  auto* predict = model->add_subcommand("predict", "Predict a job file's run time with a model");
  predict->add_option("job", args->job_file, "Job file (TOML)")->required();
  predict->add_option("--model", args->model_file, "Model file from `tender model train`")
      ->required();
  predict->add_flag("--json", args->json, "Machine-readable output");
  predict->callback([&action, args] { action = [args] { return run_predict(*args); }; });
#endif

  CLI::App* bench = nullptr;
  for (auto* c : app.get_subcommands([](CLI::App* s) { return s->get_name() == "bench"; }))
    bench = c;
  if (!bench)
    bench = app.add_subcommand("bench", "Benchmarks");
  auto* bm = bench->add_subcommand("model", "Training time and prediction latency");
  bm->add_option("--swf", args->swf, "SWF trace whose rows are used")->required()->expected(1);
  bm->add_option("--jobs", args->jobs, "Training rows (the trace is repeated)")
      ->capture_default_str();
  bm->callback([&action, args] { action = [args] { return run_bench(*args); }; });
}

} // namespace tender

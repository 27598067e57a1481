#include "tools/usage_cmd.hpp"

#include "models/usage_replay.hpp"

#include <CLI/CLI.hpp>

#include <cmath>
#include <iostream>
#include <memory>

namespace tender {

namespace {

struct usage_args {
  std::string usage;
  std::string max;
  bool json = false;
  usage_replay_options opt;
  // The detector's windows, in minutes on the command line.
  double throttle_window_min = -1, size_window_min = -1, shrink_window_min = -1;
  bool no_forecast = false;
};

usec minutes_to_us(double m) {
  return static_cast<usec>(std::llround(m * 60.0 * sec_us));
}

int run_replay_usage(usage_args a) {
  if (a.throttle_window_min >= 0)
    a.opt.tender.throttle_window = minutes_to_us(a.throttle_window_min);
  if (a.size_window_min >= 0)
    a.opt.tender.cpu_size_window = minutes_to_us(a.size_window_min);
  if (a.shrink_window_min >= 0)
    a.opt.tender.shrink_window = minutes_to_us(a.shrink_window_min);
  if (a.no_forecast)
    a.opt.tender.forecast.enabled = false;
  usage_series mean, peak;
  std::string err;
  if (!read_usage_series(a.usage, mean, err)) {
    std::cerr << err << "\n";
    return 2;
  }
  if (!a.max.empty() && !read_usage_series(a.max, peak, err)) {
    std::cerr << err << "\n";
    return 2;
  }
  usage_replay_report r;
  if (!replay_usage(mean, a.max.empty() ? nullptr : &peak, a.opt, r, err)) {
    std::cerr << err << "\n";
    return 2;
  }
  if (a.json)
    std::cout << r.to_json().dump(2) << "\n";
  else
    std::cout << r.table();
  return 0;
}

} // namespace

void add_usage_commands(CLI::App& app, std::function<int()>& action) {
  auto args = std::make_shared<usage_args>();
  auto& o = args->opt;
  auto& t = o.tender;
  auto* c = app.add_subcommand("replay-usage",
                               "Real usage series under static, VPA-style and tender's allocation");
  c->add_option("--usage", args->usage, "Mean CPU % per reading (CSV, plain or gzip)")->required();
  c->add_option("--max", args->max,
                "Peak CPU % per reading, same VMs (shortage is counted "
                "against it)");
  c->add_flag("--json", args->json, "Machine-readable output");
  c->add_option("--cores", o.vm_cores, "Cores of a VM: p % = p * cores * 10 millicores")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--warmup", o.warmup, "Readings of profile before scoring")->capture_default_str();
  c->add_option("--first-vm", o.first_vm, "First VM (column) to replay")->capture_default_str();
  c->add_option("--vms", o.vms, "How many VMs to replay (default all)");
  c->add_option("--readings", o.readings, "Replay only the first N readings (default all)");
  c->add_flag("--vpa-peak-samples", o.vpa_peak_samples,
              "Feed the VPA histogram the peak series instead of the mean");
  c->add_flag("--restarts", o.tender_restarts,
              "Count every tender resize as a restart (disruptive)");
  c->add_option("--throttle-window", args->throttle_window_min,
                "tender: minutes of throttling looked at (default " +
                    std::to_string(t.throttle_window / (60 * sec_us)) + ")");
  c->add_option("--throttle-share", t.throttle_share, "tender: share throttled to grow")
      ->capture_default_str();
  c->add_option("--grow-step", t.grow_step, "tender: least growth factor when throttled")
      ->capture_default_str();
  c->add_option("--cpu-quantile", t.cpu_quantile, "tender: quantile of recent peaks covered")
      ->capture_default_str();
  c->add_option("--cpu-margin", t.cpu_margin, "tender: headroom over that quantile")
      ->capture_default_str();
  c->add_option("--size-window", args->size_window_min,
                "tender: minutes of peaks a grown size covers (default " +
                    std::to_string(t.cpu_size_window / (60 * sec_us)) + ")");
  c->add_option("--shrink-window", args->shrink_window_min,
                "tender: minutes of low use before shrinking (default " +
                    std::to_string(t.shrink_window / (60 * sec_us)) + ")");
  c->add_option("--min-gain", t.min_gain, "tender: no change for less than this share")
      ->capture_default_str();
  c->add_flag("--no-forecast", args->no_forecast,
              "tender: the reactive rules only (no forecast sizer)");
  c->add_option("--short-cost", t.forecast.short_cost,
                "tender forecast: millicores of headroom one short interval is worth")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  c->add_option("--level-window", t.forecast.level_window,
                "tender forecast: intervals the level is the median of")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--residual-window", t.forecast.residual_window,
                "tender forecast: intervals of residuals the headroom is chosen on")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--repeats", t.forecast.repeats,
                "tender forecast: periods a rise must have recurred in")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--linear-forgetting", t.forecast.linear_forgetting,
                "tender forecast: one online linear forecaster per forgetting factor "
                "(0 < f <= 1; --no-linear: none)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_flag_callback(
      "--no-linear", [&t] { t.forecast.linear_forgetting.clear(); },
      "tender forecast: no online linear forecaster");
  c->add_option("--scale-smoothing", t.forecast.scale_smoothing,
                "tender forecast: weight of the newest |residual| in the error scale the "
                "headroom is relative to (0: headroom in millicores, unscaled)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_option("--throttled-step", t.forecast.throttled_step,
                "tender forecast: least growth after an interval at the limit")
      ->check(CLI::Range(1.0, 10.0))
      ->capture_default_str();
  c->callback([&action, args] { action = [args] { return run_replay_usage(*args); }; });
}

} // namespace tender

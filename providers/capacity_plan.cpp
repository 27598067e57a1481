#include "providers/capacity_plan.hpp"

#include <algorithm>

namespace tender {

bool capacity_plan::add_running(const std::string& id, const plan_amount& amount, usec start,
                                usec predicted_end) {
  if (amount.negative() || entries_.count(id) || !amount.fits_in(free_now_))
    return false;
  entries_.emplace(id, entry{amount, start, predicted_end, kind::running});
  free_now_ -= amount;
  return true;
}

bool capacity_plan::add_reservation(const std::string& id, const plan_amount& amount, usec start,
                                    usec end) {
  if (amount.negative() || end <= start || entries_.count(id) || !fits(amount, start, end - start))
    return false;
  entries_.emplace(id, entry{amount, start, end, kind::reserved});
  return true;
}

bool capacity_plan::start_reserved(const std::string& id, usec now, usec predicted_end) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.what != kind::reserved)
    return false;
  // The reservation's own capacity is free for it: check without it.
  entry saved = it->second;
  entries_.erase(it);
  if (!saved.amount.fits_in(free_now_)) {
    entries_.emplace(id, saved);
    return false;
  }
  entries_.emplace(id, entry{saved.amount, now, predicted_end, kind::running});
  free_now_ -= saved.amount;
  return true;
}

bool capacity_plan::set_end(const std::string& id, usec end) {
  auto it = entries_.find(id);
  if (it == entries_.end())
    return false;
  it->second.end = end;
  return true;
}

bool capacity_plan::resize(const std::string& id, const plan_amount& amount, usec now) {
  auto it = entries_.find(id);
  if (it == entries_.end() || amount.negative())
    return false;
  entry saved = it->second;
  if (saved.what == kind::running)
    free_now_ += saved.amount;
  entries_.erase(it);
  const bool running = saved.what == kind::running;
  const usec from = running ? now : saved.start;
  const usec until = std::max(saved.end, from + 1);
  const bool ok = (!running || amount.fits_in(free_now_)) && fits(amount, from, until - from);
  entry e = saved;
  if (ok)
    e.amount = amount;
  entries_.emplace(id, e);
  if (e.what == kind::running)
    free_now_ -= e.amount;
  return ok;
}

bool capacity_plan::remove(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end())
    return false;
  if (it->second.what == kind::running)
    free_now_ += it->second.amount;
  entries_.erase(it);
  return true;
}

std::vector<std::string> capacity_plan::expire(usec now, usec grace) {
  std::vector<std::string> gone;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.what == kind::reserved && it->second.start + grace <= now) {
      gone.push_back(it->first);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  std::sort(gone.begin(), gone.end());
  return gone;
}

const capacity_plan::entry* capacity_plan::find(const std::string& id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<capacity_plan::step> capacity_plan::profile(usec from) const {
  // Changes in use after `from`: + at a reservation's start, - at every end.
  std::vector<std::pair<usec, plan_amount>> changes;
  changes.reserve(entries_.size() * 2);
  plan_amount used;
  for (const auto& [id, e] : entries_) {
    if (e.end <= from)
      continue;
    if (e.what == kind::running) {
      used += e.amount;
      changes.emplace_back(e.end, plan_amount{} - e.amount);
    } else {
      if (e.start <= from)
        used += e.amount;
      else
        changes.emplace_back(e.start, e.amount);
      changes.emplace_back(e.end, plan_amount{} - e.amount);
    }
  }
  std::sort(changes.begin(), changes.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<step> steps;
  steps.reserve(changes.size() + 1);
  steps.push_back({from, capacity_ - used});
  for (const auto& [at, delta] : changes) {
    used += delta;
    if (steps.back().at == at)
      steps.back().free = capacity_ - used;
    else
      steps.push_back({at, capacity_ - used});
  }
  return steps;
}

std::optional<usec> capacity_plan::earliest(const plan_amount& amount, usec duration,
                                            usec from) const {
  if (!amount.fits_in(capacity_) || amount.negative())
    return std::nullopt;
  const auto steps = profile(from);
  usec candidate = from;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const bool last = i + 1 == steps.size();
    if (!amount.fits_in(steps[i].free)) {
      if (last)
        return std::nullopt; // cannot happen: the last step is the empty plan
      candidate = steps[i + 1].at;
      continue;
    }
    if (last || steps[i + 1].at >= candidate + duration)
      return candidate;
  }
  return std::nullopt;
}

bool capacity_plan::fits(const plan_amount& amount, usec start, usec duration) const {
  if (!amount.fits_in(capacity_) || amount.negative())
    return false;
  const auto steps = profile(start);
  for (const auto& s : steps) {
    if (s.at >= start + duration)
      break;
    if (!amount.fits_in(s.free))
      return false;
  }
  return true;
}

} // namespace tender

#include "providers/backfill.hpp"

#include <algorithm>

namespace tender {

const char* to_string(backfill_order o) {
  return o == backfill_order::fcfs ? "fcfs" : "shortest-first";
}

easy_scheduler::easy_scheduler(plan_amount capacity, backfill_order order)
    : capacity_(capacity), order_(order), free_(capacity) {}

std::string easy_scheduler::submit(const waiting_job& j) {
  if (by_key_.count(j.key) || running_.count(j.key))
    return "job " + std::to_string(j.key) + " is already known";
  if (j.amount.negative())
    return "job " + std::to_string(j.key) + ": negative amount";
  if (!j.amount.fits_in(capacity_))
    return "job " + std::to_string(j.key) + " wants more than the whole capacity";
  if (j.estimate <= 0)
    return "job " + std::to_string(j.key) + ": planned run time must be positive";
  waiting_job q = j;
  if (q.order_estimate <= 0)
    q.order_estimate = q.estimate;
  const place seq{q.submitted, next_seq_++};
  by_key_.emplace(q.key, seq);
  by_estimate_.emplace(q.order_estimate, seq);
  queue_.emplace(seq, q);
  return {};
}

bool easy_scheduler::cancel(std::uint64_t key) {
  auto k = by_key_.find(key);
  if (k == by_key_.end())
    return false;
  auto q = queue_.find(k->second);
  by_estimate_.erase({q->second.order_estimate, q->first});
  queue_.erase(q);
  by_key_.erase(k);
  if (head_ && head_->key == key)
    head_.reset();
  return true;
}

void easy_scheduler::start_job(place seq, usec now, bool backfilled,
                               std::vector<start>& out) {
  auto q = queue_.find(seq);
  const waiting_job& j = q->second;
  const usec end = now + j.estimate;
  running_.emplace(j.key, run_rec{j.amount, now, end});
  by_end_.emplace(end, j.key);
  free_ -= j.amount;
  out.push_back({j.key, end, backfilled});
  by_estimate_.erase({j.order_estimate, seq});
  by_key_.erase(j.key);
  queue_.erase(q);
}

std::vector<easy_scheduler::start> easy_scheduler::schedule(usec now) {
  std::vector<start> out;
  head_.reset();
  while (!queue_.empty() && queue_.begin()->second.amount.fits_in(free_))
    start_job(queue_.begin()->first, now, false, out);
  if (queue_.empty())
    return out;

  // The head's reservation: walk running jobs by planned end until it fits.
  const auto& [head_seq, head] = *queue_.begin();
  plan_amount f = free_;
  usec shadow = now;
  for (auto it = by_end_.begin(); it != by_end_.end();) {
    const usec at = std::max(it->first, now + 1);
    // Every job ending at the same instant frees its capacity at once.
    for (; it != by_end_.end() && std::max(it->first, now + 1) == at; ++it)
      f += running_.at(it->second).amount;
    if (head.amount.fits_in(f)) {
      shadow = at;
      break;
    }
  }
  plan_amount extra = f - head.amount;
  head_ = reservation{head.key, shadow, extra};

  auto consider = [&](place seq) {
    const waiting_job& j = queue_.at(seq);
    if (!j.amount.fits_in(free_))
      return;
    if (now + j.estimate <= shadow) {
      start_job(seq, now, true, out);
    } else if (j.amount.fits_in(extra)) {
      extra -= j.amount;
      start_job(seq, now, true, out);
    }
  };
  auto exhausted = [&] { return free_.cpu <= 0 && free_.memory <= 0 && free_.gpus <= 0; };
  if (order_ == backfill_order::fcfs) {
    for (auto it = std::next(queue_.begin()); it != queue_.end() && !exhausted();) {
      const place seq = it->first;
      ++it; // `consider` may erase `seq`
      consider(seq);
    }
  } else {
    for (auto it = by_estimate_.begin(); it != by_estimate_.end() && !exhausted();) {
      const place seq = it->second;
      ++it;
      if (seq != head_seq)
        consider(seq);
    }
  }
  head_->extra = extra;
  return out;
}

bool easy_scheduler::add_running(std::uint64_t key, const plan_amount& amount, usec start,
                                 usec planned_end) {
  if (by_key_.count(key) || running_.count(key) || amount.negative() || !amount.fits_in(free_))
    return false;
  running_.emplace(key, run_rec{amount, start, planned_end});
  by_end_.emplace(planned_end, key);
  free_ -= amount;
  return true;
}

bool easy_scheduler::finish(std::uint64_t key) {
  auto it = running_.find(key);
  if (it == running_.end())
    return false;
  by_end_.erase({it->second.end, key});
  free_ += it->second.amount;
  running_.erase(it);
  return true;
}

std::vector<std::uint64_t> easy_scheduler::overdue(usec now) const {
  std::vector<std::uint64_t> out;
  for (auto it = by_end_.begin(); it != by_end_.end() && it->first <= now; ++it)
    out.push_back(it->second);
  return out;
}

bool easy_scheduler::correct(std::uint64_t key, usec planned_end) {
  auto it = running_.find(key);
  if (it == running_.end())
    return false;
  by_end_.erase({it->second.end, key});
  it->second.end = planned_end;
  by_end_.emplace(planned_end, key);
  return true;
}

bool easy_scheduler::resize(std::uint64_t key, const plan_amount& amount) {
  auto it = running_.find(key);
  if (it == running_.end() || amount.negative())
    return false;
  plan_amount room = free_ + it->second.amount;
  if (!amount.fits_in(room))
    return false;
  free_ = room - amount;
  it->second.amount = amount;
  return true;
}

std::optional<usec> easy_scheduler::next_planned_end() const {
  if (by_end_.empty())
    return std::nullopt;
  return by_end_.begin()->first;
}

std::vector<easy_scheduler::planned> easy_scheduler::projection(usec now) const {
  std::vector<planned> out;
  capacity_plan p(capacity_);
  std::vector<std::pair<usec, std::uint64_t>> runs(by_end_.begin(), by_end_.end());
  for (const auto& [end, key] : runs) {
    const run_rec& r = running_.at(key);
    p.add_running(std::to_string(key), r.amount, r.start, std::max(end, now + 1));
    out.push_back({key, planned::kind::running, r.amount, r.start, std::max(end, now + 1)});
  }
  bool first = true;
  for (const auto& [seq, j] : queue_) {
    auto at = p.earliest(j.amount, j.estimate, now);
    if (!at)
      continue; // cannot happen: submit refuses what exceeds the capacity
    p.add_reservation(std::to_string(j.key), j.amount, *at, *at + j.estimate);
    out.push_back({j.key, first ? planned::kind::reserved : planned::kind::projected, j.amount, *at,
                   *at + j.estimate});
    first = false;
  }
  return out;
}

capacity_plan easy_scheduler::plan_of(const plan_amount& capacity,
                                      const std::vector<planned>& projection) {
  capacity_plan p(capacity);
  for (const auto& e : projection) {
    if (e.what == planned::kind::running)
      p.add_running(std::to_string(e.key), e.amount, e.start, e.end);
    else
      p.add_reservation(std::to_string(e.key), e.amount, e.start, e.end);
  }
  return p;
}

std::optional<usec> easy_scheduler::projected_start(const plan_amount& amount, usec estimate,
                                                    usec now) const {
  if (!amount.fits_in(capacity_) || amount.negative())
    return std::nullopt;
  return plan(now).earliest(amount, std::max<usec>(estimate, 1), now);
}

} // namespace tender

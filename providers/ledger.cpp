#include "providers/ledger.hpp"

#include <algorithm>

namespace tender {

std::string format_cores(millicores m) {
  if (m < 0)
    return "-" + format_cores(-m);
  std::string s = std::to_string(m / 1000);
  if (auto frac = m % 1000; frac != 0) {
    std::string f = std::to_string(1000 + frac).substr(1);
    while (f.back() == '0')
      f.pop_back();
    s += "." + f;
  }
  return s;
}

namespace {

void add(resources& to, const resources& r) {
  to.cpu += r.cpu;
  to.memory += r.memory;
  to.gpus += r.gpus;
}

void sub(resources& from, const resources& r) {
  from.cpu -= r.cpu;
  from.memory -= r.memory;
  from.gpus -= r.gpus;
}

bool negative(const resources& r) {
  return r.cpu < 0 || r.memory < 0 || r.gpus < 0;
}

bool fail(std::string* why, std::string reason) {
  if (why)
    *why = std::move(reason);
  return false;
}

} // namespace

std::string shortfall(const resources& want, const resources& free) {
  if (want.cpu > free.cpu)
    return "not enough cpu: want " + format_cores(want.cpu) + " cores, free " +
           format_cores(free.cpu);
  if (want.memory > free.memory)
    return "not enough memory: want " + format_bytes(want.memory) + ", free " +
           format_bytes(free.memory);
  if (want.gpus > free.gpus)
    return "not enough GPUs: want " + std::to_string(want.gpus) + ", free " +
           std::to_string(free.gpus);
  return {};
}

ledger::ledger(const resources& capacity) : capacity_(capacity) {
  held_.gpu_type = committed_.gpu_type = capacity.gpu_type;
  held_.gpu_memory = committed_.gpu_memory = capacity.gpu_memory;
}

void ledger::sweep(usec now) {
  for (auto it = holds_.begin(); it != holds_.end();) {
    if (it->second.expires <= now) {
      sub(held_, it->second.amount);
      expired_.push_back(std::move(it->second));
      it = holds_.erase(it);
    } else {
      ++it;
    }
  }
}

bool ledger::try_hold(const std::string& offer_id, const resources& amount, usec now, usec ttl,
                      std::string* why) {
  sweep(now);
  if (by_offer_.count(offer_id) || holds_.count(offer_id))
    return true;
  if (negative(amount) || ttl <= 0)
    return fail(why, "invalid hold: negative amount or lifetime");
  if (auto s = shortfall(amount, free()); !s.empty())
    return fail(why, std::move(s));
  holds_.emplace(offer_id, hold{offer_id, amount, now + ttl});
  add(held_, amount);
  return true;
}

bool ledger::confirm(const std::string& offer_id, const std::string& allocation_id, usec now,
                     std::string* why) {
  sweep(now);
  if (auto it = by_offer_.find(offer_id); it != by_offer_.end()) {
    if (it->second == allocation_id)
      return true;
    return fail(why, "offer " + offer_id + " is already allocation " + it->second);
  }
  auto h = holds_.find(offer_id);
  if (h == holds_.end())
    return fail(why, "no live hold for offer " + offer_id);
  if (allocations_.count(allocation_id))
    return fail(why, "allocation id " + allocation_id + " is taken");
  sub(held_, h->second.amount);
  add(committed_, h->second.amount);
  allocations_.emplace(allocation_id, commitment{allocation_id, offer_id, h->second.amount});
  by_offer_.emplace(offer_id, allocation_id);
  holds_.erase(h);
  return true;
}

bool ledger::commit(const std::string& allocation_id, const std::string& offer_id,
                    const resources& amount, std::string* why) {
  if (allocations_.count(allocation_id))
    return true;
  if (!offer_id.empty() && (by_offer_.count(offer_id) || holds_.count(offer_id)))
    return fail(why, "offer " + offer_id + " is already held or allocated");
  if (negative(amount))
    return fail(why, "invalid allocation: negative amount");
  if (auto s = shortfall(amount, free()); !s.empty())
    return fail(why, std::move(s));
  add(committed_, amount);
  allocations_.emplace(allocation_id, commitment{allocation_id, offer_id, amount});
  if (!offer_id.empty())
    by_offer_.emplace(offer_id, allocation_id);
  return true;
}

bool ledger::release(const std::string& id) {
  if (auto h = holds_.find(id); h != holds_.end()) {
    sub(held_, h->second.amount);
    holds_.erase(h);
    return true;
  }
  auto a = allocations_.find(id);
  if (a == allocations_.end()) {
    auto o = by_offer_.find(id);
    if (o == by_offer_.end())
      return false;
    a = allocations_.find(o->second);
  }
  sub(committed_, a->second.amount);
  by_offer_.erase(a->second.offer_id);
  allocations_.erase(a);
  return true;
}

std::vector<ledger::hold> ledger::expire(usec now) {
  sweep(now);
  std::vector<hold> out;
  out.swap(expired_);
  return out;
}

bool ledger::resize(const std::string& id, const resources& amount, std::string* why) {
  if (negative(amount))
    return fail(why, "invalid size: negative amount");
  resources* current = nullptr;
  resources* total = nullptr;
  if (auto h = holds_.find(id); h != holds_.end()) {
    current = &h->second.amount;
    total = &held_;
  } else if (auto a = allocations_.find(id); a != allocations_.end()) {
    current = &a->second.amount;
    total = &committed_;
  } else {
    return fail(why, "no hold or allocation " + id);
  }
  resources room = free();
  add(room, *current);
  if (auto s = shortfall(amount, room); !s.empty())
    return fail(why, std::move(s));
  sub(*total, *current);
  add(*total, amount);
  *current = amount;
  return true;
}

resources ledger::free() const {
  resources r = capacity_;
  sub(r, held_);
  sub(r, committed_);
  return r;
}

double ledger::utilisation() const {
  auto share = [](std::int64_t used, std::int64_t cap) {
    return cap > 0 ? static_cast<double>(used) / static_cast<double>(cap) : 0.0;
  };
  resources used = held_;
  add(used, committed_);
  double u = std::max({share(used.cpu, capacity_.cpu), share(used.memory, capacity_.memory),
                       share(used.gpus, capacity_.gpus)});
  return std::clamp(u, 0.0, 1.0);
}

const ledger::hold* ledger::find_hold(const std::string& offer_id) const {
  auto it = holds_.find(offer_id);
  return it == holds_.end() ? nullptr : &it->second;
}

const ledger::commitment* ledger::find_allocation(const std::string& allocation_id) const {
  auto it = allocations_.find(allocation_id);
  return it == allocations_.end() ? nullptr : &it->second;
}

} // namespace tender

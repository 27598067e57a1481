#include "providers/leasing.hpp"

#include "providers/gpu_oom.hpp"

#include <algorithm>
#include <fstream>

namespace tender {

namespace {

constexpr std::size_t max_remembered_expiries = 4096;

/// The last `max` bytes of a file ("" when it cannot be read).
std::string read_tail(const std::string& path, std::size_t max) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in)
    return {};
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > static_cast<std::streamoff>(max)
                                ? size - static_cast<std::streamoff>(max)
                                : 0;
  in.seekg(from);
  std::string out(static_cast<std::size_t>(size - from), '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

error lease_error(std::string message) {
  error e;
  e.code = "lease";
  e.message = std::move(message);
  e.type = "launch";
  e.field = "lease_token";
  return e;
}

__extension__ using i128 = __int128;

} // namespace

bool same_token(const std::string& a, const std::string& b) {
  const std::size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() != b.size() ? 1u : 0u;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

leasing_provider::leasing_provider(provider_config cfg, const resources& capacity, executor& exec,
                                   token_source tokens, usec lease_ttl)
    : cfg_(std::move(cfg)), book_(capacity), exec_(&exec), tokens_(std::move(tokens)),
      lease_ttl_(lease_ttl) {
  if (!tokens_)
    tokens_ = random_token;
}

leasing_provider::leasing_provider(provider_config cfg, const resources& capacity,
                                   std::string run_root, token_source tokens, usec lease_ttl)
    : leasing_provider(std::move(cfg), capacity, std::make_unique<executor>(std::move(run_root)),
                       std::move(tokens), lease_ttl) {}

leasing_provider::leasing_provider(provider_config cfg, const resources& capacity,
                                   std::unique_ptr<executor> exec, token_source tokens,
                                   usec lease_ttl)
    : cfg_(std::move(cfg)), book_(capacity), owned_exec_(std::move(exec)),
      exec_(owned_exec_.get()), tokens_(std::move(tokens)), lease_ttl_(lease_ttl) {
  if (!tokens_)
    tokens_ = random_token;
}

leasing_provider::~leasing_provider() = default;

provider_info leasing_provider::info(usec now) const {
  provider_info i;
  if (plan_) {
    i.plan_at = now;
    i.plan_horizon = horizon_;
    const auto projection = plan_->projection(now);
    for (const auto& e : projection) {
      auto a = alloc_of_key_.find(e.key);
      if (a == alloc_of_key_.end())
        continue;
      const alloc_record& rec = allocs_.at(a->second);
      using k = easy_scheduler::planned::kind;
      i.plan.push_back({rec.alloc.job_id, rec.alloc.allocation_id,
                        e.what == k::running    ? "running"
                        : e.what == k::reserved ? "reserved"
                                                : "waiting",
                        rec.alloc.granted, e.start, e.end});
    }
    // Free capacity over time; the last step lasts forever. Kept short for people.
    constexpr std::size_t max_steps = 64;
    for (const auto& st : easy_scheduler::plan_of(plan_->capacity(), projection).profile(now)) {
      if (i.free_over_time.size() == max_steps)
        break;
      resources f;
      f.cpu = st.free.cpu;
      f.memory = st.free.memory;
      f.gpus = static_cast<std::int32_t>(st.free.gpus);
      f.gpu_type = book_.capacity().gpu_type;
      i.free_over_time.push_back({st.at, f});
    }
  }
  i.name = cfg_.name;
  i.kind = cfg_.kind;
  i.capacity = book_.capacity();
  i.free = book_.free();
  i.offers = offers_made_;
  i.wins = wins_;
  i.gpu_types = describe().gpu_types;
  return i;
}

offer& leasing_provider::remember(offer o, const resource_request& req, usec runtime, usec now,
                                  usec runtime_hi) {
  // job/provider/rROUND/nonce-counter, built in place (one allocation, not seven).
  const auto round = std::to_string(req.round), count = std::to_string(++counter_);
  std::string& id = o.offer_id;
  id.clear();
  id.reserve(req.job_id.size() + cfg_.name.size() + round.size() + nonce_.size() +
             count.size() + 5);
  id.append(req.job_id).append("/").append(cfg_.name).append("/r").append(round);
  id.append("/").append(nonce_).append("-").append(count);
  o.job_id = req.job_id;
  o.auction_id = req.auction_id;
  o.round = req.round;
  o.provider = cfg_.name;
  o.valid_until = std::max(now, req.reply_by) + offer_validity;
  ++offers_made_;
  offer_expiry_.emplace_back(o.valid_until, counter_);
  open_of_auction_[o.auction_id].push_back(counter_);
  auto& rec = offers_[counter_];
  rec.o = std::move(o);
  rec.runtime = runtime;
  rec.runtime_hi = runtime_hi;
  return rec.o;
}

void leasing_provider::plan_ahead(usec horizon) {
  horizon_ = horizon;
  if (!plan_)
    plan_ =
        std::make_unique<easy_scheduler>(plan_amount::of(book_.capacity()), backfill_order::fcfs);
}

std::optional<usec> leasing_provider::projected_start(const resources& r, usec runtime,
                                                      usec now) const {
  if (!plan_)
    return std::nullopt;
  return plan_->projected_start(plan_amount::of(r), std::max<usec>(runtime, 1), now);
}

void leasing_provider::run_plan(usec now, std::vector<usage_report>& out) {
  if (!plan_)
    return;
  // A job that outlives its plan: out to its interval's upper end, then doubling.
  for (std::uint64_t key : plan_->overdue(now)) {
    auto a = alloc_of_key_.find(key);
    if (a == alloc_of_key_.end())
      continue;
    const alloc_record& rec = allocs_.at(a->second);
    const usec since = rec.started_at > 0 ? rec.started_at : now;
    const usec elapsed = now - since;
    usec planned = rec.runtime_hi > elapsed + sec_us ? rec.runtime_hi
                                                     : std::max(2 * elapsed, elapsed + 60 * sec_us);
    plan_->correct(key, since + planned);
  }
  std::vector<std::string> failed;
  for (const auto& st : plan_->schedule(now)) {
    auto a = alloc_of_key_.find(st.key);
    if (a == alloc_of_key_.end())
      continue;
    plan_started(allocs_.at(a->second), now, out, failed);
  }
  for (auto& id : failed)
    forget(id);
}

void leasing_provider::plan_started(alloc_record& rec, usec now, std::vector<usage_report>& out,
                                    std::vector<std::string>& failed) {
  if (rec.state != phase::waiting)
    return; // entered the plan already holding its capacity
  std::string why;
  rec.alloc.start_at = now;
  if (rec.have_launch) {
    if (!book_.commit(rec.alloc.allocation_id, rec.alloc.offer_id, rec.alloc.granted, &why)) {
      out.push_back(final_report(rec, -1, "plan and ledger disagree: " + why, now));
      failed.push_back(rec.alloc.allocation_id);
      return;
    }
    launch l = rec.pending_launch;
    if (auto err = launch_now(rec, l, now)) {
      out.push_back(final_report(rec, -1, "launch failed: " + *err, now));
      book_.release(rec.alloc.allocation_id);
      failed.push_back(rec.alloc.allocation_id);
    }
    return;
  }
  // Its turn has come before its launch: hold the capacity for one lease.
  if (!book_.try_hold(rec.alloc.offer_id, rec.alloc.granted, now, lease_ttl_, &why)) {
    out.push_back(final_report(rec, -1, "plan and ledger disagree: " + why, now));
    failed.push_back(rec.alloc.allocation_id);
    return;
  }
  rec.state = phase::leased;
  rec.alloc.lease_expires = now + lease_ttl_;
}

decline leasing_provider::declined(const resource_request& req, std::string reason) const {
  decline d;
  d.job_id = req.job_id;
  d.auction_id = req.auction_id;
  d.provider = cfg_.name;
  d.reason = std::move(reason);
  return d;
}

void leasing_provider::tidy(usec now) {
  for (auto& gone : book_.expire(now)) {
    auto it = alloc_of_offer_.find(gone.offer_id);
    if (it == alloc_of_offer_.end())
      continue;
    const std::string alloc_id = it->second;
    forget(alloc_id);
    expired_.insert(alloc_id);
    expired_order_.push_back(alloc_id);
    if (expired_order_.size() > max_remembered_expiries) {
      expired_.erase(expired_order_.front());
      expired_order_.pop_front();
    }
  }
  // Reservations in the plan whose launch never came.
  std::vector<std::string> orphaned;
  for (const auto& [id, rec] : allocs_)
    if (rec.state == phase::waiting && !rec.have_launch && rec.alloc.lease_expires <= now)
      orphaned.push_back(id);
  for (const auto& id : orphaned) {
    // Said out loud: whoever still waits for this job learns it will not run here.
    queued_.push_back(final_report(allocs_.at(id), -1,
                                   "reservation expired: no launch by " +
                                       format_time(allocs_.at(id).alloc.lease_expires),
                                   now));
    forget(id);
    expired_.insert(id);
    expired_order_.push_back(id);
  }
  while (!offer_expiry_.empty() && offer_expiry_.front().first < now) {
    auto it = offers_.find(offer_expiry_.front().second);
    if (it != offers_.end() && it->second.o.valid_until < now) {
      unlist(it->second.o.auction_id, it->first);
      offers_.erase(it);
    }
    offer_expiry_.pop_front();
  }
  while (!refused_expiry_.empty() && refused_expiry_.begin()->first < now) {
    auto it = refused_.find(refused_expiry_.begin()->second);
    if (it != refused_.end() && it->second.second < now)
      refused_.erase(it);
    refused_expiry_.erase(refused_expiry_.begin());
  }
}

std::unordered_map<std::uint64_t, leasing_provider::offer_record>::iterator
leasing_provider::find_offer(const std::string& offer_id) {
  const auto dash = offer_id.rfind('-');
  if (dash == std::string::npos)
    return offers_.end();
  const std::size_t digits = offer_id.size() - dash - 1;
  if (digits == 0 || digits > 19) // any 19 digits fit in 64 bits; 20 may not
    return offers_.end();
  std::uint64_t key = 0;
  for (std::size_t i = dash + 1; i < offer_id.size(); ++i) {
    const char c = offer_id[i];
    if (c < '0' || c > '9')
      return offers_.end();
    key = key * 10 + static_cast<std::uint64_t>(c - '0');
  }
  auto it = offers_.find(key);
  return it != offers_.end() && it->second.o.offer_id == offer_id ? it : offers_.end();
}

void leasing_provider::unlist(const std::string& auction_id, std::uint64_t key) {
  auto a = open_of_auction_.find(auction_id);
  if (a == open_of_auction_.end())
    return;
  auto& ids = a->second;
  ids.erase(std::remove(ids.begin(), ids.end(), key), ids.end());
  if (ids.empty())
    open_of_auction_.erase(a);
}

void leasing_provider::forget_offers(const std::string& auction_id) {
  auto a = open_of_auction_.find(auction_id);
  if (a == open_of_auction_.end())
    return;
  for (const auto key : a->second)
    offers_.erase(key);
  open_of_auction_.erase(a);
}

void leasing_provider::forget(const std::string& allocation_id) {
  auto it = allocs_.find(allocation_id);
  if (it == allocs_.end())
    return;
  if (plan_ && it->second.plan_key != 0) {
    const std::uint64_t key = it->second.plan_key;
    if (!plan_->finish(key))
      plan_->cancel(key);
    alloc_of_key_.erase(key);
  }
  alloc_of_offer_.erase(it->second.alloc.offer_id);
  if (auto j = alloc_of_job_.find(it->second.alloc.job_id);
      j != alloc_of_job_.end() && j->second == allocation_id)
    alloc_of_job_.erase(j);
  allocs_.erase(it);
}

leasing_provider::alloc_record* leasing_provider::find_alloc(const std::string& allocation_id) {
  auto it = allocs_.find(allocation_id);
  return it == allocs_.end() ? nullptr : &it->second;
}

std::size_t leasing_provider::running_count() const {
  return static_cast<std::size_t>(std::count_if(
      allocs_.begin(), allocs_.end(), [](auto& kv) { return kv.second.state == phase::running; }));
}

std::variant<commit_confirm, commit_refuse> leasing_provider::hold(const award& a, usec now) {
  tidy(now);
  auto refuse = [&](std::string reason) {
    commit_refuse r;
    r.offer_id = a.offer_id;
    r.job_id = a.job_id;
    r.provider = cfg_.name;
    r.reason = std::move(reason);
    return r;
  };
  if (auto it = alloc_of_offer_.find(a.offer_id); it != alloc_of_offer_.end()) {
    const alloc_record& rec = allocs_.at(it->second);
    return commit_confirm{a.offer_id, rec.alloc.job_id, rec.alloc};
  }
  if (auto it = refused_.find(a.offer_id); it != refused_.end())
    return refuse(it->second.first);
  auto it = find_offer(a.offer_id);
  // Stale offers are tidied in batches: one past its validity is refused all the same.
  if (it == offers_.end() || (it->second.o.valid_until > 0 && it->second.o.valid_until < now))
    return refuse("unknown or expired offer " + a.offer_id);
  const offer& o = it->second.o;
  if (!a.job_id.empty() && a.job_id != o.job_id)
    return refuse("offer " + a.offer_id + " was made for job " + o.job_id);
  if (a.price > 0 && a.price < o.price)
    return refuse("award price " + format_usd(a.price) + " USD is below the offered " +
                  format_usd(o.price) + " USD");
  if (auto why = admit(o, now); !why.empty()) {
    refused_[a.offer_id] = {why, o.valid_until};
    refused_expiry_.emplace(o.valid_until, a.offer_id);
    return refuse(why);
  }
  std::string why;
  if (!plan_ && !book_.try_hold(o.offer_id, o.granted, now, lease_ttl_, &why))
    return refuse("capacity gone: " + why);

  alloc_record rec;
  rec.alloc.allocation_id = o.offer_id + "/a";
  rec.alloc.job_id = o.job_id;
  rec.alloc.offer_id = o.offer_id;
  rec.alloc.provider = cfg_.name;
  rec.alloc.granted = o.granted;
  rec.alloc.price = a.price > 0 ? a.price : o.price; // Vickrey: the clearing price
  rec.alloc.rate_per_hour = o.rate_per_hour;
  rec.alloc.terms = o.terms;
  rec.alloc.lease_token = tokens_();
  rec.alloc.lease_expires = now + lease_ttl_;
  rec.alloc.start_at = std::max(now, o.earliest_start);
  rec.alloc.instance_type = o.instance_type;
  rec.alloc.committed_at = now;
  rec.spot = o.spot;
  rec.runtime = it->second.runtime;
  rec.runtime_hi = it->second.runtime_hi;
  const std::string id = rec.alloc.allocation_id;
  const usec promised = o.earliest_start;
  if (plan_) {
    // Into the plan: it starts now only when EASY lets it, else it waits its turn.
    rec.state = phase::waiting;
    rec.plan_key = next_key_++;
    waiting_job w;
    w.key = rec.plan_key;
    w.amount = plan_amount::of(o.granted);
    w.estimate = std::max<usec>(rec.runtime, sec_us);
    w.submitted = now;
    if (auto e = plan_->submit(w); !e.empty())
      return refuse("cannot plan: " + e);
    alloc_of_key_[rec.plan_key] = id;
  }
  alloc_of_offer_[o.offer_id] = id;
  alloc_of_job_[o.job_id] = id;
  // Its other offers in this auction were superseded by this one or lost to it.
  const std::string auction_id = o.auction_id;
  offers_.erase(it);
  forget_offers(auction_id);
  auto& stored = allocs_.emplace(id, std::move(rec)).first->second;
  if (plan_) {
    run_plan(now, queued_);
    if (!allocs_.count(id))
      return refuse("capacity gone: the plan could not start it");
    if (stored.state == phase::waiting) {
      // Not now. Keep the award only if the plan still keeps the offer's promise.
      std::optional<usec> at;
      for (const auto& e : plan_->projection(now))
        if (e.key == stored.plan_key)
          at = e.start;
      const usec slack = std::max<usec>(60 * sec_us, (promised - now) / 10);
      if (promised <= now || !at || *at > promised + slack) {
        const std::string when = at ? format_time(*at) : std::string("never");
        forget(id);
        return refuse("capacity gone: the plan now starts it at " + when);
      }
      stored.alloc.start_at = *at;
      stored.alloc.lease_expires = *at + lease_ttl_;
    }
  }
  ++wins_;
  return commit_confirm{a.offer_id, stored.alloc.job_id, stored.alloc};
}

void leasing_provider::release(const tender::release& r, usec now) {
  std::string id = r.allocation_id;
  if (id.empty()) {
    if (auto it = alloc_of_offer_.find(r.offer_id); it != alloc_of_offer_.end())
      id = it->second;
  }
  alloc_record* rec = id.empty() ? nullptr : find_alloc(id);
  if (!rec) {
    // An offer that was never awarded: forget it.
    if (!r.offer_id.empty()) {
      if (auto it = find_offer(r.offer_id); it != offers_.end()) {
        unlist(it->second.o.auction_id, it->first);
        offers_.erase(it);
      }
      book_.release(r.offer_id);
    }
    return;
  }
  if (rec->state == phase::running) {
    if (!rec->killing || rec->restart_at >= 0) {
      // (A resize's stop becomes the end: no restart.)
      rec->killing = true;
      rec->restart_at = -1;
      rec->end_reason = "released" + (r.reason.empty() ? "" : ": " + r.reason);
      exec_->kill(rec->alloc.job_id, rec->end_reason, kill_grace, now);
    }
    return;
  }
  book_.release(rec->alloc.allocation_id);
  book_.release(rec->alloc.offer_id);
  forget(id);
}

std::optional<error> leasing_provider::start(const launch& l, usec now) {
  alloc_record* rec = find_alloc(l.allocation_id);
  if (!rec) {
    if (expired_.count(l.allocation_id))
      return lease_error("the lease of allocation " + l.allocation_id + " has expired");
    return lease_error("no allocation " + l.allocation_id + " at provider " + cfg_.name);
  }
  if (!same_token(rec->alloc.lease_token, l.lease_token))
    return lease_error("the lease token does not match allocation " + l.allocation_id);
  if (!l.job_id.empty() && l.job_id != rec->alloc.job_id)
    return lease_error("allocation " + l.allocation_id + " is not for job " + l.job_id);
  if (rec->state == phase::waiting) {
    // It starts when the plan says; the lease no longer runs out while it waits.
    if (!rec->have_launch) {
      rec->have_launch = true;
      rec->pending_launch = l;
    }
    return std::nullopt;
  }
  if (rec->state != phase::leased)
    return std::nullopt; // the same launch again: already started (or about to)
  if (now >= rec->alloc.lease_expires)
    return lease_error("the lease of allocation " + l.allocation_id + " has expired");

  std::string why;
  if (!book_.confirm(rec->alloc.offer_id, rec->alloc.allocation_id, now, &why))
    return lease_error("allocation " + l.allocation_id + " cannot be committed: " + why);
  if (now < rec->alloc.start_at) {
    rec->state = phase::pending;
    rec->pending_launch = l;
    return std::nullopt;
  }
  if (auto failed = launch_now(*rec, l, now)) {
    book_.release(rec->alloc.allocation_id);
    forget(l.allocation_id);
    error e;
    e.code = "launch";
    e.message = *failed;
    e.type = "launch";
    e.field = "spec.command";
    return e;
  }
  return std::nullopt;
}

exec_limits leasing_provider::limits_for(const alloc_record& rec) const {
  exec_limits lim;
  lim.cpu = rec.alloc.granted.cpu;
  lim.memory = rec.alloc.granted.memory;
  return lim;
}

std::optional<std::string> leasing_provider::launch_now(alloc_record& rec, const launch& l,
                                                        usec now) {
  exec_request req;
  req.job_id = rec.alloc.job_id;
  req.argv = l.spec.command;
  req.workdir = l.spec.workdir;
  req.env = l.spec.env;
  // The instance's GPUs as the job sees them (on real hardware the driver says so too).
  if (const resources& g = rec.alloc.granted; g.gpus > 0) {
    req.env["TENDER_GPUS"] = std::to_string(g.gpus);
    req.env["TENDER_GPU_TYPE"] = g.gpu_type;
    req.env["TENDER_GPU_MEMORY_MIB"] = std::to_string(g.gpu_memory >> 20);
  }
  req.limits = limits_for(rec);
  auto result = exec_->launch(req, now);
  if (auto* msg = std::get_if<std::string>(&result))
    return *msg;
  const auto& st = std::get<exec_state>(result);
  rec.state = phase::running;
  rec.started_at = st.started_at != 0 ? st.started_at : now;
  rec.launched = l;
  rec.pending_launch = launch{};
  return std::nullopt;
}

std::string leasing_provider::resize_by_restart(alloc_record& rec, const resources& to,
                                                usec delay, const std::string& why, usec now) {
  if (rec.state == phase::waiting)
    return "the job waits in the plan; it can be resized once it starts";
  if (rec.killing)
    return "the job is being stopped";
  const std::string ledger_id =
    rec.state == phase::leased ? rec.alloc.offer_id : rec.alloc.allocation_id;
  std::string err;
  if (!book_.resize(ledger_id, to, &err))
    return err;
  rec.alloc.granted = to;
  if (rec.state == phase::running) {
    rec.killing = true;
    rec.restart_at = now + std::max<usec>(0, delay);
    rec.end_reason = why;
    exec_->kill(rec.alloc.job_id, why, kill_grace, now);
  }
  return {};
}

usage_report leasing_provider::final_report(const alloc_record& rec, std::int32_t exit_code,
                                            const std::string& reason, usec finished_at) const {
  usage_report r;
  r.job_id = rec.alloc.job_id;
  r.allocation_id = rec.alloc.allocation_id;
  r.provider = cfg_.name;
  r.final = true;
  r.exit_code = exit_code;
  r.reason = reason;
  r.started_at = rec.started_at;
  r.finished_at = finished_at;
  // A GPU job that failed may have said it ran out of GPU memory: the owner can then
  // move it to a larger GPU instead of failing it.
  if (exit_code != 0 && rec.alloc.granted.gpus > 0 && rec.started_at > 0) {
    if (auto oom = find_gpu_oom(read_tail(exec_->stderr_path(rec.alloc.job_id), 64 << 10))) {
      r.gpu_memory_needed = oom->needed(rec.alloc.granted.gpu_memory);
      r.reason += (r.reason.empty() ? "" : "; ") + std::string("out of GPU memory: ") + oom->line;
    }
  }
  return r;
}

std::vector<usage_report> leasing_provider::poll(usec now) {
  tidy(now);
  std::vector<usage_report> out;
  out.swap(queued_);
  run_plan(now, out);

  // Launches that waited for their start time.
  std::vector<std::string> failed;
  for (auto& [id, rec] : allocs_) {
    if (rec.state != phase::pending || now < rec.alloc.start_at)
      continue;
    launch l = rec.pending_launch;
    if (auto why = launch_now(rec, l, now)) {
      out.push_back(final_report(rec, -1, "launch failed: " + *why, now));
      failed.push_back(id);
    }
  }
  for (auto& id : failed) {
    book_.release(id);
    forget(id);
  }

  // Injected interruptions (spot preemption).
  for (auto& [id, rec] : allocs_) {
    if (rec.state != phase::running || rec.killing)
      continue;
    if (auto why = interrupt(rec, last_poll_ == 0 ? now : last_poll_, now); !why.empty()) {
      rec.killing = true;
      rec.end_reason = why;
      exec_->kill(rec.alloc.job_id, why, kill_grace, now);
    }
  }
  last_poll_ = now;

  std::map<std::string, usage_report> samples; // by job id, ordered
  for (auto& ev : exec_->poll(now)) {
    auto j = alloc_of_job_.find(ev.job_id);
    if (j == alloc_of_job_.end())
      continue;
    alloc_record& rec = allocs_.at(j->second);
    if (rec.state != phase::running)
      continue;
    if (ev.sample) {
      auto& r = samples[ev.job_id];
      if (r.job_id.empty()) {
        r.job_id = rec.alloc.job_id;
        r.allocation_id = rec.alloc.allocation_id;
        r.provider = cfg_.name;
        r.started_at = rec.started_at;
      }
      r.samples.push_back(*ev.sample);
    }
    if (ev.exited && rec.restart_at >= 0) {
      // Stopped for a resize: the instance starts again on its new type after the delay
      // (the pending launches above, at a later poll). Its samples still go out.
      rec.state = phase::pending;
      rec.alloc.start_at = std::max(rec.restart_at, now);
      rec.pending_launch = rec.launched;
      rec.killing = false;
      rec.end_reason.clear();
      rec.restart_at = -1;
      continue;
    }
    if (ev.exited) {
      std::string reason = ev.exited->reason;
      if (!rec.end_reason.empty())
        reason = rec.end_reason + (reason.empty() ? "" : " (" + reason + ")");
      usage_report fin = final_report(rec, ev.exited->exit_code, reason,
                                      ev.exited->finished_at != 0 ? ev.exited->finished_at : now);
      if (auto s = samples.find(ev.job_id); s != samples.end()) {
        fin.samples = std::move(s->second.samples);
        samples.erase(s);
      }
      out.push_back(std::move(fin));
      book_.release(rec.alloc.allocation_id);
      forget(j->second);
    }
  }
  for (auto& [job, r] : samples)
    out.push_back(std::move(r));
  run_plan(now, out); // capacity freed by jobs that ended
  return out;
}

scale_offer leasing_provider::scale(const scale_request& r, usec now) {
  scale_offer s;
  s.job_id = r.job_id;
  s.allocation_id = r.allocation_id;
  s.provider = cfg_.name;
  alloc_record* rec = find_alloc(r.allocation_id);
  if (!rec) {
    s.reason = "no allocation " + r.allocation_id;
    return s;
  }
  const resources old = rec->alloc.granted;
  resources wanted = r.wanted;
  if (wanted.gpus != old.gpus ||
      (!wanted.gpu_type.empty() && wanted.gpus > 0 && wanted.gpu_type != old.gpu_type)) {
    s.in_place = false;
    s.reason = "GPUs cannot change in place: a new allocation is needed";
    return s;
  }
  wanted.gpu_type = old.gpu_type;
  wanted.gpu_memory = old.gpu_memory;
  if (rec->state == phase::waiting) {
    s.reason = "the job waits in the plan; it can be resized once it starts";
    return s;
  }
  const std::string ledger_id =
      rec->state == phase::leased ? rec->alloc.offer_id : rec->alloc.allocation_id;
  std::string why;
  if (!book_.resize(ledger_id, wanted, &why)) {
    s.reason = why;
    return s;
  }
  if (plan_ && rec->plan_key != 0 && !plan_->resize(rec->plan_key, plan_amount::of(wanted))) {
    book_.resize(ledger_id, old);
    s.reason = "the plan has no room for it";
    return s;
  }
  rec->alloc.granted = wanted;
  if (rec->state == phase::running &&
      !exec_->set_limits(rec->alloc.job_id, limits_for(*rec), why)) {
    book_.resize(ledger_id, old);
    if (plan_ && rec->plan_key != 0)
      plan_->resize(rec->plan_key, plan_amount::of(old));
    rec->alloc.granted = old;
    s.reason = "limits cannot change in place: " + why;
    return s;
  }
  s.applied = true;
  s.granted = wanted;
  const usec elapsed = rec->state == phase::running ? now - rec->started_at : 0;
  const usec remaining = std::max<usec>(0, rec->runtime - elapsed);
  const i128 delta = static_cast<i128>(hourly_rate(wanted) - hourly_rate(old)) * remaining;
  s.price_delta = static_cast<micros>(delta / (3600 * sec_us));
  s.reason = r.reason;
  return s;
}

void leasing_provider::stop(const std::string& job_id, const std::string& reason, usec now) {
  auto j = alloc_of_job_.find(job_id);
  if (j == alloc_of_job_.end())
    return;
  alloc_record& rec = allocs_.at(j->second);
  if (rec.state == phase::running) {
    if (!rec.killing || rec.restart_at >= 0) {
      // (A resize's stop becomes the end: no restart.)
      rec.killing = true;
      rec.restart_at = -1;
      rec.end_reason = "stopped" + (reason.empty() ? "" : ": " + reason);
      exec_->kill(job_id, rec.end_reason, kill_grace, now);
    }
    return;
  }
  queued_.push_back(final_report(rec, -1, "stopped before start: " + reason, now));
  book_.release(rec.alloc.allocation_id);
  book_.release(rec.alloc.offer_id);
  forget(j->second);
}

std::optional<usage_report> leasing_provider::adopt(const allocation& a, usec now) {
  if (allocs_.count(a.allocation_id))
    return std::nullopt;
  alloc_record rec;
  rec.alloc = a;
  rec.alloc.provider = cfg_.name;
  std::string why;
  auto result = exec_->adopt(a.job_id, now);
  // A job that still runs counts against the capacity as it did before.
  if (std::holds_alternative<exec_state>(result) &&
      !book_.commit(a.allocation_id, a.offer_id, a.granted, &why))
    return final_report(rec, -1, "cannot re-adopt: " + why, now);
  // Re-enters the plan: running from `since`, planned for a default run (the plan's
  // correction extends it if the job outlives it).
  auto plan_running = [&](usec since) {
    if (!plan_)
      return true;
    rec.plan_key = next_key_++;
    return plan_->add_running(rec.plan_key, plan_amount::of(a.granted), since,
                              std::max(since + default_runtime, now + sec_us));
  };
  if (auto* st = std::get_if<exec_state>(&result)) {
    rec.state = phase::running;
    rec.started_at = st->started_at;
    if (!plan_running(rec.started_at)) {
      // The ledger took it, so the plan must: they count the same capacity.
      book_.release(a.allocation_id);
      return final_report(rec, -1, "cannot re-adopt: the plan has no room", now);
    }
  } else if (auto* ex = std::get_if<exit_info>(&result)) {
    book_.release(a.allocation_id);
    return final_report(rec, ex->exit_code, ex->reason,
                        ex->finished_at != 0 ? ex->finished_at : now);
  } else {
    if (plan_) {
      // Never launched: it waits in the plan again (behind the jobs re-adopted before
      // it) and its owner has one more lease to launch it.
      rec.alloc.lease_expires = std::max(a.lease_expires, now + lease_ttl_);
      rec.state = phase::waiting;
      rec.plan_key = next_key_++;
      waiting_job w;
      w.key = rec.plan_key;
      w.amount = plan_amount::of(a.granted);
      w.estimate = default_runtime;
      // Its place in the queue is where it was (its commit), not where adoption puts it.
      w.submitted = a.committed_at > 0 ? a.committed_at : now;
      if (auto e = plan_->submit(w); !e.empty())
        return final_report(rec, -1, "cannot re-adopt: " + e, now);
    } else {
      if (now >= a.lease_expires)
        return final_report(rec, -1, "lost: " + std::get<std::string>(result), now);
      // Never launched: the lease still stands until it expires.
      if (!book_.try_hold(a.offer_id, a.granted, now, a.lease_expires - now, &why))
        return final_report(rec, -1, "cannot re-adopt: " + why, now);
      rec.state = phase::leased;
    }
  }
  if (rec.plan_key != 0)
    alloc_of_key_[rec.plan_key] = a.allocation_id;
  alloc_of_offer_[a.offer_id] = a.allocation_id;
  alloc_of_job_[a.job_id] = a.allocation_id;
  allocs_.emplace(a.allocation_id, std::move(rec));
  return std::nullopt;
}

} // namespace tender

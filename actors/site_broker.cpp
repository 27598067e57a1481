#include "actors/site_broker.hpp"

#include <algorithm>
#include <cctype>

namespace tender {

std::vector<std::string> arrived_path(const resource_request& call, const std::string& caller) {
  auto path = call.path;
  if (!caller.empty() && (path.empty() || path.back() != caller))
    path.push_back(caller);
  return path;
}

std::optional<std::string> refuse_call(const resource_request& call, const std::string& caller,
                                       const std::string& self, std::int32_t hop_limit) {
  if (call.job_id.empty() || call.auction_id.empty())
    return "malformed call for offers: no job_id or auction_id";
  if (call.hops < 0)
    return "malformed call for offers: negative hops";
  const auto& r = call.request;
  if (r.cpu < 0 || r.memory < 0 || r.gpus < 0 || r.gpu_memory < 0)
    return "malformed call for offers: negative resources";
  auto path = arrived_path(call, caller);
  if (std::find(path.begin(), path.end(), self) != path.end()) {
    std::string p;
    for (auto& s : path)
      p += (p.empty() ? "" : " > ") + s;
    return "loop: the call has already visited " + self + " (path " + p + ")";
  }
  if (call.hops + 1 > hop_limit)
    return "hop limit " + std::to_string(hop_limit) + " reached (the call has crossed " +
           std::to_string(call.hops) + " site boundaries before this one)";
  return std::nullopt;
}

std::string inner_job_id(const std::string& job_id, const std::string& self) {
  // Job ids name run directories and cgroups: letters, digits, '.', '_' and '-' only.
  std::string id = job_id + ".";
  for (char c : self)
    id += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ? c : '_';
  return id;
}

usec sub_budget(usec reply_by, usec now, usec fallback) {
  usec left = reply_by > 0 ? reply_by - now : fallback;
  // Keep a quarter for the way back and the caller's own evaluation.
  usec b = left - left / 4;
  return std::max<usec>(b, 1'000);
}

resource_request onward_call(const resource_request& call, const std::string& caller,
                             const std::string& self, std::string inner_auction_id, usec reply_by) {
  resource_request r = call;
  r.job_id = inner_job_id(call.job_id, self);
  r.profile.job_id = r.job_id;
  r.auction_id = std::move(inner_auction_id);
  r.round = 1;
  r.reply_by = reply_by;
  r.hops = call.hops + 1;
  r.path = arrived_path(call, caller);
  r.path.push_back(self);
  return r;
}

std::vector<std::size_t> invitees(const std::vector<std::string>& names,
                                  const std::vector<std::string>& path, const std::string& self) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] != self && std::find(path.begin(), path.end(), names[i]) == path.end())
      out.push_back(i);
  return out;
}

offer outward_offer(const offer& inner, const resource_request& call, const std::string& self,
                    std::string offer_id, usec answered_in) {
  offer o = inner;
  o.offer_id = std::move(offer_id);
  o.job_id = call.job_id;
  o.auction_id = call.auction_id;
  o.round = call.round;
  o.provider = self;
  o.terms.latency = std::max(inner.terms.latency, answered_in);
  return o;
}

allocation outward_allocation(const allocation& inner, const std::string& job_id,
                              const std::string& offer_id, const std::string& self,
                              std::string allocation_id, std::string lease_token, micros price) {
  allocation a = inner;
  a.allocation_id = std::move(allocation_id);
  a.job_id = job_id;
  a.offer_id = offer_id;
  a.provider = self;
  a.lease_token = std::move(lease_token);
  if (price > 0)
    a.price = price;
  return a;
}

usage_report outward_usage(usage_report r, const allocation& outer, const std::string& self) {
  r.job_id = outer.job_id;
  r.allocation_id = outer.allocation_id;
  r.provider = self;
  return r;
}

std::string encode_record(const forwarded_run_record& r) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, r);
  return std::string(buf.data(), buf.size());
}

std::optional<forwarded_run_record> decode_record(const std::string& bytes, std::string* why) {
  try {
    auto h = msgpack::unpack(bytes.data(), bytes.size());
    forwarded_run_record r;
    h.get().convert(r);
    if (r.outer.allocation_id.empty() || r.inner.allocation_id.empty()) {
      if (why)
        *why = "no allocation id";
      return std::nullopt;
    }
    return r;
  } catch (const std::exception& e) {
    if (why)
      *why = std::string("not a forwarded-run record: ") + e.what();
    return std::nullopt;
  }
}

} // namespace tender

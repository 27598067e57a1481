#include "protocol/batch.hpp"

#include "protocol/envelope.hpp"
#include "protocol/msgpack_writer.hpp"

#include <algorithm>
#include <cstdint>
#include <unordered_map>

namespace tender {

namespace {

constexpr std::size_t bin_head_max = 5; ///< bin32: 0xc6 + 4 bytes of length

using queue = std::vector<std::pair<std::string, std::string>>;

/// One batch's share of a peer's envelopes: how many, and their bytes.
struct run {
  std::size_t n = 0, bytes = 0;
};

/// What of `items[from..]` (indexes into `q`) goes into one batch: at least one
/// envelope, then as many as the limits allow.
run take(const queue& q, const std::vector<std::size_t>& items, std::size_t from) {
  run r;
  std::size_t framed = bin_head_max; // the array's header
  while (from + r.n < items.size() && r.n < max_batch_envelopes) {
    const auto size = q[items[from + r.n]].second.size();
    if (r.n > 0 && framed + size + bin_head_max > max_batch_bytes)
      break;
    framed += size + bin_head_max;
    r.bytes += size;
    ++r.n;
  }
  return r;
}

std::string batch_of(const queue& q, const std::vector<std::size_t>& items, std::size_t from,
                     const run& r) {
  std::string out;
  out.reserve(r.bytes + (r.n + 1) * bin_head_max);
  msgpack_writer w(out);
  w.array(static_cast<std::uint32_t>(r.n));
  for (std::size_t i = from; i < from + r.n; ++i)
    w.bin(q[items[i]].second);
  w.flush();
  return out;
}

error malformed(std::string message, std::string field = "batch") {
  return error{"malformed", std::move(message), "batch", std::move(field)};
}

std::uint32_t big_endian(const unsigned char* p, int n) {
  std::uint32_t v = 0;
  for (int i = 0; i < n; ++i)
    v = (v << 8) | p[i];
  return v;
}

} // namespace

bool is_batch(std::string_view frame) {
  if (frame.empty())
    return false;
  const auto b = static_cast<unsigned char>(frame[0]);
  return (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
}

bool reads_batches(const std::vector<std::string>& wire) {
  return std::find(wire.begin(), wire.end(), wire_batch) != wire.end();
}

split_batch_result split_batch(std::string_view frame) {
  split_batch_result r;
  auto fail = [&](std::string message, std::string field = "batch") {
    r.envelopes.clear();
    r.failure = malformed(std::move(message), std::move(field));
    return r;
  };
  if (frame.size() > default_max_frame)
    return fail("batch of " + std::to_string(frame.size()) + " bytes: more than the " +
                std::to_string(default_max_frame) + " a frame may have");
  const auto* p = reinterpret_cast<const unsigned char*>(frame.data());
  const auto* end = p + frame.size();
  if (p == end)
    return fail("empty frame");
  std::uint32_t n = 0;
  if ((*p & 0xf0) == 0x90) {
    n = *p & 0x0f;
    p += 1;
  } else if (*p == 0xdc || *p == 0xdd) {
    const int w = *p == 0xdc ? 2 : 4;
    if (end - p < 1 + w)
      return fail("batch: its length is cut off");
    n = big_endian(p + 1, w);
    p += 1 + w;
  } else {
    return fail("not a batch: a batch is an array of envelopes");
  }
  if (n == 0)
    return fail("batch: no envelopes in it");
  if (n > max_batch_envelopes)
    return fail("batch of " + std::to_string(n) + " envelopes: at most " +
                std::to_string(max_batch_envelopes));
  r.envelopes.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const auto field = "batch[" + std::to_string(i) + "]";
    if (p == end)
      return fail("batch: " + std::to_string(n) + " envelopes announced, " + std::to_string(i) +
                      " present",
                  field);
    int w = 0;
    switch (*p) {
    case 0xc4:
      w = 1;
      break;
    case 0xc5:
      w = 2;
      break;
    case 0xc6:
      w = 4;
      break;
    default:
      return fail("batch: an envelope in a batch is a bin (its bytes)", field);
    }
    if (end - p < 1 + w)
      return fail("batch: the envelope's length is cut off", field);
    const std::size_t len = big_endian(p + 1, w);
    p += 1 + w;
    if (static_cast<std::size_t>(end - p) < len)
      return fail("batch: the envelope is cut off (" + std::to_string(len) + " bytes announced, " +
                      std::to_string(end - p) + " present)",
                  field);
    r.envelopes.emplace_back(reinterpret_cast<const char*>(p), len);
    p += len;
  }
  if (p != end)
    return fail("batch: " + std::to_string(end - p) + " bytes after its last envelope");
  return r;
}

std::vector<outgoing_frame> frames_for(std::vector<std::pair<std::string, std::string>>& queued,
                                       const std::function<bool(const std::string&)>& batches) {
  struct group {
    const std::string* peer;
    bool batch;
    std::vector<std::size_t> items;
  };
  std::vector<group> groups;
  std::unordered_map<std::string_view, std::size_t> index;
  for (std::size_t i = 0; i < queued.size(); ++i) {
    auto [it, fresh] = index.try_emplace(queued[i].first, groups.size());
    if (fresh)
      groups.push_back(group{&queued[i].first, batches(queued[i].first), {}});
    groups[it->second].items.push_back(i);
  }
  std::vector<outgoing_frame> out;
  out.reserve(queued.size());
  for (auto& g : groups) {
    auto& items = g.items;
    if (!g.batch) {
      for (auto i : items) {
        const auto size = queued[i].second.size();
        out.push_back(outgoing_frame{*g.peer, std::move(queued[i].second), 1, size});
      }
      continue;
    }
    for (std::size_t k = 0; k < items.size();) {
      const auto r = take(queued, items, k);
      if (r.n == 1)
        out.push_back(outgoing_frame{*g.peer, std::move(queued[items[k]].second), 1, r.bytes});
      else
        out.push_back(outgoing_frame{*g.peer, batch_of(queued, items, k, r), r.n, r.bytes});
      k += r.n;
    }
  }
  return out;
}

} // namespace tender

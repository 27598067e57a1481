#include "providers/profile_cache.hpp"

#include <msgpack.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

namespace tender {

namespace {

constexpr std::array<std::uint32_t, 64> k = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

class sha256 {
public:
  void update(const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      buf_[len_++] = static_cast<std::uint8_t>(data[i]);
      if (len_ == 64) {
        block();
        len_ = 0;
      }
    }
    bits_ += static_cast<std::uint64_t>(n) * 8;
  }
  std::string hex() {
    const std::uint64_t bits = bits_;
    const char one = static_cast<char>(0x80);
    update(&one, 1);
    const char zero = 0;
    while (len_ != 56)
      update(&zero, 1);
    for (int i = 7; i >= 0; --i) {
      const char b = static_cast<char>((bits >> (i * 8)) & 0xff);
      update(&b, 1);
    }
    std::string out;
    char tmp[9];
    for (auto v : h_) {
      std::snprintf(tmp, sizeof tmp, "%08x", v);
      out += tmp;
    }
    return out;
  }

private:
  void block() {
    std::uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = (std::uint32_t(buf_[i * 4]) << 24) | (std::uint32_t(buf_[i * 4 + 1]) << 16) |
             (std::uint32_t(buf_[i * 4 + 2]) << 8) | std::uint32_t(buf_[i * 4 + 3]);
    for (int i = 16; i < 64; ++i) {
      auto s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      auto s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    auto a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      auto t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      auto t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a;
    h_[1] += b;
    h_[2] += c;
    h_[3] += d;
    h_[4] += e;
    h_[5] += f;
    h_[6] += g;
    h_[7] += h;
  }

  std::array<std::uint32_t, 8> h_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::uint8_t buf_[64] = {};
  std::size_t len_ = 0;
  std::uint64_t bits_ = 0;
};

/// What a cache file holds. History: v1.
struct cached_run {
  std::int32_t v = 1;
  std::vector<usage_sample> samples;
  bool has_exit = false;
  std::int32_t exit_code = -1;
  std::int32_t signal = 0;
  std::string reason;
  bytes_t io_read = 0;
  bytes_t io_write = 0;
  std::string sandbox;
  usec started = 0;
  usec budget = 0;
  bool cut = false;
  usec took = 0;
  MSGPACK_DEFINE_MAP(v, samples, has_exit, exit_code, signal, reason, io_read, io_write, sandbox,
                     started, budget, cut, took)
};

/// Length-prefixed, so ("ab","c") and ("a","bc") differ.
void field(sha256& h, const std::string& s) {
  const std::string len = std::to_string(s.size()) + ":";
  h.update(len.data(), len.size());
  h.update(s.data(), s.size());
}

} // namespace

std::string sha256_hex(const std::string& data) {
  sha256 h;
  h.update(data.data(), data.size());
  return h.hex();
}

std::optional<std::string> file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::nullopt;
  sha256 h;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof buf);
    h.update(buf, static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad())
    return std::nullopt;
  return h.hex();
}

profile_cache::profile_cache(std::string dir) : dir_(std::move(dir)) {}

std::string profile_cache::key(const job_spec& spec, const static_report& report) {
  sha256 h;
  field(h, "tender-profile-cache-v1");
  auto list = [&](const char* tag, const std::vector<std::string>& v) {
    field(h, tag);
    field(h, std::to_string(v.size()));
    for (auto& s : v)
      field(h, s);
  };
  list("profile_command", spec.profile_command);
  list("command", spec.command);
  field(h, "env");
  for (auto& [k, v] : spec.env) {
    field(h, k);
    field(h, v);
  }
  field(h, "workdir");
  field(h, spec.workdir);
  field(h, "budget " + std::to_string(spec.profile_budget));
  field(h, "memory hint " + std::to_string(spec.hints.memory));
  auto digest = [&](const std::string& path) {
    field(h, path);
    field(h, file_sha256(path).value_or("unreadable"));
  };
  field(h, "files");
  for (auto& f : report.files)
    digest(f);
  field(h, "inputs");
  for (auto& in : spec.inputs)
    digest(!in.empty() && in[0] == '/' ? in : spec.workdir + "/" + in);
  return h.hex();
}

std::optional<profile_run> profile_cache::get(const std::string& key) const {
  std::ifstream in(dir_ + "/" + key + ".msgpack", std::ios::binary);
  if (!in)
    return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  try {
    auto oh = msgpack::unpack(bytes.data(), bytes.size());
    cached_run c;
    oh.get().convert(c);
    if (c.v != 1)
      return std::nullopt;
    profile_run r;
    r.samples = std::move(c.samples);
    if (c.has_exit) {
      exit_info e;
      e.exit_code = c.exit_code;
      e.signal = c.signal;
      e.reason = c.reason;
      e.io_read = c.io_read;
      e.io_write = c.io_write;
      r.exit = e;
    }
    r.sandbox = c.sandbox;
    r.started = c.started;
    r.budget = c.budget;
    r.cut = c.cut;
    r.took = c.took;
    return r;
  } catch (const std::exception&) {
    return std::nullopt; // a broken entry is a miss; the next put replaces it
  }
}

bool profile_cache::put(const std::string& key, const profile_run& run, std::string* why) {
  auto fail = [&](const std::string& w) {
    if (why)
      *why = w;
    return false;
  };
  if (!run.error.empty() || !run.exit || run.samples.empty())
    return fail("nothing was measured");
  if (!run.cut && run.exit->exit_code != 0)
    return fail("the run failed (" + run.exit->reason + ")");
  ::mkdir(dir_.c_str(), 0755);
  cached_run c;
  c.samples = run.samples;
  c.has_exit = true;
  c.exit_code = run.exit->exit_code;
  c.signal = run.exit->signal;
  c.reason = run.exit->reason;
  c.io_read = run.exit->io_read;
  c.io_write = run.exit->io_write;
  c.sandbox = run.sandbox;
  c.started = run.started;
  c.budget = run.budget;
  c.cut = run.cut;
  c.took = run.took;
  msgpack::sbuffer buf;
  msgpack::pack(buf, c);
  const std::string path = dir_ + "/" + key + ".msgpack";
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (!out)
      return fail("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return fail("cannot rename " + tmp + " to " + path);
  }
  return true;
}

} // namespace tender

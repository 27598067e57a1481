#include "providers/gpu_oom.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>

namespace tender {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  std::string out(s.substr(0, 300));
  return out;
}

/// Does this (lower-cased) line say the GPU ran out of memory?
bool says_gpu_oom(const std::string& l) {
  static const char* const markers[] = {
      "cuda out of memory",        // PyTorch
      "cuda error: out of memory", // PyTorch / CUDA runtime text
      "cuda_error_out_of_memory",  // driver API
      "cudaerrormemoryallocation", // runtime API
      "hip out of memory",         // PyTorch on ROCm
  };
  for (const char* m : markers)
    if (l.find(m) != std::string::npos)
      return true;
  // XLA / JAX and TensorFlow say it without naming CUDA.
  if (l.find("resource_exhausted") != std::string::npos &&
      l.find("out of memory") != std::string::npos)
    return true;
  return l.find("oom when allocating tensor") != std::string::npos &&
         l.find("gpu") != std::string::npos;
}

/// The amount matched by `re`'s groups 1 (number) and 2 (unit) in `l`, or 0.
bytes_t amount(const std::string& l, const std::regex& re) {
  std::smatch m;
  if (!std::regex_search(l, m, re))
    return 0;
  const bytes_t b = parse_memory_amount(m[1].str(), m[2].str());
  return b > 0 ? b : 0;
}

} // namespace

bytes_t parse_memory_amount(std::string_view number, std::string_view unit) {
  std::string n(number);
  char* end = nullptr;
  const double v = std::strtod(n.c_str(), &end);
  if (n.empty() || end != n.c_str() + n.size() || !std::isfinite(v) || v < 0)
    return -1;
  const std::string u = lower(unit);
  double scale = 0;
  if (u == "b" || u == "byte" || u == "bytes")
    scale = 1;
  else if (u == "kib")
    scale = 1024.0;
  else if (u == "mib")
    scale = 1024.0 * 1024;
  else if (u == "gib")
    scale = 1024.0 * 1024 * 1024;
  else if (u == "tib")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (u == "kb")
    scale = 1e3;
  else if (u == "mb")
    scale = 1e6;
  else if (u == "gb")
    scale = 1e9;
  else if (u == "tb")
    scale = 1e12;
  else
    return -1;
  const double b = std::ceil(v * scale);
  if (b > 9.0e18)
    return -1;
  return static_cast<bytes_t>(b);
}

bytes_t gpu_oom::needed(bytes_t held) const {
  const bytes_t base = in_use > 0 ? in_use : (total > 0 ? total : held);
  bytes_t want = base + tried;
  return std::max(want, held + 1);
}

std::optional<gpu_oom> find_gpu_oom(std::string_view text) {
  static const std::string num = R"(([0-9]+(?:\.[0-9]+)?))";
  static const std::string unit = R"(\s*(bytes|byte|b|kib|mib|gib|tib|kb|mb|gb|tb)\b)";
  static const std::regex tried_re("tried to allocate " + num + unit);
  // PyTorch >= 2.1 names what the process holds; older ones what is reserved / allocated.
  static const std::regex process_re("this process has " + num + unit + " memory in use");
  static const std::regex reserved_re(num + unit + " reserved in total");
  static const std::regex allocated_re(num + unit + " already allocated");
  static const std::regex total_re("(?:total capacity of |; )" + num + unit +
                                   "(?: total capacity| of which)");
  static const std::regex xla_re("while trying to allocate " + num + unit);
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos)
      nl = text.size();
    const std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    const std::string l = lower(raw);
    if (!says_gpu_oom(l))
      continue;
    gpu_oom o;
    o.line = trimmed(raw);
    o.tried = amount(l, tried_re);
    if (o.tried == 0)
      o.tried = amount(l, xla_re);
    o.in_use = amount(l, process_re);
    if (o.in_use == 0)
      o.in_use = std::max(amount(l, reserved_re), amount(l, allocated_re));
    o.total = amount(l, total_re);
    return o;
  }
  return std::nullopt;
}

} // namespace tender

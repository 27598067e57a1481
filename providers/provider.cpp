#include "providers/provider.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tender {

provider::~provider() = default;

std::string random_token() {
  unsigned char buf[32];
  std::size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = ::getrandom(buf + got, sizeof buf - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * sizeof buf);
  for (unsigned char c : buf) {
    out += hex[c >> 4];
    out += hex[c & 0xf];
  }
  return out;
}

} // namespace tender

#include "protocol/resources.hpp"

#include <algorithm>
#include <cctype>

namespace tender {

namespace {

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

} // namespace

bool covers(const resources& have, const resources& want) {
  if (have.cpu < want.cpu || have.memory < want.memory || have.gpus < want.gpus ||
      have.gpu_memory < want.gpu_memory)
    return false;
  return want.gpu_type.empty() || iequals(have.gpu_type, want.gpu_type);
}

} // namespace tender

#include "protocol/resources.hpp"

#include <gtest/gtest.h>

namespace tender {
namespace {

resources box(millicores cpu, bytes_t mem, std::int32_t gpus = 0, std::string type = {},
              bytes_t gpu_mem = 0) {
  return resources{cpu, mem, gpus, std::move(type), gpu_mem};
}

TEST(covers, every_dimension_must_be_at_least_wanted) {
  resources have = box(4000, 8LL << 30, 2, "A100", 40LL << 30);
  EXPECT_TRUE(covers(have, have));
  EXPECT_TRUE(covers(have, box(1000, 1LL << 30)));
  EXPECT_TRUE(covers(have, resources{}));
  EXPECT_FALSE(covers(have, box(4001, 1)));
  EXPECT_FALSE(covers(have, box(1, (8LL << 30) + 1)));
  EXPECT_FALSE(covers(have, box(1, 1, 3)));
  EXPECT_FALSE(covers(have, box(1, 1, 1, "", (40LL << 30) + 1)));
}

TEST(covers, gpu_type_matches_case_insensitively_when_named) {
  resources have = box(4000, 8LL << 30, 1, "A100", 40LL << 30);
  EXPECT_TRUE(covers(have, box(1000, 1, 1, "a100")));
  EXPECT_TRUE(covers(have, box(1000, 1, 1, "")));
  EXPECT_FALSE(covers(have, box(1000, 1, 1, "H100")));
  EXPECT_FALSE(covers(box(4000, 8LL << 30), box(1000, 1, 0, "A100")));
}

} // namespace
} // namespace tender

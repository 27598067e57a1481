#include "providers/gpu_oom.hpp"

#include <gtest/gtest.h>

namespace tender {
namespace {

constexpr bytes_t MiB = bytes_t{1} << 20;
constexpr bytes_t GiB = bytes_t{1} << 30;

TEST(gpu_oom, reads_pytorch_before_2_1) {
  const std::string err =
      "Traceback (most recent call last):\n"
      "  File \"train.py\", line 12, in <module>\n"
      "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 "
      "GiB total capacity; 13.20 GiB already allocated; 310.00 MiB free; 13.90 GiB reserved in "
      "total by PyTorch)\n";
  auto o = find_gpu_oom(err);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->tried, 2 * GiB);
  EXPECT_EQ(o->in_use, parse_memory_amount("13.90", "GiB")); // reserved > allocated
  EXPECT_EQ(o->total, parse_memory_amount("15.78", "GiB"));
  // What it held plus what it asked for ...
  EXPECT_EQ(o->needed(8 * GiB), o->in_use + 2 * GiB);
  // ... and in any case more than the GPU it ran out on.
  EXPECT_EQ(o->needed(16 * GiB), 16 * GiB + 1);
  EXPECT_NE(o->line.find("CUDA out of memory"), std::string::npos);
  EXPECT_EQ(o->line.find("Traceback"), std::string::npos);
}

TEST(gpu_oom, reads_pytorch_2_1_and_later) {
  auto o = find_gpu_oom(
      "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB. GPU 0 has a "
      "total capacity of 39.39 GiB of which 100.00 MiB is free. Including non-PyTorch memory, "
      "this process has 39.28 GiB memory in use. Of the allocated memory 38.00 GiB is allocated "
      "by PyTorch");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->tried, 512 * MiB);
  EXPECT_EQ(o->in_use, parse_memory_amount("39.28", "GiB"));
  EXPECT_EQ(o->total, parse_memory_amount("39.39", "GiB"));
}

TEST(gpu_oom, reads_xla_and_knows_the_other_frameworks) {
  auto x = find_gpu_oom("jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory "
                        "while trying to allocate 17179869184 bytes.");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->tried, 16 * GiB);
  EXPECT_EQ(x->in_use, 0);
  // Without what is in use, the job needs what it held plus the failed allocation.
  EXPECT_EQ(x->needed(16 * GiB), 32 * GiB);

  for (const char* line :
       {"RuntimeError: CUDA error: out of memory",
        "cupy.cuda.driver.CUDADriverError: CUDA_ERROR_OUT_OF_MEMORY: out of memory",
        "error: cudaErrorMemoryAllocation at kernel.cu:42",
        "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating "
        "tensor with shape[8192,8192] and type float on /job:localhost/replica:0/task:0/"
        "device:GPU:0 by allocator GPU_0_bfc"}) {
    auto o = find_gpu_oom(line);
    ASSERT_TRUE(o) << line;
    EXPECT_EQ(o->tried, 0) << line;
    // Nothing said of amounts: anything larger than what is held.
    EXPECT_EQ(o->needed(16 * GiB), 16 * GiB + 1) << line;
  }
}

TEST(gpu_oom, host_memory_errors_and_ordinary_failures_are_not_gpu_oom) {
  EXPECT_FALSE(find_gpu_oom("MemoryError\nKilled\n"));
  EXPECT_FALSE(find_gpu_oom("std::bad_alloc: out of memory"));
  EXPECT_FALSE(find_gpu_oom("OOM when allocating tensor with shape[10] on /device:CPU:0"));
  EXPECT_FALSE(find_gpu_oom("RESOURCE_EXHAUSTED: too many open files"));
  EXPECT_FALSE(find_gpu_oom(""));
  EXPECT_FALSE(find_gpu_oom("\n\n\n"));
}

TEST(gpu_oom, amounts_parse_every_unit_and_refuse_garbage) {
  EXPECT_EQ(parse_memory_amount("1", "KiB"), 1024);
  EXPECT_EQ(parse_memory_amount("1.5", "gb"), 1'500'000'000);
  EXPECT_EQ(parse_memory_amount("20.00", "MiB"), 20 * MiB);
  EXPECT_EQ(parse_memory_amount("7", "bytes"), 7);
  EXPECT_EQ(parse_memory_amount("x", "MiB"), -1);
  EXPECT_EQ(parse_memory_amount("1", "parsecs"), -1);
  EXPECT_EQ(parse_memory_amount("1e30", "TiB"), -1);
  EXPECT_EQ(parse_memory_amount("", "MiB"), -1);
}

TEST(gpu_oom, a_long_line_is_cut_and_the_first_oom_wins) {
  std::string err = "CUDA out of memory. Tried to allocate 1.00 GiB " + std::string(1000, 'x') +
                    "\nCUDA out of memory. Tried to allocate 9.00 GiB\n";
  auto o = find_gpu_oom(err);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->tried, GiB);
  EXPECT_EQ(o->line.size(), 300u);
}

} // namespace
} // namespace tender

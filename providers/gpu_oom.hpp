#pragma once
/// Recognises a job that ran out of GPU memory from what it wrote to stderr.
///
/// No GPU driver tells tender about GPU memory after the fact, but every framework
/// says it in one recognisable line before the process dies:
///
///   PyTorch < 2.1  "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total
///                   capacity; 13.20 GiB already allocated; ...; 13.90 GiB reserved in total
///                   by PyTorch)"
///   PyTorch >= 2.1 "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total
///                   capacity of 15.78 GiB of which 310.00 MiB is free. Including non-PyTorch
///                   memory, this process has 15.47 GiB memory in use. ..."
///   JAX / XLA      "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes."
///   TensorFlow     "OOM when allocating tensor with shape[...] ... device:GPU:0"
///   CUDA itself    "CUDA error: out of memory", "CUDA_ERROR_OUT_OF_MEMORY",
///                  "cudaErrorMemoryAllocation"
///
/// The first recognised line wins; amounts are read where the line gives them.

#include "protocol/amounts.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace tender {

struct gpu_oom {
  std::string line;   ///< the line that said so (trimmed, at most 300 characters)
  bytes_t tried = 0;  ///< the allocation that failed (0: not said)
  bytes_t in_use = 0; ///< what the process held when it failed (0: not said)
  bytes_t total = 0;  ///< the GPU's capacity as the framework saw it (0: not said)
  /// Per GPU, what the job needs at least: in use (or the capacity) plus the failed
  /// allocation where the line says both; otherwise `held` plus the failed allocation,
  /// or just more than `held`.
  bytes_t needed(bytes_t held) const;
};

/// The GPU out-of-memory error in `text` (a job's stderr, or its tail), if any.
std::optional<gpu_oom> find_gpu_oom(std::string_view text);

/// "2.00 GiB", "20.00 MiB", "512 KiB", "1.5 GB", "17179869184 bytes": bytes, or -1.
bytes_t parse_memory_amount(std::string_view number, std::string_view unit);

} // namespace tender

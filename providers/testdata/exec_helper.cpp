// A job with predictable behaviour for executor.test.cpp, so the tests need no
// interpreter (python is not guaranteed on a fresh machine).
//
//   exec_helper burn <threads> <seconds>        spin <threads> threads for <seconds> of wall time
//   exec_helper alloc <MiB> <hold_seconds>      allocate and touch <MiB>, print "allocated", hold
//   exec_helper alloc <MiB> <file> <more_MiB>   ... then wait for <file> to exist, allocate more
//   exec_helper write <path> <MiB>              write <MiB> to <path> with write(2), no reads
//   exec_helper read <path>                     read <path> to the end, no writes
//
// Exit codes: 0 done, 2 usage, 3 allocation failed, 4 I/O error.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using namespace std::chrono;

constexpr std::size_t mib = 1 << 20;

int burn(int threads, double seconds) {
  const auto until = steady_clock::now() + duration<double>(seconds);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([until] {
      volatile unsigned long x = 0;
      while (steady_clock::now() < until)
        for (int k = 0; k < 100000; ++k)
          x = x + 1;
    });
  for (auto& t : pool)
    t.join();
  return 0;
}

char* touch(std::size_t mb) {
  auto* p = new (std::nothrow) char[mb * mib];
  if (!p)
    return nullptr;
  for (std::size_t i = 0; i < mb * mib; i += 4096)
    p[i] = 1;
  return p;
}

int alloc(std::size_t mb, const char* then_file, std::size_t more, double hold) {
  char* a = touch(mb);
  if (!a) {
    std::printf("allocation failed\n");
    return 3;
  }
  std::printf("allocated %zu\n", mb);
  std::fflush(stdout);
  if (!then_file) {
    std::this_thread::sleep_for(duration<double>(hold));
    return a[0] == 1 ? 0 : 1;
  }
  struct stat sb;
  const auto until = steady_clock::now() + seconds(60);
  while (::stat(then_file, &sb) != 0 && steady_clock::now() < until)
    std::this_thread::sleep_for(milliseconds(20));
  char* b = touch(more);
  if (!b) {
    std::printf("allocation failed\n");
    return 3;
  }
  std::printf("allocated %zu more\n", more);
  return a[0] + b[0] == 2 ? 0 : 1;
}

int write_file(const char* path, std::size_t mb) {
  std::vector<char> buf(mib, 'x');
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return 4;
  for (std::size_t i = 0; i < mb; ++i)
    if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size()))
      return 4;
  return ::close(fd) == 0 ? 0 : 4;
}

int read_file(const char* path) {
  std::vector<char> buf(mib);
  int fd = ::open(path, O_RDONLY);
  if (fd < 0)
    return 4;
  while (::read(fd, buf.data(), buf.size()) > 0) {
  }
  return ::close(fd) == 0 ? 0 : 4;
}

} // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "burn" && argc == 4)
    return burn(std::atoi(argv[2]), std::atof(argv[3]));
  if (cmd == "alloc" && argc == 4)
    return alloc(std::strtoull(argv[2], nullptr, 10), nullptr, 0, std::atof(argv[3]));
  if (cmd == "alloc" && argc == 5)
    return alloc(std::strtoull(argv[2], nullptr, 10), argv[3], std::strtoull(argv[4], nullptr, 10),
                 0);
  if (cmd == "write" && argc == 4)
    return write_file(argv[2], std::strtoull(argv[3], nullptr, 10));
  if (cmd == "read" && argc == 3)
    return read_file(argv[2]);
  std::fprintf(stderr, "usage: exec_helper burn|alloc|write|read ... (see source)\n");
  return 2;
}

// Workloads with known usage for the profiler's accuracy tests (no interpreter needed).
//
//   profile_helper ramp <MiB> <seconds> [hold_s]  grow linearly to <MiB> over <seconds>
//                                                  (touching every page), then hold
//   profile_helper send <MiB> [hold_s]             send <MiB> over TCP on 127.0.0.1 to a
//                                                  reader thread of its own, then hold
//   profile_helper sendto <port> <MiB> [hold_s]   send <MiB> over TCP to $TENDER_NET_HOST:<port>
//                                                  (the host end of a measured link), then hold
//   profile_helper forks <n> <sleep_s>             fork up to <n> children that sleep; print
//                                                  how many forks succeeded
//   profile_helper net                             print "connected" if 1.1.1.1:53 is reachable
//                                                  within 1 s, else "unreachable"
//
// Exit codes: 0 done, 2 usage, 3 allocation failed, 4 socket error.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace std::chrono;
constexpr std::size_t mib = 1 << 20;

void hold(double s) { std::this_thread::sleep_for(duration<double>(s)); }

int ramp(std::size_t total_mb, double seconds, double hold_s) {
  const auto t0 = steady_clock::now();
  const std::size_t total = total_mb * mib;
  std::vector<char*> chunks;
  std::size_t have = 0;
  constexpr std::size_t chunk = mib / 4;
  while (have < total) {
    const double t = duration<double>(steady_clock::now() - t0).count();
    const auto want = std::min(total, static_cast<std::size_t>(static_cast<double>(total) * t / seconds));
    while (have + chunk <= want) {
      auto* p = static_cast<char*>(std::malloc(chunk));
      if (!p) {
        std::printf("allocation failed\n");
        return 3;
      }
      for (std::size_t i = 0; i < chunk; i += 4096)
        p[i] = 1;
      chunks.push_back(p);
      have += chunk;
    }
    if (want >= total)
      break;
    hold(0.01);
  }
  std::printf("allocated %zu\n", have);
  std::fflush(stdout);
  hold(hold_s);
  return 0;
}

int send_loopback(std::size_t total_mb, double hold_s) {
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 1) != 0 ||
      ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("listen");
    return 4;
  }
  std::atomic<std::size_t> got{0};
  std::thread reader([&] {
    int c = ::accept(ls, nullptr, nullptr);
    std::vector<char> buf(1 << 16);
    for (;;) {
      auto n = ::read(c, buf.data(), buf.size());
      if (n <= 0)
        break;
      got += static_cast<std::size_t>(n);
    }
    ::close(c);
  });
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    return 4;
  }
  std::vector<char> buf(1 << 16, 'x');
  std::size_t sent = 0;
  while (sent < total_mb * mib) {
    auto n = ::write(s, buf.data(), std::min(buf.size(), total_mb * mib - sent));
    if (n <= 0) {
      std::perror("write");
      return 4;
    }
    sent += static_cast<std::size_t>(n);
  }
  ::close(s);
  reader.join();
  std::printf("sent %zu received %zu\n", sent, got.load());
  std::fflush(stdout);
  hold(hold_s);
  return 0;
}

int send_to(int port, std::size_t total_mb, double hold_s) {
  const char* host = std::getenv("TENDER_NET_HOST");
  if (!host) {
    std::fprintf(stderr, "TENDER_NET_HOST is not set\n");
    return 2;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || ::inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
      ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    return 4;
  }
  std::vector<char> buf(1 << 16, 'x');
  std::size_t sent = 0;
  while (sent < total_mb * mib) {
    auto n = ::write(s, buf.data(), std::min(buf.size(), total_mb * mib - sent));
    if (n <= 0) {
      std::perror("write");
      return 4;
    }
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(s, SHUT_WR);
  char c;
  while (::read(s, &c, 1) > 0) { // until the listener has read everything and closed
  }
  ::close(s);
  std::printf("sent %zu to %s:%d\n", sent, host, port);
  std::fflush(stdout);
  hold(hold_s);
  return 0;
}

int forks(int n, double sleep_s) {
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    pid_t p = ::fork();
    if (p == 0) {
      hold(sleep_s);
      ::_exit(0);
    }
    if (p < 0)
      break;
    ++ok;
  }
  std::printf("forked %d\n", ok);
  std::fflush(stdout);
  while (::wait(nullptr) > 0) {
  }
  return 0;
}

int net() {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(53);
  ::inet_pton(AF_INET, "1.1.1.1", &a.sin_addr);
  int r = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  bool ok = r == 0;
  if (!ok && errno == EINPROGRESS) {
    pollfd p{s, POLLOUT, 0};
    int err = 0;
    socklen_t l = sizeof err;
    ok = ::poll(&p, 1, 1000) == 1 && ::getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err == 0;
  }
  std::printf("%s\n", ok ? "connected" : "unreachable");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "ramp" && argc >= 4)
    return ramp(std::strtoull(argv[2], nullptr, 10), std::atof(argv[3]), argc > 4 ? std::atof(argv[4]) : 0.5);
  if (mode == "send" && argc >= 3)
    return send_loopback(std::strtoull(argv[2], nullptr, 10), argc > 3 ? std::atof(argv[3]) : 0.5);
  if (mode == "sendto" && argc >= 4)
    return send_to(std::atoi(argv[2]), std::strtoull(argv[3], nullptr, 10),
                   argc > 4 ? std::atof(argv[4]) : 0.5);
  if (mode == "forks" && argc >= 4)
    return forks(std::atoi(argv[2]), std::atof(argv[3]));
  if (mode == "net")
    return net();
  std::fprintf(stderr, "usage: profile_helper ramp|send|forks|net ...\n");
  return 2;
}

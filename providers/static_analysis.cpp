#include "providers/static_analysis.hpp"

#include "providers/profile_cache.hpp" // file_sha256

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tender {

namespace {

std::string errno_text(int e) { return std::strerror(e); }

class file_reader {
public:
  explicit file_reader(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ >= 0) {
      struct stat st;
      if (::fstat(fd_, &st) == 0) {
        size_ = static_cast<std::uint64_t>(st.st_size);
        is_dir_ = S_ISDIR(st.st_mode);
      }
    } else {
      err_ = errno;
    }
  }
  ~file_reader() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  file_reader(const file_reader&) = delete;
  file_reader& operator=(const file_reader&) = delete;
  bool ok() const { return fd_ >= 0; }
  int error() const { return err_; }
  bool is_dir() const { return is_dir_; }
  std::uint64_t size() const { return size_; }
  /// Reads exactly `n` bytes at `off`; false when the file is shorter.
  bool read(std::uint64_t off, void* out, std::size_t n) const {
    if (off > size_ || n > size_ - off)
      return false;
    auto* p = static_cast<char*>(out);
    std::size_t got = 0;
    while (got < n) {
      auto r = ::pread(fd_, p + got, n - got, static_cast<off_t>(off + got));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return false;
      got += static_cast<std::size_t>(r);
    }
    return true;
  }

private:
  int fd_ = -1;
  int err_ = 0;
  bool is_dir_ = false;
  std::uint64_t size_ = 0;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf))
    return buf;
  return path;
}

bool is_regular_executable(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<std::string> slurp(const std::string& path, std::size_t limit = 4 << 20) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::nullopt;
  std::string out;
  out.resize(limit);
  in.read(out.data(), static_cast<std::streamsize>(limit));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos)
    return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

/// "libcudart.so.12.1" -> "12.1"; "libfoo.so" -> "".
std::string soname_version(const std::string& soname) {
  auto at = soname.find(".so.");
  return at == std::string::npos ? std::string() : soname.substr(at + 4);
}

/// "libcudart.so.12" -> "libcudart"; "libpython3.11.so.1.0" -> "libpython3.11".
std::string soname_stem(const std::string& soname) {
  auto at = soname.find(".so");
  return at == std::string::npos ? soname : soname.substr(0, at);
}

/// Runs a trusted program (an interpreter asked for its version or to compile a file)
/// with a minimal environment, stdin from /dev/null, and stdout+stderr captured (at most
/// 64 KiB). Killed (its whole process group) after `timeout_ms`. nullopt when it could not
/// run or timed out.
struct captured {
  int status = 0; ///< exit status
  std::string output;
};
std::optional<captured> run_capture(const std::vector<std::string>& args, int timeout_ms) {
  std::vector<std::string> words = args;
  std::vector<char*> argv;
  for (auto& w : words)
    argv.push_back(w.data());
  argv.push_back(nullptr);
  std::string home = std::string("HOME=") + (std::getenv("HOME") ? std::getenv("HOME") : "/");
  std::string path = std::string("PATH=") +
                     (std::getenv("PATH") ? std::getenv("PATH") : "/usr/local/bin:/usr/bin:/bin");
  char lang[] = "LC_ALL=C";
  std::vector<char*> envp = {home.data(), path.data(), lang};
  std::string pyenv;
  if (const char* r = std::getenv("PYENV_ROOT")) { // pyenv shims need it
    pyenv = std::string("PYENV_ROOT=") + r;
    envp.push_back(pyenv.data());
  }
  envp.push_back(nullptr);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    return std::nullopt;
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
      ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0)
      ::dup2(null_fd, 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(out[1]);
  if (null_fd >= 0)
    ::close(null_fd);
  if (pid < 0) {
    ::close(out[0]);
    return std::nullopt;
  }
  captured c;
  bool timed_out = true;
  for (int waited = 0; waited < timeout_ms;) {
    pollfd pfd{out[0], POLLIN, 0};
    int r = ::poll(&pfd, 1, 50);
    if (r < 0 && errno != EINTR)
      break;
    if (r <= 0) {
      waited += 50;
      continue;
    }
    char buf[4096];
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      timed_out = false;
      break;
    }
    if (c.output.size() < (64u << 10))
      c.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  if (timed_out) {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (timed_out || !WIFEXITED(st))
    return std::nullopt;
  c.status = WEXITSTATUS(st);
  return c;
}

/// The Debian package owning `path` and its version, from /var/lib/dpkg (what `dpkg -S`
/// and `dpkg-query -W` read). Tries the path, its real path and the other side of the
/// /usr merge (/bin/x <-> /usr/bin/x). Empty when dpkg does not know it.
std::pair<std::string, std::string> dpkg_owner(const std::string& path, const std::string& dpkg_dir) {
  std::set<std::string> cands = {path, real_path(path)};
  for (auto c : std::vector<std::string>(cands.begin(), cands.end())) {
    if (starts_with(c, "/usr/"))
      cands.insert(c.substr(4));
    else
      cands.insert("/usr" + c);
  }
  std::string package;
  if (DIR* d = ::opendir((dpkg_dir + "/info").c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.size() < 6 || name.compare(name.size() - 5, 5, ".list") != 0)
        continue;
      auto text = slurp(dpkg_dir + "/info/" + name);
      if (!text)
        continue;
      for (auto& c : cands) {
        auto at = text->find(c + "\n");
        if (at != std::string::npos && (at == 0 || (*text)[at - 1] == '\n')) {
          package = name.substr(0, name.size() - 5);
          break;
        }
      }
      if (!package.empty())
        break;
    }
    ::closedir(d);
  }
  if (package.empty())
    return {};
  const std::string bare = package.substr(0, package.find(':')); // "libc6:amd64"
  auto status = slurp(dpkg_dir + "/status", 64 << 20);
  if (!status)
    return {bare, ""};
  std::istringstream in(*status);
  std::string line, cur, version;
  bool installed = false;
  while (std::getline(in, line)) {
    if (line.empty()) {
      cur.clear();
      installed = false;
      continue;
    }
    if (starts_with(line, "Package: "))
      cur = line.substr(9);
    else if (starts_with(line, "Status: "))
      installed = line.find(" installed") != std::string::npos;
    else if (starts_with(line, "Version: ") && cur == bare)
      version = line.substr(9);
    if (cur == bare && installed && !version.empty())
      return {bare, version};
  }
  return {bare, version};
}

/// First group of `re` in `text`, or empty.
std::string first_match(const std::string& text, const char* re) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex(re)) && m.size() > 1)
    return m[1].str();
  return {};
}

} // namespace

interpreter_version probe_interpreter_version(const std::string& lang, const std::string& path,
                                              const std::string& dpkg_dir) {
  static std::mutex mu;
  static std::map<std::string, interpreter_version> cache; // "<lang>|<digest>"
  auto digest = file_sha256(path);
  const std::string key = lang + "|" + (digest ? *digest : "path:" + real_path(path));
  {
    std::lock_guard<std::mutex> g(mu);
    if (auto it = cache.find(key); it != cache.end())
      return it->second;
  }
  interpreter_version v;
  const char* flag = lang == "java" ? "-version" : "--version";
  const char* pattern = lang == "python" ? R"(Python (\d+(?:\.\d+)+))"
                        : lang == "java" ? R"(version \"([^\"]+)\")"
                        : lang == "bash" ? R"(version (\d+(?:\.\d+)+))"
                        : lang == "zsh"  ? R"(zsh (\d+(?:\.\d+)+))"
                                         : nullptr;
  if (pattern) { // sh, dash and ksh have no version flag: only the package can tell
    if (auto out = run_capture({path, flag}, 5000)) {
      v.version = first_match(out->output, pattern);
      if (!v.version.empty())
        v.how = path + " " + flag;
    }
  }
  if (v.version.empty()) {
    auto [package, version] = dpkg_owner(path, dpkg_dir);
    if (!version.empty()) {
      v.version = version;
      v.package = package;
      v.how = "Debian package " + package + " (" + dpkg_dir + ")";
    }
  }
  std::lock_guard<std::mutex> g(mu);
  cache.emplace(key, v);
  return v;
}

// ---------------------------------------------------------------------------
// ELF

std::variant<elf_info, std::string> read_elf(const std::string& path) {
  file_reader f(path);
  if (!f.ok())
    return path + ": cannot open: " + errno_text(f.error());
  if (f.is_dir())
    return path + ": is a directory, not an executable";
  unsigned char ident[EI_NIDENT];
  if (!f.read(0, ident, sizeof ident)) {
    return path + ": not an ELF file (" + std::to_string(f.size()) + " bytes, too short)";
  }
  if (std::memcmp(ident, ELFMAG, SELFMAG) != 0)
    return path + ": not an ELF file (no ELF magic)";
  elf_info info;
  info.path = path;
  if (ident[EI_DATA] != ELFDATA2LSB)
    return path + ": big-endian ELF is not supported";
  if (ident[EI_CLASS] == ELFCLASS32) {
    Elf32_Ehdr eh;
    if (!f.read(0, &eh, sizeof eh))
      return path + ": truncated: ELF header cut short";
    info.is_64 = false;
    info.machine = eh.e_machine;
    info.type = eh.e_type;
    return info;
  }
  if (ident[EI_CLASS] != ELFCLASS64)
    return path + ": unknown ELF class " + std::to_string(ident[EI_CLASS]);
  Elf64_Ehdr eh;
  if (!f.read(0, &eh, sizeof eh))
    return path + ": truncated: ELF header cut short";
  info.machine = eh.e_machine;
  info.type = eh.e_type;
  if (eh.e_phnum == 0)
    return info;
  if (eh.e_phentsize != sizeof(Elf64_Phdr))
    return path + ": corrupt: program header entry size " + std::to_string(eh.e_phentsize);
  std::vector<Elf64_Phdr> ph(eh.e_phnum);
  if (!f.read(eh.e_phoff, ph.data(), ph.size() * sizeof(Elf64_Phdr)))
    return path + ": truncated: program headers beyond the end of the file";

  // Virtual address -> file offset through the PT_LOAD segments.
  auto to_offset = [&](std::uint64_t vaddr) -> std::optional<std::uint64_t> {
    for (auto& p : ph)
      if (p.p_type == PT_LOAD && vaddr >= p.p_vaddr && vaddr - p.p_vaddr < p.p_filesz)
        return p.p_offset + (vaddr - p.p_vaddr);
    return std::nullopt;
  };

  const Elf64_Phdr* dyn = nullptr;
  for (auto& p : ph) {
    if (p.p_type == PT_DYNAMIC)
      dyn = &p;
    if (p.p_type == PT_INTERP && p.p_filesz > 0 && p.p_filesz < 4096) {
      std::string s(p.p_filesz, '\0');
      if (!f.read(p.p_offset, s.data(), s.size()))
        return path + ": truncated: PT_INTERP beyond the end of the file";
      info.interp = s.c_str();
    }
  }
  if (!dyn)
    return info; // static executable
  info.has_dynamic = true;
  const std::size_t n = dyn->p_filesz / sizeof(Elf64_Dyn);
  if (n > (1u << 20))
    return path + ": corrupt: dynamic section of " + std::to_string(n) + " entries";
  std::vector<Elf64_Dyn> d(n);
  if (!f.read(dyn->p_offset, d.data(), n * sizeof(Elf64_Dyn)))
    return path + ": truncated: dynamic section beyond the end of the file";
  std::uint64_t strtab = 0, strsz = 0;
  bool have_strtab = false;
  std::vector<std::uint64_t> needed;
  std::optional<std::uint64_t> rpath, runpath, soname;
  for (auto& e : d) {
    if (e.d_tag == DT_NULL)
      break;
    switch (e.d_tag) {
    case DT_STRTAB:
      strtab = e.d_un.d_ptr;
      have_strtab = true;
      break;
    case DT_STRSZ:
      strsz = e.d_un.d_val;
      break;
    case DT_NEEDED:
      needed.push_back(e.d_un.d_val);
      break;
    case DT_RPATH:
      rpath = e.d_un.d_val;
      break;
    case DT_RUNPATH:
      runpath = e.d_un.d_val;
      break;
    case DT_SONAME:
      soname = e.d_un.d_val;
      break;
    default:
      break;
    }
  }
  if (needed.empty() && !rpath && !runpath && !soname)
    return info;
  if (!have_strtab)
    return path + ": corrupt: dynamic section without DT_STRTAB";
  auto off = to_offset(strtab);
  if (!off)
    return path + ": corrupt: DT_STRTAB address outside every loaded segment";
  if (strsz == 0 || strsz > (64u << 20))
    return path + ": corrupt: DT_STRSZ " + std::to_string(strsz);
  std::string table(strsz, '\0');
  if (!f.read(*off, table.data(), table.size()))
    return path + ": truncated: string table beyond the end of the file";
  auto str = [&](std::uint64_t i) -> std::optional<std::string> {
    if (i >= table.size())
      return std::nullopt;
    auto end = table.find('\0', i);
    if (end == std::string::npos)
      return std::nullopt;
    return table.substr(i, end - i);
  };
  for (auto i : needed) {
    auto s = str(i);
    if (!s)
      return path + ": corrupt: DT_NEEDED string offset " + std::to_string(i) + " out of range";
    info.needed.push_back(*s);
  }
  if (rpath)
    if (auto s = str(*rpath))
      info.rpath = split(*s, ':');
  if (runpath)
    if (auto s = str(*runpath))
      info.runpath = split(*s, ':');
  if (soname)
    if (auto s = str(*soname))
      info.soname = *s;
  return info;
}

std::multimap<std::string, std::string> read_ld_cache(const std::string& path) {
  std::multimap<std::string, std::string> out;
  auto text = slurp(path, 64 << 20);
  if (!text)
    return out;
  static const std::string magic = "glibc-ld.so.cache1.1";
  // Old-format caches carry the new format after their own table; find it.
  auto base = text->find(magic);
  if (base == std::string::npos)
    return out;
  struct header {
    char magic[17];
    char version[3];
    std::uint32_t nlibs;
    std::uint32_t len_strings;
    std::uint8_t flags;
    std::uint8_t pad[3];
    std::uint32_t extension_offset;
    std::uint32_t unused[3];
  };
  struct entry {
    std::int32_t flags;
    std::uint32_t key, value;
    std::uint32_t osversion;
    std::uint64_t hwcap;
  };
  static_assert(sizeof(header) == 48 && sizeof(entry) == 24);
  if (text->size() - base < sizeof(header))
    return out;
  header h;
  std::memcpy(&h, text->data() + base, sizeof h);
  if (h.nlibs > (text->size() - base - sizeof h) / sizeof(entry))
    return out;
  auto str = [&](std::uint32_t off) -> std::string {
    std::size_t at = base + off;
    if (at >= text->size())
      return {};
    auto end = text->find('\0', at);
    return end == std::string::npos ? std::string() : text->substr(at, end - at);
  };
  for (std::uint32_t i = 0; i < h.nlibs; ++i) {
    entry e;
    std::memcpy(&e, text->data() + base + sizeof h + i * sizeof e, sizeof e);
    auto k = str(e.key), v = str(e.value);
    if (!k.empty() && !v.empty())
      out.emplace(k, v);
  }
  return out;
}

// ---------------------------------------------------------------------------
// What names mean

bool classify_library(const std::string& soname, std::string& kind, std::string& detail,
                      std::string& vendor) {
  const std::string stem = soname_stem(soname);
  const std::string ver = soname_version(soname);
  auto v = [&](const std::string& what) { return ver.empty() ? what : what + " " + ver; };
  struct rule {
    const char* stem;
    const char* kind;
    const char* what;
    const char* vendor;
  };
  static const rule rules[] = {
      {"libcudart", "gpu", "CUDA runtime", "nvidia"},
      {"libcuda", "gpu", "CUDA driver", "nvidia"},
      {"libcudnn", "gpu", "cuDNN", "nvidia"},
      {"libcublas", "gpu", "cuBLAS", "nvidia"},
      {"libcublasLt", "gpu", "cuBLAS", "nvidia"},
      {"libcufft", "gpu", "cuFFT", "nvidia"},
      {"libcurand", "gpu", "cuRAND", "nvidia"},
      {"libcusparse", "gpu", "cuSPARSE", "nvidia"},
      {"libcusolver", "gpu", "cuSOLVER", "nvidia"},
      {"libnvrtc", "gpu", "NVRTC", "nvidia"},
      {"libnccl", "gpu", "NCCL", "nvidia"},
      {"libnvidia-ml", "gpu", "NVML", "nvidia"},
      {"libamdhip64", "gpu", "ROCm HIP", "amd"},
      {"libhsa-runtime64", "gpu", "ROCm HSA runtime", "amd"},
      {"librocblas", "gpu", "rocBLAS", "amd"},
      {"libMIOpen", "gpu", "MIOpen", "amd"},
      {"librccl", "gpu", "RCCL", "amd"},
      {"libOpenCL", "gpu", "OpenCL", "unknown"},
      {"libmpi", "multi-node", "MPI", ""},
      {"libmpi_cxx", "multi-node", "MPI", ""},
      {"libmpich", "multi-node", "MPICH", ""},
      {"libmpicxx", "multi-node", "MPICH", ""},
      {"libfabric", "multi-node", "libfabric", ""},
      {"libibverbs", "multi-node", "InfiniBand verbs", ""},
      {"librdmacm", "multi-node", "RDMA CM", ""},
      {"libucp", "multi-node", "UCX", ""},
      {"libucs", "multi-node", "UCX", ""},
      {"libuct", "multi-node", "UCX", ""},
      {"libpsm2", "multi-node", "PSM2", ""},
      {"libgomp", "cores", "OpenMP (GNU)", ""},
      {"libomp", "cores", "OpenMP (LLVM)", ""},
      {"libiomp5", "cores", "OpenMP (Intel)", ""},
      {"libtbb", "cores", "TBB", ""},
      {"libpthread", "cores", "POSIX threads", ""},
      {"libssl", "network", "TLS (OpenSSL)", ""},
      {"libgnutls", "network", "TLS (GnuTLS)", ""},
      {"libcurl", "network", "HTTP (libcurl)", ""},
      {"libcurl-gnutls", "network", "HTTP (libcurl)", ""},
      {"libzmq", "network", "ZeroMQ", ""},
      {"libgrpc", "network", "gRPC", ""},
      {"libgrpc++", "network", "gRPC", ""},
      {"libnghttp2", "network", "HTTP/2", ""},
  };
  for (auto& r : rules) {
    if (stem == r.stem) {
      kind = r.kind;
      detail = v(r.what);
      vendor = r.vendor;
      return true;
    }
  }
  return false;
}

bool classify_python_module(const std::string& module, std::string& kind, std::string& detail) {
  static const std::map<std::string, std::pair<const char*, const char*>> table = {
      {"torch", {"gpu", "PyTorch"}},
      {"tensorflow", {"gpu", "TensorFlow"}},
      {"jax", {"gpu", "JAX"}},
      {"cupy", {"gpu", "CuPy"}},
      {"pycuda", {"gpu", "PyCUDA"}},
      {"mpi4py", {"multi-node", "MPI for Python"}},
      {"horovod", {"multi-node", "Horovod"}},
      {"multiprocessing", {"cores", "multiprocessing"}},
      {"concurrent", {"cores", "concurrent.futures"}},
      {"joblib", {"cores", "joblib"}},
      {"numba", {"cores", "Numba"}},
      {"dask", {"cores", "Dask"}},
      {"ray", {"cores", "Ray"}},
      {"requests", {"network", "HTTP (requests)"}},
      {"urllib3", {"network", "HTTP (urllib3)"}},
      {"httpx", {"network", "HTTP (httpx)"}},
      {"aiohttp", {"network", "HTTP (aiohttp)"}},
      {"boto3", {"network", "AWS SDK (boto3)"}},
      {"botocore", {"network", "AWS SDK (botocore)"}},
      {"grpc", {"network", "gRPC"}},
      {"zmq", {"network", "ZeroMQ"}},
      {"socket", {"network", "sockets"}},
  };
  auto it = table.find(module);
  if (it == table.end())
    return false;
  kind = it->second.first;
  detail = it->second.second;
  return true;
}

// ---------------------------------------------------------------------------
// The analyzer

struct static_analyzer::state {
  static_report report;
  std::set<std::string> seen_files;       ///< analysed already (realpath)
  std::set<std::string> seen_findings;    ///< kind|detail|evidence, no duplicates
  std::set<std::string> seen_stack;
  std::string python; ///< the interpreter running the Python code being analysed

  void add(const std::string& kind, const std::string& detail, const std::string& evidence) {
    if (!seen_findings.insert(kind + "|" + detail + "|" + evidence).second)
      return;
    report.findings.push_back(finding{kind, detail, evidence});
    if (kind == "gpu")
      report.gpu = true;
    else if (kind == "network")
      report.network = true;
    else if (kind == "multi-node")
      report.multi_node = report.network = true;
    else if (kind == "cores")
      report.multi_core = true;
  }
  void stack(const std::string& s) {
    if (seen_stack.insert(s).second)
      report.software_stack.push_back(s);
  }
  void file(const std::string& f) {
    if (std::find(report.files.begin(), report.files.end(), f) == report.files.end())
      report.files.push_back(f);
  }
};

static_analyzer::static_analyzer(static_options opts) : opts_(std::move(opts)) {
  if (!opts_.ld_cache.empty())
    cache_ = read_ld_cache(opts_.ld_cache);
}

std::string static_analyzer::lib_search_path(const char* var) const {
  auto it = opts_.env.find(var);
  return it == opts_.env.end() ? std::string() : it->second;
}

std::optional<std::string> static_analyzer::which(const std::string& name) const {
  if (name.empty())
    return std::nullopt;
  if (name.find('/') != std::string::npos) {
    std::string p = name[0] == '/' || opts_.workdir.empty() ? name : opts_.workdir + "/" + name;
    return p;
  }
  std::string path = lib_search_path("PATH");
  if (path.empty())
    path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
  for (auto& dir : split(path, ':')) {
    std::string d = dir.empty() ? "." : dir;
    if (d[0] != '/' && !opts_.workdir.empty())
      d = opts_.workdir + "/" + d;
    std::string cand = d + "/" + name;
    if (is_regular_executable(cand))
      return cand;
  }
  return std::nullopt;
}

namespace {

std::string expand_origin(const std::string& entry, const std::string& origin) {
  std::string out;
  for (std::size_t i = 0; i < entry.size();) {
    auto tok = [&](const char* t) { return entry.compare(i, std::strlen(t), t) == 0; };
    if (tok("${ORIGIN}")) {
      out += origin;
      i += 9;
    } else if (tok("$ORIGIN")) {
      out += origin;
      i += 7;
    } else if (tok("${LIB}")) {
      out += "lib/x86_64-linux-gnu";
      i += 6;
    } else if (tok("$LIB")) {
      out += "lib/x86_64-linux-gnu";
      i += 4;
    } else if (tok("${PLATFORM}")) {
      out += "x86_64";
      i += 11;
    } else if (tok("$PLATFORM")) {
      out += "x86_64";
      i += 9;
    } else {
      out += entry[i++];
    }
  }
  return out;
}

} // namespace

std::vector<resolved_library> static_analyzer::closure(const std::string& path,
                                                       std::string* error) const {
  std::vector<resolved_library> out;
  auto root = read_elf(path);
  if (auto* e = std::get_if<std::string>(&root)) {
    if (error)
      *error = *e;
    return out;
  }
  const elf_info exe = std::get<elf_info>(root);
  const std::string exe_origin = dir_of(real_path(path));

  struct node {
    elf_info info;
    std::string origin;
    int loader = -1; ///< the object whose DT_NEEDED first named it (glibc's l_loader)
  };
  std::vector<node> queue{{exe, exe_origin, -1}};
  std::set<std::string> loaded; // by DT_NEEDED name and by soname, as the loader dedups
  const auto ld_library_path = split(lib_search_path("LD_LIBRARY_PATH"), ':');

  auto compatible = [&](const std::string& cand) -> std::optional<elf_info> {
    if (!file_exists(cand))
      return std::nullopt;
    auto r = read_elf(cand);
    auto* i = std::get_if<elf_info>(&r);
    if (!i || i->is_64 != exe.is_64 || i->machine != exe.machine)
      return std::nullopt;
    return *i;
  };

  for (std::size_t q = 0; q < queue.size(); ++q) {
    const node cur = queue[q];
    for (const auto& name : cur.info.needed) {
      if (loaded.count(name))
        continue;
      if (static_cast<int>(out.size()) >= opts_.max_libraries)
        break;
      resolved_library lib;
      lib.name = name;
      lib.needed_by = cur.info.path;
      std::optional<elf_info> found;
      auto try_dirs = [&](const std::vector<std::string>& dirs, const std::string& origin,
                          const char* via) {
        for (auto& d : dirs) {
          if (found)
            return;
          std::string dir = expand_origin(d.empty() ? "." : d, origin);
          std::string cand = dir + "/" + name;
          if (auto i = compatible(cand)) {
            found = i;
            lib.path = cand;
            lib.via = via;
          }
        }
      };
      if (name.find('/') != std::string::npos) {
        if (auto i = compatible(name)) {
          found = i;
          lib.path = name;
          lib.via = "path";
        }
      } else {
        if (cur.info.runpath.empty()) {
          // glibc's _dl_map_object: DT_RPATH of the requesting object, then of the object
          // that loaded it, and on up to the executable. An object with DT_RUNPATH has
          // its DT_RPATH ignored (but the walk goes on past it); a requesting object with
          // DT_RUNPATH uses no DT_RPATH at all (this branch).
          for (int l = static_cast<int>(q); l >= 0 && !found; l = queue[static_cast<std::size_t>(l)].loader) {
            const node& o = queue[static_cast<std::size_t>(l)];
            if (!o.info.runpath.empty() || o.info.rpath.empty())
              continue;
            const std::string via = l == static_cast<int>(q) ? "RPATH"
                                    : l == 0                 ? "RPATH of the executable"
                                                             : "RPATH of " + o.info.path;
            try_dirs(o.info.rpath, o.origin, via.c_str());
          }
        }
        if (!found)
          try_dirs(ld_library_path, exe_origin, "LD_LIBRARY_PATH");
        if (!found)
          try_dirs(cur.info.runpath, cur.origin, "RUNPATH");
        if (!found) {
          auto [b, e] = cache_.equal_range(name);
          for (auto it = b; it != e && !found; ++it)
            if (auto i = compatible(it->second)) {
              found = i;
              lib.path = it->second;
              lib.via = "ld.so.cache";
            }
        }
        if (!found)
          try_dirs(opts_.default_dirs, exe_origin, "default");
      }
      loaded.insert(name);
      if (found) {
        lib.soname = found->soname.empty() ? name : found->soname;
        loaded.insert(lib.soname);
        found->path = lib.path;
        queue.push_back({*found, dir_of(real_path(lib.path)), static_cast<int>(q)});
      } else {
        lib.soname = name;
      }
      out.push_back(lib);
    }
  }
  return out;
}

void static_analyzer::analyze_elf(const std::string& path, state& s) const {
  std::string err;
  auto libs = closure(path, &err);
  if (!err.empty()) {
    s.add("error", err, path);
    return;
  }
  s.file(path);
  for (auto& lib : libs) {
    if (lib.path.empty()) {
      s.add("missing-library",
            lib.name + " not found (needed by " + lib.needed_by + "); the job may fail to start",
            lib.needed_by);
      continue;
    }
    std::string kind, detail, vendor;
    const std::string& soname = lib.soname.empty() ? lib.name : lib.soname;
    if (!classify_library(soname, kind, detail, vendor))
      continue;
    std::string evidence = lib.path + " (" + lib.name + ", needed by " + lib.needed_by + ", via " +
                           lib.via + ")";
    s.add(kind, detail, evidence);
    if (kind == "gpu" && s.report.gpu_vendor.empty())
      s.report.gpu_vendor = vendor;
    if (kind == "gpu" || kind == "multi-node") {
      // The file behind the soname may tell the full version: libcudart.so.12 ->
      // libcudart.so.12.1.105.
      const std::string sv = soname_version(soname);
      const std::string full = soname_version(base_of(real_path(lib.path)));
      if (!full.empty() && full != sv && (sv.empty() || starts_with(full, sv + ".")))
        s.stack((sv.empty() ? detail + " " : detail.substr(0, detail.size() - sv.size())) + full);
      else
        s.stack(detail);
    }
  }
}

void static_analyzer::analyze_interpreter(const std::string& name, const std::string& path,
                                          state& s) const {
  // The version asked of the binary (or its Debian package), else from the resolved path
  // (python3 -> python3.11, java -> java-17-openjdk), else from a library of its closure
  // (libpython3.11.so.1.0).
  const std::string rp = real_path(path);
  const std::string base = base_of(rp);
  std::string lang = base_of(name);
  while (!lang.empty() && (std::isdigit(static_cast<unsigned char>(lang.back())) || lang.back() == '.'))
    lang.pop_back();
  std::string version;
  auto digits_after = [](const std::string& text, std::size_t at) {
    std::string v;
    while (at < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[at])) || text[at] == '.'))
      v += text[at++];
    while (!v.empty() && v.back() == '.')
      v.pop_back();
    return v;
  };
  std::string label = lang.empty() ? base : lang;
  std::string evidence = rp;
  if (opts_.probe_versions && !lang.empty()) {
    auto v = probe_interpreter_version(lang, path, opts_.dpkg_dir);
    if (!v.version.empty()) {
      version = v.version;
      evidence = rp + " (" + v.how + ")";
      if (!v.package.empty() && v.package != lang)
        label = v.package; // sh -> dash
    }
  }
  if (version.empty() && !lang.empty() && starts_with(base, lang))
    version = digits_after(base, lang.size());
  if (version.empty() && lang == "java") {
    auto at = rp.find("/java-");
    if (at != std::string::npos)
      version = digits_after(rp, at + 6);
  }
  if (version.empty()) {
    for (auto& lib : closure(path)) {
      if (starts_with(lib.name, "lib" + lang)) {
        version = digits_after(lib.name, 3 + lang.size());
        if (!version.empty())
          break;
      }
    }
  }
  s.add("interpreter", label + (version.empty() ? "" : " " + version), evidence);
  s.stack(label + (version.empty() ? "" : " " + version));
  s.file(rp);
}

void static_analyzer::analyze_python_text(const std::string& text, const std::string& where,
                                          const std::string& dir, int depth, state& s) const {
  std::istringstream in(text);
  std::string line;
  int no = 0;
  std::set<std::string> modules;
  bool in_string = false;
  while (std::getline(in, line)) {
    ++no;
    // Skip the bodies of triple-quoted strings (docstrings mention imports too).
    auto triples = [&](const std::string& l) {
      int n = 0;
      for (std::size_t at = 0; (at = l.find("\"\"\"", at)) != std::string::npos; at += 3)
        ++n;
      for (std::size_t at = 0; (at = l.find("'''", at)) != std::string::npos; at += 3)
        ++n;
      return n;
    };
    const int t = triples(line);
    if (in_string) {
      if (t % 2 == 1)
        in_string = false;
      continue;
    }
    if (t % 2 == 1)
      in_string = true;
    std::string l = line;
    if (auto hash = l.find('#'); hash != std::string::npos)
      l = l.substr(0, hash);
    // Statements separated by ';' on one line.
    for (auto& stmt0 : split(l, ';')) {
      std::string stmt = trim(stmt0);
      std::vector<std::string> names;
      if (starts_with(stmt, "import ")) {
        for (auto& part : split(stmt.substr(7), ',')) {
          std::istringstream w(part);
          std::string mod;
          w >> mod;
          if (!mod.empty())
            names.push_back(mod);
        }
      } else if (starts_with(stmt, "from ")) {
        std::istringstream w(stmt.substr(5));
        std::string mod;
        w >> mod;
        if (!mod.empty() && mod[0] != '.')
          names.push_back(mod);
        else if (!mod.empty()) { // relative import: a local module
          std::string rest = mod.substr(mod.find_first_not_of('.') == std::string::npos
                                            ? mod.size()
                                            : mod.find_first_not_of('.'));
          if (!rest.empty())
            names.push_back(rest);
        }
      } else if (stmt.find("__import__(") != std::string::npos ||
                 stmt.find("import_module(") != std::string::npos) {
        auto q = stmt.find_first_of("'\"", stmt.find('('));
        if (q != std::string::npos) {
          auto e = stmt.find(stmt[q], q + 1);
          if (e != std::string::npos)
            names.push_back(stmt.substr(q + 1, e - q - 1));
        }
      }
      for (auto& full : names) {
        std::string top = full.substr(0, full.find('.'));
        if (top.empty() || !modules.insert(top).second)
          continue;
        std::string kind, detail;
        std::string evidence = where + ":" + std::to_string(no) + ": " + trim(line);
        if (classify_python_module(top, kind, detail)) {
          s.add(kind, detail + " (import " + full + ")", evidence);
          if (kind == "gpu" || kind == "multi-node")
            s.stack(detail);
        } else if (depth > 0 && !dir.empty()) {
          // A local module beside the script: scanned too.
          for (auto cand : {dir + "/" + top + ".py", dir + "/" + top + "/__init__.py"})
            if (file_exists(cand)) {
              analyze_python_file(cand, depth - 1, s);
              break;
            }
        }
      }
    }
  }
}

void static_analyzer::check_python_syntax(const std::string& path, bool entry, state& s) const {
  if (!opts_.check_syntax || s.python.empty())
    return;
  // compile() parses and compiles without executing anything of the file.
  static const char* code =
      "import sys\n"
      "p = sys.argv[1]\n"
      "try:\n"
      "    compile(open(p, 'rb').read(), p, 'exec', dont_inherit=True)\n"
      "except SyntaxError as e:\n"
      "    sys.stdout.write('tender-syntax\\t%d\\t%s\\n' % (e.lineno or 0, e.msg))\n"
      "except ValueError as e:\n"
      "    sys.stdout.write('tender-syntax\\t0\\t%s\\n' % e)\n";
  auto out = run_capture({s.python, "-I", "-S", "-c", code, path}, 10'000);
  if (!out) {
    s.add("syntax-unchecked", "could not compile the script with " + s.python + " within 10 s",
          path);
    return;
  }
  auto at = out->output.find("tender-syntax\t");
  if (at == std::string::npos)
    return;
  auto fields = split(out->output.substr(at, out->output.find('\n', at) - at), '\t');
  if (fields.size() < 3)
    return;
  const int line = std::atoi(fields[1].c_str());
  std::string source;
  if (auto text = slurp(path); text && line > 0) {
    std::istringstream in(*text);
    for (int i = 0; i < line && std::getline(in, source); ++i) {
    }
    source = trim(source);
  }
  const std::string where = path + ":" + std::to_string(line);
  const std::string evidence = source.empty() ? where : where + ": " + source;
  s.add("error", "Python syntax error: " + fields[2] + " (" + where + ")", evidence);
  if (entry && s.report.fatal.empty()) {
    s.report.fatal = "the script does not compile: " + fields[2] + " at " + where;
    s.report.fatal_evidence = evidence;
  }
}

void static_analyzer::analyze_python_file(const std::string& path, int depth, state& s,
                                          bool entry) const {
  if (!s.seen_files.insert(real_path(path)).second)
    return;
  auto text = slurp(path);
  if (!text) {
    s.add("error", "cannot read Python script: " + errno_text(errno), path);
    return;
  }
  s.file(path);
  check_python_syntax(path, entry, s);
  analyze_python_text(*text, path, dir_of(path), depth, s);
}

namespace {

/// Words of a shell command line, honouring quotes (no expansion).
std::vector<std::string> shell_words(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool have = false;
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == quote)
        quote = 0;
      else
        cur += c;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      have = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      cur += line[++i];
      have = true;
    } else if (c == ' ' || c == '\t') {
      if (have)
        out.push_back(cur);
      cur.clear();
      have = false;
    } else {
      cur += c;
      have = true;
    }
  }
  if (have)
    out.push_back(cur);
  return out;
}

/// Splits a shell line into simple commands at ; | & && || ( ) and newlines, outside quotes.
std::vector<std::string> shell_commands(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  char quote = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      cur += c;
      if (c == quote)
        quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      cur += c;
    } else if (c == '#' && (cur.empty() || cur.back() == ' ' || cur.back() == '\t')) {
      while (i < text.size() && text[i] != '\n')
        ++i;
      out.push_back(cur);
      cur.clear();
    } else if (c == ';' || c == '|' || c == '&' || c == '\n' || c == '(' || c == ')' ||
               c == '`') {
      out.push_back(cur);
      cur.clear();
    } else if (c == '$' && i + 1 < text.size() && text[i + 1] == '(') {
      out.push_back(cur);
      cur.clear();
      ++i;
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool is_interpreter(const std::string& base, const char* lang) {
  if (!starts_with(base, lang))
    return false;
  for (std::size_t i = std::strlen(lang); i < base.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(base[i])) && base[i] != '.')
      return false;
  return true;
}

} // namespace

void static_analyzer::analyze_shell_text(const std::string& text, const std::string& where,
                                         int depth, state& s) const {
  // Words that come before a command (skipped), and builtins whose arguments are not
  // commands (the whole simple command is skipped).
  static const std::set<std::string> keywords = {
      "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
      "in", "function", "{", "}", "!", "time", "exec"};
  static const std::set<std::string> builtins = {
      "[[", "]]", "export", "local", "return", "exit", "set", "unset", "shift", "cd", "echo",
      "printf", "read", "test", "[", "true", "false", ":", "eval", "wait", "trap", "source", ".",
      "declare", "readonly", "break", "continue", "alias", "umask", "ulimit", "type", "command"};
  static const std::map<std::string, std::pair<const char*, const char*>> known = {
      {"nvidia-smi", {"gpu", "NVIDIA tools (nvidia-smi)"}},
      {"nvcc", {"gpu", "CUDA compiler"}},
      {"rocm-smi", {"gpu", "ROCm tools (rocm-smi)"}},
      {"mpirun", {"multi-node", "MPI launcher (mpirun)"}},
      {"mpiexec", {"multi-node", "MPI launcher (mpiexec)"}},
      {"srun", {"multi-node", "Slurm launcher (srun)"}},
      {"curl", {"network", "HTTP client (curl)"}},
      {"wget", {"network", "HTTP client (wget)"}},
      {"ssh", {"network", "ssh"}},
      {"scp", {"network", "scp"}},
      {"rsync", {"network", "rsync"}},
      {"aws", {"network", "AWS CLI"}},
      {"gsutil", {"network", "Google Cloud Storage CLI"}},
      {"git", {"network", "git"}},
      {"xargs", {"cores", "xargs (may run in parallel)"}},
      {"parallel", {"cores", "GNU parallel"}},
      {"make", {"cores", "make (may run in parallel)"}},
  };
  std::istringstream lines(text);
  std::string line;
  int no = 0;
  while (std::getline(lines, line)) {
    ++no;
    if (no == 1 && starts_with(line, "#!"))
      continue;
    for (auto& cmd : shell_commands(line)) {
      auto words = shell_words(trim(cmd));
      std::size_t i = 0;
      while (i < words.size() &&
             (keywords.count(words[i]) || (words[i].find('=') != std::string::npos &&
                                           words[i].find('=') > 0 && words[i][0] != '-')))
        ++i;
      if (i >= words.size() || builtins.count(words[i]))
        continue;
      // `for NAME in WORDS`, `case WORD in`, `select NAME in`: no command here.
      if (i > 0 && (words[i - 1] == "for" || words[i - 1] == "case" || words[i - 1] == "select"))
        continue;
      if (words[0] == "for" || words[0] == "case" || words[0] == "select")
        continue;
      std::vector<std::string> argv(words.begin() + static_cast<long>(i), words.end());
      // Wrappers run the command after their options (and timeout's duration).
      static const std::set<std::string> wrappers = {"timeout", "nice", "nohup", "env",
                                                     "stdbuf", "ionice", "time", "taskset",
                                                     "numactl", "chrt", "setsid"};
      if (wrappers.count(base_of(argv[0])) && depth > 0) {
        const std::string wrapper = base_of(argv[0]);
        std::size_t k = 1;
        while (k < argv.size() && (argv[k][0] == '-' || (wrapper == "env" && argv[k].find('=') != std::string::npos)))
          ++k;
        if (wrapper == "timeout" || wrapper == "taskset" || wrapper == "chrt")
          ++k; // the duration, the cpu list, the priority
        if (k < argv.size()) {
          std::vector<std::string> inner(argv.begin() + static_cast<long>(k), argv.end());
          if (auto r = which(inner[0]))
            s.add("calls", base_of(inner[0]) + " (" + *r + ", under " + wrapper + ")",
                  where + ":" + std::to_string(no) + ": " + trim(line));
          analyze_command(inner, depth - 1, s);
        }
      }
      const std::string& prog = argv[0];
      if (prog.empty() || prog[0] == '$' || prog[0] == '-' || prog[0] == '>' || prog[0] == '<')
        continue;
      const std::string evidence = where + ":" + std::to_string(no) + ": " + trim(line);
      auto it = known.find(base_of(prog));
      if (it != known.end())
        s.add(it->second.first, it->second.second, evidence);
      auto resolved = which(prog);
      if (!resolved) {
        s.add("missing-command", prog + " not found in PATH", evidence);
        continue;
      }
      s.add("calls", base_of(prog) + " (" + *resolved + ")", evidence);
      if (depth > 0)
        analyze_command(argv, depth - 1, s);
    }
  }
}

void static_analyzer::analyze_command(const std::vector<std::string>& argv, int depth,
                                      state& s) const {
  if (argv.empty() || argv[0].empty()) {
    s.add("error", "empty command", "");
    return;
  }
  const std::string base = base_of(argv[0]);
  const bool launcher = is_interpreter(base, "python") || is_interpreter(base, "bash") ||
                        is_interpreter(base, "sh") || base == "dash" || base == "zsh" ||
                        base == "ksh" || base == "java";
  auto exe = which(argv[0]);
  if (!exe) {
    s.add("error", "command not found: " + argv[0] + " is not in PATH", argv[0]);
    if (!launcher)
      return;
    exe = argv[0]; // the script it names still tells what the job needs
  }
  struct stat st;
  if (::stat(exe->c_str(), &st) != 0) {
    if (exe != argv[0] || argv[0].find('/') != std::string::npos)
      s.add("error", "command not found: " + *exe + ": " + errno_text(errno), *exe);
    if (!launcher)
      return;
  } else if (S_ISDIR(st.st_mode)) {
    s.add("error", *exe + " is a directory, not an executable", *exe);
    return;
  } else if (::access(exe->c_str(), X_OK) != 0 || (st.st_mode & 0111) == 0) {
    s.add("error", *exe + " is not executable", *exe);
    // Still worth reading what it is (a script run with the wrong mode, ...).
  }
  const std::string rp = real_path(*exe);

  // A launcher: the interpreter named by argv[0].
  auto script_arg = [&](std::size_t from) -> std::optional<std::size_t> {
    for (std::size_t i = from; i < argv.size(); ++i) {
      if (argv[i] == "--")
        return i + 1 < argv.size() ? std::optional<std::size_t>(i + 1) : std::nullopt;
      if (argv[i].empty() || argv[i][0] != '-')
        return i;
      if (argv[i] == "-c" || argv[i] == "-m")
        return std::nullopt;
    }
    return std::nullopt;
  };
  auto flag_value = [&](const char* flag) -> std::optional<std::string> {
    for (std::size_t i = 1; i + 1 < argv.size(); ++i)
      if (argv[i] == flag)
        return argv[i + 1];
    return std::nullopt;
  };

  const bool already = !s.seen_files.insert(rp).second;
  if (is_interpreter(base, "python")) {
    if (!already && file_exists(*exe))
      analyze_interpreter(argv[0], *exe, s);
    if (auto code = flag_value("-c")) {
      analyze_python_text(*code, "python -c", opts_.workdir, depth, s);
    } else if (auto mod = flag_value("-m")) {
      std::string kind, detail;
      std::string top = mod->substr(0, mod->find('.'));
      if (classify_python_module(top, kind, detail))
        s.add(kind, detail + " (python -m " + *mod + ")", "argv");
      else if (!opts_.workdir.empty() && file_exists(opts_.workdir + "/" + top + ".py")) {
        s.python = file_exists(*exe) ? *exe : std::string();
        analyze_python_file(opts_.workdir + "/" + top + ".py", depth, s, true);
      }
    } else if (auto i = script_arg(1)) {
      std::string script = argv[*i][0] == '/' || opts_.workdir.empty()
                               ? argv[*i]
                               : opts_.workdir + "/" + argv[*i];
      if (!file_exists(script)) {
        s.add("error", "Python script not found: " + script, script);
      } else {
        s.python = exe && file_exists(*exe) ? *exe : std::string();
        analyze_python_file(script, depth, s, true);
      }
    }
    return;
  }
  if (is_interpreter(base, "bash") || is_interpreter(base, "sh") || base == "dash" ||
      base == "zsh" || base == "ksh") {
    if (!already && file_exists(*exe))
      analyze_interpreter(argv[0], *exe, s);
    if (auto code = flag_value("-c")) {
      analyze_shell_text(*code, base + " -c", depth, s);
    } else if (auto i = script_arg(1)) {
      std::string script = argv[*i][0] == '/' || opts_.workdir.empty()
                               ? argv[*i]
                               : opts_.workdir + "/" + argv[*i];
      if (!file_exists(script)) {
        s.add("error", "shell script not found: " + script, script);
      } else if (s.seen_files.insert(real_path(script)).second) {
        s.file(script);
        if (auto text = slurp(script))
          analyze_shell_text(*text, script, depth, s);
        else
          s.add("error", "cannot read shell script: " + errno_text(errno), script);
      }
    }
    return;
  }
  if (base == "java") {
    if (!already && file_exists(*exe))
      analyze_interpreter(argv[0], *exe, s);
    if (auto jar = flag_value("-jar")) {
      std::string p = (*jar)[0] == '/' || opts_.workdir.empty() ? *jar : opts_.workdir + "/" + *jar;
      if (file_exists(p))
        s.file(p);
      s.add("jar", "runs " + *jar, p);
    }
    return;
  }
  if (already)
    return;

  // A file: ELF, or a script with a shebang.
  file_reader f(*exe);
  char head[2] = {0, 0};
  if (f.ok() && f.read(0, head, 2) && head[0] == '#' && head[1] == '!') {
    auto text = slurp(*exe);
    std::string first = text ? text->substr(0, text->find('\n')) : std::string();
    auto words = shell_words(trim(first.substr(2)));
    if (words.empty()) {
      s.add("error", "empty shebang line", *exe + ":1");
      return;
    }
    s.file(*exe);
    std::vector<std::string> interp = words;
    if (base_of(words[0]) == "env") {
      interp.erase(interp.begin());
      while (!interp.empty() && interp[0][0] == '-') // env -S, env -i
        interp.erase(interp.begin());
      if (interp.empty()) {
        s.add("error", "shebang runs env without a program", *exe + ":1");
        return;
      }
    }
    s.add("shebang", trim(first.substr(2)), *exe + ":1");
    auto ipath = which(interp[0]);
    if (!ipath) {
      s.add("error", "interpreter " + interp[0] + " not found", *exe + ":1");
      return;
    }
    const std::string ib = base_of(interp[0]);
    if (is_interpreter(ib, "python")) {
      analyze_interpreter(interp[0], *ipath, s);
      s.python = *ipath;
      check_python_syntax(*exe, true, s);
      analyze_python_text(*text, *exe, dir_of(*exe), depth, s);
    } else if (is_interpreter(ib, "bash") || is_interpreter(ib, "sh") || ib == "dash" ||
               ib == "zsh" || ib == "ksh") {
      analyze_interpreter(interp[0], *ipath, s);
      analyze_shell_text(*text, *exe, depth, s);
    } else {
      analyze_interpreter(interp[0], *ipath, s);
    }
    return;
  }
  analyze_elf(*exe, s);
}

static_report static_analyzer::analyze(const std::vector<std::string>& argv) const {
  state s;
  analyze_command(argv, opts_.max_depth, s);
  return std::move(s.report);
}

} // namespace tender

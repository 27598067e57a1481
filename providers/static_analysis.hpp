#pragma once
/// Static analysis of a job's command without running it: what the code says it needs.
///
/// Native executables: the ELF64 dynamic section is read directly (PT_DYNAMIC, DT_NEEDED,
/// DT_RPATH, DT_RUNPATH, DT_SONAME through DT_STRTAB) and the dependency closure is resolved
/// the way glibc's loader does it: a name with a slash is a path; otherwise DT_RPATH of the
/// requesting object and of the executable (only when the requesting object has no
/// DT_RUNPATH), then LD_LIBRARY_PATH (from the job's environment), then DT_RUNPATH of the
/// requesting object only (not inherited), then /etc/ld.so.cache, then the default
/// directories. `$ORIGIN` (and `${ORIGIN}`, `$LIB`, `$PLATFORM`) are expanded; candidates of
/// another ELF class or machine are skipped, as the loader does.
///
/// Libraries map to needs: CUDA/cuDNN/cuBLAS/NCCL/ROCm -> "gpu" (vendor, version from the
/// soname), MPI/libfabric/ibverbs/UCX -> "multi-node", OpenMP/TBB/pthreads -> "cores",
/// TLS/HTTP/ZeroMQ/gRPC clients -> "network".
///
/// Scripts: the shebang or the launcher (`python3 x.py`, `bash x.sh`, `sh -c '...'`,
/// `java -jar x.jar`) names the interpreter. Its version is asked of the interpreter binary
/// itself (`python3 --version`, `bash --version`, `java -version`, under a 5 s timeout; the
/// script is not involved), else read from the Debian package owning it (sh, dash), else
/// from its resolved path (`python3` -> `python3.11`) or its libraries; probes are cached
/// per binary digest. Python sources are compiled by the job's interpreter without being
/// run (`compile()` only, under a timeout) so a syntax error is a finding with file:line,
/// and one in the entry script makes the report `fatal`; they are scanned for imports (and
/// local modules beside them, one level). Shell scripts are scanned for the commands they
/// call (each analysed in turn, bounded depth). Versioned libraries name their full version
/// where the file behind the soname tells it (libcudart.so.12 -> libcudart.so.12.1.105).
///
/// Every finding carries its evidence (file, library chain or line). Bad input (a missing,
/// unreadable, non-ELF or truncated file) is a finding of kind "error", never an exception.

#include "protocol/profile.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tender {

/// What the dynamic section of one ELF file says.
struct elf_info {
  std::string path;
  bool is_64 = true;
  std::uint16_t machine = 0;
  std::uint16_t type = 0; ///< ET_EXEC, ET_DYN, ...
  std::string interp;     ///< PT_INTERP, empty for static executables and libraries
  std::string soname;
  std::vector<std::string> needed;
  std::vector<std::string> rpath;   ///< split on ':', unexpanded
  std::vector<std::string> runpath; ///< split on ':', unexpanded
  bool has_dynamic = false;
};

/// Reads an ELF file's headers and dynamic section. Returns a message naming the file and
/// what is wrong ("not an ELF file", "truncated: ...", "cannot open: ...") otherwise.
/// 32-bit files are read for their class and machine only (`has_dynamic` false).
std::variant<elf_info, std::string> read_elf(const std::string& path);

/// Entries of a glibc ld.so.cache (new format, "glibc-ld.so.cache1.1"): soname -> paths.
/// Empty when the file is missing or unreadable.
std::multimap<std::string, std::string> read_ld_cache(const std::string& path);

/// One library of a dependency closure.
struct resolved_library {
  std::string name;      ///< as written in DT_NEEDED
  std::string path;      ///< where the loader would find it; empty when not found
  std::string needed_by; ///< the object whose DT_NEEDED names it
  std::string via;       ///< "RPATH", "LD_LIBRARY_PATH", "RUNPATH", "ld.so.cache", "default", "path"
  std::string soname;    ///< the library's own DT_SONAME (or `name`)
};

struct static_options {
  std::map<std::string, std::string> env; ///< the job's environment (PATH, LD_LIBRARY_PATH)
  std::string workdir;                    ///< relative paths in the command resolve here
  std::string ld_cache = "/etc/ld.so.cache"; ///< empty: no cache
  std::vector<std::string> default_dirs = {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                           "/lib", "/usr/lib"};
  int max_depth = 3;        ///< scripts calling scripts
  int max_libraries = 512;  ///< closure size bound
  // Added with version probes and the syntax check (additive):
  bool probe_versions = true; ///< run interpreters for their version (cached per digest)
  bool check_syntax = true;   ///< compile Python scripts with the job's interpreter
  std::string dpkg_dir = "/var/lib/dpkg";
};

/// The result: findings plus the needs they add up to.
struct static_report {
  std::vector<finding> findings;
  std::vector<std::string> software_stack; ///< "python 3.11", "CUDA runtime 12", ...
  std::string gpu_vendor;                  ///< "nvidia", "amd", "unknown" or empty
  bool gpu = false;
  bool network = false;
  bool multi_node = false;
  bool multi_core = false;
  /// Files the command consists of (executables, scripts, local modules): for the cache key.
  std::vector<std::string> files;
  /// Added with the syntax check (additive): why the command cannot run at all (its entry
  /// script does not compile), empty otherwise; its evidence is "file:line: text".
  std::string fatal;
  std::string fatal_evidence;
};

class static_analyzer {
public:
  explicit static_analyzer(static_options opts = {});

  /// Analyses a command (argv, argv[0] resolved through the job's PATH).
  static_report analyze(const std::vector<std::string>& argv) const;

  /// The loader's view of one executable or library: every library of its closure.
  std::vector<resolved_library> closure(const std::string& path, std::string* error = nullptr) const;

  /// Resolves a command name through the job's PATH (or returns it when it has a slash).
  std::optional<std::string> which(const std::string& name) const;

private:
  struct state;
  void analyze_command(const std::vector<std::string>& argv, int depth, state& s) const;
  void analyze_elf(const std::string& path, state& s) const;
  void analyze_python_file(const std::string& path, int depth, state& s,
                           bool entry = false) const;
  void check_python_syntax(const std::string& path, bool entry, state& s) const;
  void analyze_python_text(const std::string& text, const std::string& where,
                           const std::string& dir, int depth, state& s) const;
  void analyze_shell_text(const std::string& text, const std::string& where, int depth,
                          state& s) const;
  void analyze_interpreter(const std::string& name, const std::string& path, state& s) const;
  std::string lib_search_path(const char* var) const;

  static_options opts_;
  std::multimap<std::string, std::string> cache_;
};

/// An interpreter's version: asked of the binary with its version flag (python, bash, zsh
/// `--version`; java `-version`) under a 5 s timeout, else the version of the Debian package
/// that owns the binary (sh, dash, ksh), found through `<dpkg_dir>/info/*.list` and
/// `<dpkg_dir>/status`. Cached for the life of the process per (language, SHA-256 of the
/// binary), so a binary is probed once however many jobs and paths name it.
struct interpreter_version {
  std::string version; ///< "3.11.2", "0.5.12-2"; empty when unknown
  std::string package; ///< the Debian package, when the version is the package's
  std::string how;     ///< evidence: the command run, or the package database
};
interpreter_version probe_interpreter_version(const std::string& lang, const std::string& path,
                                              const std::string& dpkg_dir = "/var/lib/dpkg");

/// What one library name means, if anything: fills kind ("gpu", "multi-node", "cores",
/// "network"), a detail like "CUDA runtime 12" and the vendor for GPUs. False otherwise.
bool classify_library(const std::string& soname, std::string& kind, std::string& detail,
                      std::string& vendor);

/// What importing one Python top-level module means ("torch" -> gpu), false otherwise.
bool classify_python_module(const std::string& module, std::string& kind, std::string& detail);

} // namespace tender

// Static analysis against real ELF files the test builds with the compiler, and real
// scripts it writes: nothing is mocked, and the loader itself checks the resolution.

#include "providers/static_analysis.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <sys/wait.h>

namespace tender {
namespace {

namespace fs = std::filesystem;

#ifndef TENDER_CXX
#define TENDER_CXX "c++"
#endif

class static_analysis_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tender-static-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& path, const std::string& text, bool exec = false) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << text;
    if (exec)
      fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  }

  /// Compiles `source` (C++) with `flags`; fails the test if the compiler does.
  void compile(const std::string& source, const std::string& out, const std::string& flags) {
    const std::string src = out + ".cpp";
    write(src, source);
    const std::string cmd = std::string(TENDER_CXX) + " -fno-sanitize=all -o '" + out + "' '" +
                            src + "' " + flags + " 2>'" + out + ".log'";
    int rc = std::system(cmd.c_str());
    ASSERT_EQ(rc, 0) << cmd;
  }

  /// A stub library whose soname is `soname`, defining `extern "C" int <symbol>()`.
  void stub_library(const std::string& path, const std::string& soname, const std::string& symbol,
                    const std::string& extra_flags = "") {
    compile("extern \"C\" int " + symbol + "() { return 7; }\n", path,
            "-shared -fPIC -Wl,-soname," + soname + " " + extra_flags);
  }

  static bool has(const static_report& r, const std::string& kind, const std::string& detail) {
    for (auto& f : r.findings)
      if (f.kind == kind && f.detail.find(detail) != std::string::npos)
        return true;
    return false;
  }
  static const finding* find(const static_report& r, const std::string& kind) {
    for (auto& f : r.findings)
      if (f.kind == kind)
        return &f;
    return nullptr;
  }
  static std::string dump(const static_report& r) {
    std::string s;
    for (auto& f : r.findings)
      s += f.kind + " | " + f.detail + " | " + f.evidence + "\n";
    return s;
  }

  /// The real loader's verdict: does the executable start (and return 0)?
  static int run(const std::string& exe) {
    int rc = std::system(("'" + exe + "' >/dev/null 2>&1").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  std::string dir_;
};

TEST_F(static_analysis_test, reads_the_dynamic_section_of_a_built_library) {
  stub_library(dir_ + "/libcudart.so.12", "libcudart.so.12", "cudaMalloc",
               "-Wl,--no-as-needed -lm");
  auto r = read_elf(dir_ + "/libcudart.so.12");
  ASSERT_TRUE(std::holds_alternative<elf_info>(r)) << std::get<std::string>(r);
  auto& e = std::get<elf_info>(r);
  EXPECT_TRUE(e.is_64);
  EXPECT_TRUE(e.has_dynamic);
  EXPECT_EQ(e.soname, "libcudart.so.12");
  EXPECT_NE(std::find(e.needed.begin(), e.needed.end(), "libm.so.6"), e.needed.end());
}

TEST_F(static_analysis_test, executable_linked_against_cudart_stub_is_gpu) {
  stub_library(dir_ + "/lib/libcudart.so.12", "libcudart.so.12", "cudaMalloc");
  compile("extern \"C\" int cudaMalloc();\nint main() { return cudaMalloc() == 7 ? 0 : 1; }\n",
          dir_ + "/app",
          "-Wl,--no-as-needed '" + dir_ + "/lib/libcudart.so.12' -Wl,--enable-new-dtags,-rpath,'$ORIGIN/lib'");
  ASSERT_EQ(run(dir_ + "/app"), 0) << "the real loader must accept the chain";
  static_analyzer a;
  auto r = a.analyze({dir_ + "/app"});
  EXPECT_TRUE(r.gpu) << dump(r);
  EXPECT_EQ(r.gpu_vendor, "nvidia");
  EXPECT_TRUE(has(r, "gpu", "CUDA runtime 12")) << dump(r);
  const finding* f = find(r, "gpu");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->evidence.find(dir_ + "/lib/libcudart.so.12"), std::string::npos) << f->evidence;
  EXPECT_NE(f->evidence.find("RUNPATH"), std::string::npos) << f->evidence;
  EXPECT_NE(std::find(r.software_stack.begin(), r.software_stack.end(), "CUDA runtime 12"),
            r.software_stack.end());
}

// exe --(RUNPATH $ORIGIN/../lib)--> liba.so --(RUNPATH $ORIGIN/sub)--> sub/libcudart.so.12.
// The executable's DT_NEEDED never names libcudart, and its RUNPATH does not reach sub/.
TEST_F(static_analysis_test, finds_a_dependency_reachable_only_through_a_librarys_runpath) {
  stub_library(dir_ + "/lib/sub/libcudart.so.12", "libcudart.so.12", "cudaMalloc");
  compile("extern \"C\" int cudaMalloc();\nextern \"C\" int a_work() { return cudaMalloc(); }\n",
          dir_ + "/lib/liba.so",
          "-shared -fPIC -Wl,-soname,liba.so -Wl,--no-as-needed '" + dir_ +
              "/lib/sub/libcudart.so.12' -Wl,--enable-new-dtags,-rpath,'$ORIGIN/sub'");
  compile("extern \"C\" int a_work();\nint main() { return a_work() == 7 ? 0 : 1; }\n",
          dir_ + "/bin/app",
          "-Wl,--no-as-needed '" + dir_ + "/lib/liba.so' -Wl,-rpath-link,'" + dir_ +
              "/lib/sub' -Wl,--enable-new-dtags,-rpath,'$ORIGIN/../lib'");
  ASSERT_EQ(run(dir_ + "/bin/app"), 0) << "the real loader must accept the chain";

  auto exe = std::get<elf_info>(read_elf(dir_ + "/bin/app"));
  EXPECT_EQ(std::find(exe.needed.begin(), exe.needed.end(), "libcudart.so.12"), exe.needed.end())
      << "a plain DT_NEEDED match must not be enough";

  static_analyzer a;
  auto libs = a.closure(dir_ + "/bin/app");
  const resolved_library* cud = nullptr;
  for (auto& l : libs)
    if (l.name == "libcudart.so.12")
      cud = &l;
  ASSERT_NE(cud, nullptr);
  EXPECT_EQ(fs::canonical(cud->needed_by), fs::canonical(dir_ + "/lib/liba.so"));
  EXPECT_EQ(fs::canonical(cud->path), fs::canonical(dir_ + "/lib/sub/libcudart.so.12"));
  EXPECT_EQ(cud->via, "RUNPATH");

  auto r = a.analyze({dir_ + "/bin/app"});
  EXPECT_TRUE(r.gpu) << dump(r);
  EXPECT_TRUE(has(r, "gpu", "CUDA runtime 12")) << dump(r);
}

// RUNPATH is not inherited: liba (no RUNPATH of its own) cannot see the executable's
// RUNPATH directory, so the loader fails and so must the analysis. With the old DT_RPATH
// on the executable it is inherited and both succeed.
TEST_F(static_analysis_test, runpath_is_not_inherited_but_rpath_is) {
  stub_library(dir_ + "/deps/libcudart.so.12", "libcudart.so.12", "cudaMalloc");
  compile("extern \"C\" int cudaMalloc();\nextern \"C\" int a_work() { return cudaMalloc(); }\n",
          dir_ + "/lib/liba.so",
          "-shared -fPIC -Wl,-soname,liba.so -Wl,--no-as-needed '" + dir_ +
              "/deps/libcudart.so.12'");
  const std::string main_src = "extern \"C\" int a_work();\nint main() { return a_work() == 7 ? 0 : 1; }\n";
  const std::string link = "-Wl,--no-as-needed '" + dir_ + "/lib/liba.so' -Wl,-rpath-link,'" +
                           dir_ + "/deps' ";
  compile(main_src, dir_ + "/runpath_app",
          link + "-Wl,--enable-new-dtags,-rpath,'$ORIGIN/lib:$ORIGIN/deps'");
  compile(main_src, dir_ + "/rpath_app",
          link + "-Wl,--disable-new-dtags,-rpath,'$ORIGIN/lib:$ORIGIN/deps'");
  EXPECT_NE(run(dir_ + "/runpath_app"), 0) << "the loader does not inherit RUNPATH";
  EXPECT_EQ(run(dir_ + "/rpath_app"), 0) << "the loader inherits RPATH";

  static_analyzer a;
  auto with_runpath = a.analyze({dir_ + "/runpath_app"});
  EXPECT_FALSE(with_runpath.gpu) << dump(with_runpath);
  EXPECT_TRUE(has(with_runpath, "missing-library", "libcudart.so.12")) << dump(with_runpath);
  auto with_rpath = a.analyze({dir_ + "/rpath_app"});
  EXPECT_TRUE(with_rpath.gpu) << dump(with_rpath);
}

// glibc searches DT_RPATH of the requesting object and then of its loaders up the chain
// (only when the requesting object has no DT_RUNPATH). The chain here:
//   app (RPATH $ORIGIN/a) -> a/libta.so (RPATH $ORIGIN/../b:$ORIGIN/../c)
//     -> b/libtb.so (no RPATH) -> libtc.so, found only in libta's RPATH (c/)
// The executable's own RPATH does not reach c/: only the loader chain does. With a
// DT_RUNPATH in libtb (pointing nowhere useful), the RPATH chain is not searched for its
// needs and the loader fails. Each verdict is checked against the real loader first.
TEST_F(static_analysis_test, rpath_is_inherited_up_the_chain_of_loaders_unless_runpath_stops_it) {
  stub_library(dir_ + "/c/libtc.so", "libtc.so", "c_fn");
  auto build = [&](const std::string& root, const std::string& b_flags) {
    fs::create_directories(root + "/c");
    fs::copy_file(dir_ + "/c/libtc.so", root + "/c/libtc.so");
    compile("extern \"C\" int c_fn();\nextern \"C\" int b_fn() { return c_fn(); }\n",
            root + "/b/libtb.so",
            "-shared -fPIC -Wl,-soname,libtb.so -Wl,--no-as-needed '" + root + "/c/libtc.so' " +
                b_flags);
    compile("extern \"C\" int b_fn();\nextern \"C\" int a_fn() { return b_fn(); }\n",
            root + "/a/libta.so",
            "-shared -fPIC -Wl,-soname,libta.so -Wl,--no-as-needed '" + root +
                "/b/libtb.so' -Wl,-rpath-link,'" + root +
                "/c' -Wl,--disable-new-dtags,-rpath,'$ORIGIN/../b:$ORIGIN/../c'");
    compile("extern \"C\" int a_fn();\nint main() { return a_fn() == 7 ? 0 : 1; }\n",
            root + "/app",
            "-Wl,--no-as-needed '" + root + "/a/libta.so' -Wl,-rpath-link,'" + root +
                "/b:" + root + "/c' -Wl,--disable-new-dtags,-rpath,'$ORIGIN/a'");
  };
  build(dir_ + "/inherit", "");
  build(dir_ + "/stopped", "-Wl,--enable-new-dtags,-rpath,'$ORIGIN/nowhere'");
  ASSERT_EQ(run(dir_ + "/inherit/app"), 0) << "the real loader inherits libta's RPATH";
  ASSERT_NE(run(dir_ + "/stopped/app"), 0) << "libtb's RUNPATH stops the inheritance";
  auto tb = std::get<elf_info>(read_elf(dir_ + "/stopped/b/libtb.so"));
  ASSERT_FALSE(tb.runpath.empty());
  ASSERT_TRUE(std::get<elf_info>(read_elf(dir_ + "/inherit/b/libtb.so")).rpath.empty());

  static_analyzer a;
  auto find_lib = [](const std::vector<resolved_library>& libs, const std::string& name) {
    for (auto& l : libs)
      if (l.name == name)
        return l;
    return resolved_library{};
  };
  auto inherit = a.closure(dir_ + "/inherit/app");
  auto tc = find_lib(inherit, "libtc.so");
  ASSERT_FALSE(tc.path.empty()) << "libtc.so must resolve through libta's RPATH";
  EXPECT_EQ(fs::canonical(tc.path), fs::canonical(dir_ + "/inherit/c/libtc.so"));
  EXPECT_EQ(fs::canonical(tc.needed_by), fs::canonical(dir_ + "/inherit/b/libtb.so"));
  EXPECT_NE(tc.via.find("RPATH of"), std::string::npos) << tc.via;
  EXPECT_NE(tc.via.find("libta.so"), std::string::npos) << tc.via;

  auto stopped = a.closure(dir_ + "/stopped/app");
  EXPECT_TRUE(find_lib(stopped, "libtc.so").path.empty()) << find_lib(stopped, "libtc.so").via;
  EXPECT_FALSE(find_lib(stopped, "libtb.so").path.empty());
  auto r = a.analyze({dir_ + "/stopped/app"});
  EXPECT_TRUE(has(r, "missing-library", "libtc.so")) << dump(r);
}

TEST_F(static_analysis_test, ld_library_path_from_the_job_environment_is_searched) {
  stub_library(dir_ + "/mpi/libmpi.so.40", "libmpi.so.40", "MPI_Init");
  compile("extern \"C\" int MPI_Init();\nint main() { return MPI_Init() == 7 ? 0 : 1; }\n",
          dir_ + "/app", "-Wl,--no-as-needed '" + dir_ + "/mpi/libmpi.so.40'");
  static_analyzer without;
  auto r0 = without.analyze({dir_ + "/app"});
  EXPECT_FALSE(r0.multi_node) << dump(r0);
  static_options o;
  o.env["LD_LIBRARY_PATH"] = dir_ + "/mpi";
  static_analyzer with(o);
  auto r1 = with.analyze({dir_ + "/app"});
  EXPECT_TRUE(r1.multi_node) << dump(r1);
  EXPECT_TRUE(r1.network);
  EXPECT_TRUE(has(r1, "multi-node", "MPI 40")) << dump(r1);
}

TEST_F(static_analysis_test, real_system_binaries_resolve_through_the_ld_cache) {
  // /bin/ls needs libc.so.6 (and more), found in the cache or the default dirs.
  static_analyzer a;
  std::string err;
  auto libs = a.closure("/bin/ls", &err);
  ASSERT_TRUE(err.empty()) << err;
  bool libc = false;
  for (auto& l : libs) {
    EXPECT_FALSE(l.path.empty()) << l.name << " unresolved";
    libc = libc || l.name == "libc.so.6";
  }
  EXPECT_TRUE(libc);
  auto cache = read_ld_cache("/etc/ld.so.cache");
  EXPECT_TRUE(cache.count("libc.so.6") > 0);
}

TEST_F(static_analysis_test, python_script_importing_torch_is_gpu_without_running_it) {
  write(dir_ + "/train.py", "\"\"\"Trains.\n import nothing_here\n\"\"\"\n"
                            "import os, sys\n"
                            "open('" + dir_ + "/ran', 'w').write('x')\n"
                            "import torch.nn as nn\n"
                            "from multiprocessing import Pool\n"
                            "import helpers\n");
  write(dir_ + "/helpers.py", "import requests\n");
  static_options o;
  o.workdir = dir_;
  o.env["PATH"] = "/usr/bin:/bin";
  static_analyzer a(o);
  auto r = a.analyze({"python3", "train.py"});
  EXPECT_FALSE(fs::exists(dir_ + "/ran")) << "the script must not run";
  EXPECT_TRUE(r.gpu) << dump(r);
  EXPECT_TRUE(r.multi_core) << dump(r);
  EXPECT_TRUE(r.network) << "through the local module helpers.py\n" << dump(r);
  EXPECT_FALSE(has(r, "error", "")) << dump(r);
  const finding* f = find(r, "gpu");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->evidence, dir_ + "/train.py:6: import torch.nn as nn");
  EXPECT_TRUE(has(r, "interpreter", "python 3.11")) << dump(r);
  EXPECT_TRUE(std::any_of(r.software_stack.begin(), r.software_stack.end(),
                          [](auto& x) { return x.rfind("python 3.11", 0) == 0; }))
      << dump(r);
  EXPECT_TRUE(r.fatal.empty()) << r.fatal;
  EXPECT_FALSE(has(r, "gpu", "nothing_here"));
}

TEST_F(static_analysis_test, shebang_scripts_and_shell_commands) {
  write(dir_ + "/job.py", "#!/usr/bin/env python3\nimport mpi4py\n", true);
  write(dir_ + "/run.sh",
        "#!/bin/sh\n# fetch then train\nX=1 curl -s http://example | gzip > out.gz\n"
        "python3 " + dir_ + "/job.py && nvidia-smi\n",
        true);
  static_options o;
  o.workdir = dir_;
  o.env["PATH"] = "/usr/bin:/bin";
  static_analyzer a(o);
  auto r = a.analyze({dir_ + "/run.sh"});
  EXPECT_TRUE(has(r, "shebang", "/bin/sh")) << dump(r);
  EXPECT_TRUE(has(r, "network", "curl")) << dump(r);
  EXPECT_TRUE(has(r, "calls", "gzip")) << dump(r);
  EXPECT_TRUE(has(r, "multi-node", "MPI for Python")) << dump(r);
  EXPECT_TRUE(has(r, "gpu", "nvidia-smi")) << dump(r);
  EXPECT_TRUE(has(r, "missing-command", "nvidia-smi")) << dump(r);

  auto w = a.analyze({"sh", "-c", "for i in 1 2; do timeout 5 sh -c 'curl -s x' & done; wait"});
  EXPECT_FALSE(has(w, "missing-command", "i ")) << "the loop variable is no command\n" << dump(w);
  EXPECT_TRUE(has(w, "calls", "sh (/usr/bin/sh, under timeout)")) << dump(w);
  EXPECT_TRUE(has(w, "network", "curl")) << "through timeout and sh -c\n" << dump(w);

  auto c = a.analyze({"sh", "-c", "head -c 50M big.log | gzip -9 > /dev/null"});
  EXPECT_TRUE(has(c, "calls", "head")) << dump(c);
  EXPECT_TRUE(has(c, "calls", "gzip")) << dump(c);
}

TEST_F(static_analysis_test, bad_input_is_a_finding_never_a_crash) {
  static_analyzer a;
  auto missing = a.analyze({"definitely-not-a-command-xyz"});
  EXPECT_TRUE(has(missing, "error", "command not found")) << dump(missing);

  write(dir_ + "/text", "hello, I am not a program\n", true);
  auto text = a.analyze({dir_ + "/text"});
  EXPECT_TRUE(has(text, "error", "not an ELF file")) << dump(text);

  write(dir_ + "/noexec", "x");
  auto noexec = a.analyze({dir_ + "/noexec"});
  EXPECT_TRUE(has(noexec, "error", "not executable")) << dump(noexec);

  auto d = a.analyze({dir_});
  EXPECT_TRUE(has(d, "error", "directory")) << dump(d);

  // Truncations of a real library at every 13th byte: an error or a result, never a crash.
  stub_library(dir_ + "/libz1.so", "libz1.so", "f");
  std::ifstream in(dir_ + "/libz1.so", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 1000u);
  int errors = 0;
  for (std::size_t n = 0; n < bytes.size(); n += 13) {
    std::ofstream(dir_ + "/cut", std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(n));
    auto r = read_elf(dir_ + "/cut");
    if (auto* e = std::get_if<std::string>(&r)) {
      ++errors;
      EXPECT_FALSE(e->empty());
    }
  }
  EXPECT_GT(errors, 0);
  std::ofstream(dir_ + "/cut", std::ios::binary | std::ios::trunc).write(bytes.data(), 200);
  fs::permissions(dir_ + "/cut", fs::perms::owner_all);
  auto cut = a.analyze({dir_ + "/cut"});
  EXPECT_TRUE(has(cut, "error", "truncated")) << dump(cut);
}

// The interpreter compiles the script (compile() only): a syntax error is a finding with
// file:line and the message, and the script's own code never runs.
TEST_F(static_analysis_test, python_syntax_errors_are_found_without_running_the_script) {
  write(dir_ + "/bad.py", "open('" + dir_ + "/ran', 'w').write('x')\nimport torch\n"
                          "def f(:\n    return 1\n");
  write(dir_ + "/good.py", "open('" + dir_ + "/ran', 'w').write('x')\nimport broken_helper\n");
  write(dir_ + "/broken_helper.py", "x = = 1\n");
  static_options o;
  o.workdir = dir_;
  o.env["PATH"] = "/usr/bin:/bin";
  static_analyzer a(o);
  auto bad = a.analyze({"python3", "bad.py"});
  EXPECT_FALSE(fs::exists(dir_ + "/ran")) << "the script must not run";
  const finding* f = nullptr;
  for (auto& x : bad.findings)
    if (x.kind == "error" && x.detail.find("Python syntax error") != std::string::npos)
      f = &x;
  ASSERT_NE(f, nullptr) << dump(bad);
  EXPECT_NE(f->detail.find("(" + dir_ + "/bad.py:3)"), std::string::npos) << f->detail;
  EXPECT_EQ(f->evidence, dir_ + "/bad.py:3: def f(:");
  EXPECT_NE(bad.fatal.find("does not compile"), std::string::npos) << bad.fatal;
  EXPECT_EQ(bad.fatal_evidence, f->evidence);
  EXPECT_TRUE(bad.gpu) << "the imports are still read\n" << dump(bad);

  // A module it imports does not compile: a finding, but the entry script itself may run.
  auto good = a.analyze({"python3", "good.py"});
  EXPECT_FALSE(fs::exists(dir_ + "/ran"));
  EXPECT_TRUE(has(good, "error", "Python syntax error")) << dump(good);
  EXPECT_TRUE(has(good, "error", "broken_helper.py:1")) << dump(good);
  EXPECT_TRUE(good.fatal.empty()) << good.fatal;

  // Through a shebang too.
  write(dir_ + "/tool", "#!/usr/bin/env python3\nprint('hi'\n", true);
  auto shebang = a.analyze({dir_ + "/tool"});
  EXPECT_NE(shebang.fatal.find("does not compile"), std::string::npos) << dump(shebang);
}

/// What `cmd` prints (stdout), trimmed.
std::string output_of(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p))
      out += buf;
    ::pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

TEST_F(static_analysis_test, interpreter_versions_are_read_from_the_binary_or_its_package) {
  static_options o;
  o.env["PATH"] = "/usr/bin:/bin";
  static_analyzer a(o);
  auto stack_has = [](const static_report& r, const std::string& want) {
    return std::find(r.software_stack.begin(), r.software_stack.end(), want) !=
           r.software_stack.end();
  };
  // Independent oracles: the interpreters' own answers and dpkg-query.
  const std::string py = output_of("/usr/bin/python3 --version 2>&1"); // "Python 3.11.2"
  ASSERT_EQ(py.rfind("Python ", 0), 0u) << py;
  auto r = a.analyze({"python3", "-c", "pass"});
  EXPECT_TRUE(stack_has(r, "python " + py.substr(7))) << dump(r);

  const std::string bash = output_of("/bin/bash -c 'echo ${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}'");
  auto b = a.analyze({"bash", "-c", "true"});
  EXPECT_TRUE(stack_has(b, "bash " + bash)) << dump(b);

  const std::string dash = output_of("dpkg-query -W -f='${Version}' dash 2>/dev/null");
  if (dash.empty())
    GTEST_SKIP() << "dash is not a Debian package here";
  auto sh = a.analyze({"sh", "-c", "true"});
  EXPECT_TRUE(stack_has(sh, "dash " + dash)) << dump(sh);
  EXPECT_TRUE(has(sh, "interpreter", "dash " + dash)) << dump(sh);
  const finding* f = find(sh, "interpreter");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->evidence.find("Debian package dash"), std::string::npos) << f->evidence;
}

// A fake interpreter that counts how often it is asked for its version.
TEST_F(static_analysis_test, version_probes_are_cached_per_binary_digest) {
  const std::string counter = dir_ + "/probes";
  const std::string fake = "#!/bin/sh\n[ \"$1\" = --version ] && echo x >> '" + counter +
                           "' && echo 'Python 3.99.7'\nexit 0\n";
  write(dir_ + "/one/python3", fake, true);
  write(dir_ + "/two/python3", fake, true); // same bytes, another path
  write(dir_ + "/three/python3", fake + "# another build\n", true);
  auto probes = [&] {
    std::ifstream in(counter);
    return static_cast<int>(std::count(std::istreambuf_iterator<char>(in),
                                       std::istreambuf_iterator<char>(), '\n'));
  };
  auto analyze_with = [&](const std::string& dir) {
    static_options o;
    o.env["PATH"] = dir;
    o.check_syntax = false;
    return static_analyzer(o).analyze({"python3", "-c", "pass"});
  };
  auto r1 = analyze_with(dir_ + "/one");
  EXPECT_TRUE(has(r1, "interpreter", "python 3.99.7")) << dump(r1);
  EXPECT_EQ(probes(), 1);
  analyze_with(dir_ + "/one");
  EXPECT_EQ(probes(), 1) << "the same binary is not probed again";
  auto r2 = analyze_with(dir_ + "/two");
  EXPECT_TRUE(has(r2, "interpreter", "python 3.99.7")) << dump(r2);
  EXPECT_EQ(probes(), 1) << "nor is a copy of it elsewhere";
  analyze_with(dir_ + "/three");
  EXPECT_EQ(probes(), 2) << "a different binary is";
}

TEST_F(static_analysis_test, the_file_behind_a_soname_gives_the_full_library_version) {
  stub_library(dir_ + "/lib/libcudart.so.12.1.105", "libcudart.so.12", "cudaMalloc");
  fs::create_symlink("libcudart.so.12.1.105", dir_ + "/lib/libcudart.so.12");
  compile("extern \"C\" int cudaMalloc();\nint main() { return cudaMalloc() == 7 ? 0 : 1; }\n",
          dir_ + "/app",
          "-Wl,--no-as-needed '" + dir_ + "/lib/libcudart.so.12' -Wl,-rpath,'$ORIGIN/lib'");
  ASSERT_EQ(run(dir_ + "/app"), 0);
  auto r = static_analyzer().analyze({dir_ + "/app"});
  EXPECT_TRUE(has(r, "gpu", "CUDA runtime 12")) << dump(r);
  EXPECT_NE(std::find(r.software_stack.begin(), r.software_stack.end(), "CUDA runtime 12.1.105"),
            r.software_stack.end())
      << dump(r);
}

TEST(classify_library, sonames_give_kind_version_and_vendor) {
  std::string kind, detail, vendor;
  ASSERT_TRUE(classify_library("libcudnn.so.8", kind, detail, vendor));
  EXPECT_EQ(kind, "gpu");
  EXPECT_EQ(detail, "cuDNN 8");
  EXPECT_EQ(vendor, "nvidia");
  ASSERT_TRUE(classify_library("libamdhip64.so.5", kind, detail, vendor));
  EXPECT_EQ(vendor, "amd");
  ASSERT_TRUE(classify_library("libgomp.so.1", kind, detail, vendor));
  EXPECT_EQ(kind, "cores");
  ASSERT_TRUE(classify_library("libzmq.so.5", kind, detail, vendor));
  EXPECT_EQ(kind, "network");
  ASSERT_TRUE(classify_library("libfabric.so.1", kind, detail, vendor));
  EXPECT_EQ(kind, "multi-node");
  EXPECT_FALSE(classify_library("libcudartx.so.1", kind, detail, vendor));
  EXPECT_FALSE(classify_library("libc.so.6", kind, detail, vendor));
}

} // namespace
} // namespace tender

TEST(static_analysis_shell, builtin_arguments_are_not_commands) {
  tender::static_analyzer a;
  auto r = a.analyze({"sh", "-c", "echo training on GPU; printf '%s' nvcc; sleep 0"});
  for (auto& f : r.findings) {
    EXPECT_NE(f.kind, "missing-command") << f.detail;
    EXPECT_NE(f.detail, "CUDA compiler") << "an echo'd word is not a command";
  }
  bool sleep_seen = false;
  for (auto& f : r.findings)
    sleep_seen |= f.kind == "calls" && f.detail.rfind("sleep", 0) == 0;
  EXPECT_TRUE(sleep_seen);
}

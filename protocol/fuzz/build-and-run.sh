#!/usr/bin/env bash
# Builds the protocol fuzz targets with clang++ and libFuzzer (a standalone CMake
# project, protocol/fuzz/CMakeLists.txt) into BUILD_DIR, replays the checked-in
# inputs, then fuzzes each target for a bounded time. Exits non-zero on any
# crash, sanitizer report, timeout or out-of-memory.
#
#   protocol/fuzz/build-and-run.sh BUILD_DIR [options] [-- LIBFUZZER_FLAGS...]
#
#   --target decode|amounts|all  which targets (default all)
#   --time SECONDS               fuzz each target this long (default 10; 0 = until a crash)
#   --runs N                     or stop each target after N inputs
#   --fresh                      start from the seeds only, in BUILD_DIR/corpus-fresh/TARGET
#                                (what the test does; BUILD_DIR/corpus/ is left alone)
#   --build-only                 configure and build, nothing else
#   --replay-only                build and replay the checked-in inputs, no fuzzing
#   --jobs N                     parallel compile jobs (default 2)
#
# Inputs: decode starts from protocol/golden/*.msgpack and protocol/fuzz/seeds/decode/
# (batch frames), amounts from protocol/fuzz/seeds/amounts/; both also from
# protocol/fuzz/regressions/TARGET/,
# inputs that once crashed (each must now pass; they are replayed first). New
# coverage goes to BUILD_DIR/corpus/TARGET, crashes to BUILD_DIR/artifacts/TARGET/,
# libFuzzer's output to BUILD_DIR/logs/TARGET.log. Respects $FUZZ_CXX (default
# clang++-14, else clang++).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
case "$1" in -h | --help) usage ;; esac
build="$1"
shift
targets=(decode amounts)
seconds=10
runs=""
fresh=0
mode=fuzz
jobs=2
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
  --target)
    [ "$2" = all ] && targets=(decode amounts) || targets=("$2")
    shift 2
    ;;
  --time) seconds="$2"; shift 2 ;;
  --runs) runs="$2"; shift 2 ;;
  --fresh) fresh=1; shift ;;
  --build-only) mode=build; shift ;;
  --replay-only) mode=replay; shift ;;
  --jobs) jobs="$2"; shift 2 ;;
  --) shift; extra=("$@"); break ;;
  *) echo "build-and-run.sh: unknown option $1" >&2; usage ;;
  esac
done
for t in "${targets[@]}"; do
  case "$t" in decode | amounts) ;; *) echo "build-and-run.sh: unknown target $t" >&2; exit 2 ;; esac
done

cxx="${FUZZ_CXX:-}"
if [ -z "$cxx" ]; then
  cxx="$(command -v clang++-14 || command -v clang++ || true)"
fi
if [ -z "$cxx" ]; then
  echo "build-and-run.sh: clang++ not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

mkdir -p "$build"
build="$(cd "$build" && pwd)"
if [ ! -f "$build/CMakeCache.txt" ]; then
  gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
fi
cmake --build "$build" -j "$jobs"
[ "$mode" = build ] && exit 0

# Files of a directory, if any (globs that match nothing expand to nothing).
files_in() {
  local f
  for f in "$1"/*; do
    [ -f "$f" ] && printf '%s\n' "$f"
  done
  return 0
}

status=0
for t in "${targets[@]}"; do
  bin="$build/${t}_fuzz"
  regressions="$here/regressions/$t"
  if [ "$t" = decode ]; then
    seeds="$root/protocol/golden"
    more_seeds="$here/seeds/decode"
    max_len=16384
  else
    seeds="$here/seeds/amounts"
    more_seeds=""
    max_len=256
  fi
  mkdir -p "$build/logs" "$build/artifacts/$t"
  log="$build/logs/$t.log"

  # 1. Every seed and every past crash, once each.
  mapfile -t replay < <(files_in "$seeds"; [ -n "$more_seeds" ] && files_in "$more_seeds"; files_in "$regressions")
  if ! "$bin" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 "${replay[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "FAIL $t: a checked-in input crashes (full output: $log)" >&2
    status=1
    continue
  fi
  echo "$t: replayed ${#replay[@]} inputs (seeds and regressions): ok"
  [ "$mode" = replay ] && continue

  # 2. Fuzz.
  corpus="$build/corpus/$t"
  if [ "$fresh" = 1 ]; then
    corpus="$build/corpus-fresh/$t"
    rm -rf "$corpus"
  fi
  mkdir -p "$corpus"
  bound=()
  [ "$seconds" != 0 ] && bound+=(-max_total_time="$seconds")
  [ -n "$runs" ] && bound+=(-runs="$runs")
  inputs=("$corpus" "$seeds")
  [ -n "$more_seeds" ] && [ -n "$(files_in "$more_seeds")" ] && inputs+=("$more_seeds")
  [ -n "$(files_in "$regressions")" ] && inputs+=("$regressions")
  start=$(date +%s)
  if "$bin" "${bound[@]}" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=512 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" \
    "${extra[@]}" "${inputs[@]}" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "$t: clean: ${execs:-?} executions in $(($(date +%s) - start)) s," \
      "corpus $(find "$corpus" -type f | wc -l) inputs ($corpus)"
  else
    tail -n 60 "$log" >&2
    echo "FAIL $t: libFuzzer found a problem (full output: $log)." >&2
    echo "  The input is in $build/artifacts/$t/; replay it with: $bin FILE" >&2
    echo "  After fixing, copy it to protocol/fuzz/regressions/$t/ and add a unit test." >&2
    status=1
  fi
done
exit $status

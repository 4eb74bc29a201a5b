# dynport: `make run` builds and runs the server with its defaults,
# `make test` runs every test, `make bench` measures dynport against its
# floors (see BENCHMARKS.md).

CARGO ?= cargo

.PHONY: run build test test-deps lint bench crash soak fuzz clean

# dynport refuses a state directory that group or others may write to, and
# git creates state/ group-writable in a clone made under umask 002.
run:
	$(CARGO) build --release
	if [ -d state ]; then chmod go-w state; fi
	./target/release/dynport

build:
	$(CARGO) build --release

test: test-deps
	$(CARGO) test --all-targets

# The browser test (tests/guards/chromium.rs) drives Debian's chromium. As
# root it is installed when missing, so a fresh machine runs it; otherwise
# the test says "skipped: chromium not installed".
test-deps:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# 1,000 SIGKILLs under concurrent lease traffic (some in the middle of a
# port change, some the moment the state file is being rewritten), each
# followed by a check of the state file and the journal against every
# acknowledged answer; the run 15 minutes at most, after the build.
crash:
	$(CARGO) test --release --test crash --no-run
	DYNPORT_CRASH_KILLS=1000 timeout 900 $(CARGO) test --release --test crash -- --nocapture

# Mixed traffic at 256 connections for SOAK_SECS (600 by default), sampling
# the server's memory, threads and descriptors every second.
SOAK_SECS ?= 600
soak:
	$(CARGO) build --release
	SOAK_SECS=$(SOAK_SECS) $(CARGO) run --release --example soak

# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of everything that reads
# outside input: HTTP framing, the router, the state file, the configuration.
# Each target runs $(FUZZ_SECS) seconds from its corpus in fuzz/corpus/;
# a crash stops the run and is kept in fuzz/artifacts/<target>/. Stable Rust
# works: no sanitizer, so no nightly flags.
FUZZ_SECS ?= 60
FUZZ_TARGETS = http_framing router state_file config journal

fuzz:
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	for t in $(FUZZ_TARGETS); do \
		$(CARGO) fuzz run --sanitizer none $$t -- -max_total_time=$(FUZZ_SECS) || exit 1; \
	done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# The baseline of `make bench`: dynport as it was before the trust work
# (before it served a Unix socket and looked up the uid owning each loopback
# TCP connection), commit 860606a "Engine: encode returns the status it
# sent". Its source comes from `git archive` (a clone with main's history is
# needed), built once into a directory of its own; the bench runs it in the
# same rounds as today's dynport.
BENCH_BASELINE = 860606a80c980b302b4d5d7fa9010bd1e785a07c
BENCH_BASELINE_DIR = target/bench-baseline/$(BENCH_BASELINE)
BENCH_BASELINE_BIN = $(BENCH_BASELINE_DIR)/target/release/dynport

# Needs wrk (installed from Debian's packages when missing) and loopback only.
bench: $(BENCH_BASELINE_BIN)
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(CARGO) build --release --bin dynport \
		--example bench --example floor_tiny_http --example floor_engine
	./target/release/examples/bench --baseline $(BENCH_BASELINE_BIN)

$(BENCH_BASELINE_BIN):
	@git cat-file -e $(BENCH_BASELINE)^{commit} || { echo "bench: the baseline \
	commit $(BENCH_BASELINE) is not in this clone; fetch main's history" >&2; exit 1; }
	rm -rf $(BENCH_BASELINE_DIR)/src
	mkdir -p $(BENCH_BASELINE_DIR)/src
	git archive $(BENCH_BASELINE) | tar -x -C $(BENCH_BASELINE_DIR)/src
	$(CARGO) build --release --locked --bin dynport \
		--manifest-path $(BENCH_BASELINE_DIR)/src/Cargo.toml \
		--target-dir $(BENCH_BASELINE_DIR)/target

clean:
	$(CARGO) clean

# dynport: `make run` builds and runs the server with its defaults,
# `make test` runs every test.

CARGO ?= cargo

.PHONY: run build test lint crash soak clean

run:
	$(CARGO) build --release
	./target/release/dynport

build:
	$(CARGO) build --release

test:
	$(CARGO) test --all-targets

# 1,000 SIGKILLs under concurrent lease traffic, each followed by a check of
# the state file against every acknowledged answer; 15 minutes at most.
crash:
	DYNPORT_CRASH_KILLS=1000 timeout 900 $(CARGO) test --release --test crash -- --nocapture

# Mixed traffic at 256 connections for SOAK_SECS (600 by default), sampling
# the server's memory, threads and descriptors every second.
SOAK_SECS ?= 600
soak:
	$(CARGO) build --release
	SOAK_SECS=$(SOAK_SECS) $(CARGO) run --release --example soak

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean

# dynport: `make run` builds and runs the server with its defaults,
# `make test` runs every test.

CARGO ?= cargo

.PHONY: run build test lint crash clean

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

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean

# dynport: `make run` builds and runs the server with its defaults,
# `make test` runs every test, `make bench` measures dynport against its
# floors (see BENCHMARKS.md).

CARGO ?= cargo

.PHONY: run build test lint bench clean

run:
	$(CARGO) build --release
	./target/release/dynport

build:
	$(CARGO) build --release

test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# Needs wrk (installed from Debian's packages when missing) and loopback only.
bench:
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(CARGO) build --release --bin dynport \
		--example bench --example floor_tiny_http --example floor_engine
	./target/release/examples/bench

clean:
	$(CARGO) clean

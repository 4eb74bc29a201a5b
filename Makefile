# dynport: `make run` builds and runs the server with its defaults,
# `make test` runs every test.

CARGO ?= cargo

.PHONY: run build test lint clean

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

clean:
	$(CARGO) clean

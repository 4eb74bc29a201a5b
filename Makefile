# dynport: `make run` builds and runs the server with its defaults,
# `make test` runs every test, `make bench` measures dynport against its
# floors (see BENCHMARKS.md), `make install` and `make deb` install it on a
# host.

CARGO ?= cargo

.PHONY: run build test test-deps test-tools lint layers bench crash soak fuzz clean portpicker \
	install uninstall deb dist-files verify-units hot-code

# dynport refuses a state directory that group or others may write to, and
# git creates state/ group-writable in a clone made under umask 002.
run:
	$(CARGO) build --release
	if [ -d state ]; then chmod go-w state; fi
	./target/release/dynport

build:
	$(CARGO) build --release

test: test-deps layers
	$(CARGO) test --all-targets

# Each module of src/ keeps to its layer (docs/layers.md): no use of a layer
# above, no circle; the engine and sys/ reach nothing above them.
layers:
	$(CARGO) run --quiet --example layers

# Programs some tests drive, as COMMAND:DEBIAN-PACKAGE, on one line (the
# tests read it: tests/tests/fixture/tools.rs): the browser test
# (tests/tests/guards/chromium.rs) drives chromium; tests/tests/dist/
# renders the man page with groff and man, and loads each completion in
# bash, zsh and fish; tests/tests/clock.rs steps the wall clock of a server
# with libfaketime; python3 plays other programs (and runs portpicker),
# curl sends raw requests; tests/tests/usage/ reads /metrics with promtool
# and runs prometheus itself (its own config, storage and port: a service
# the package may start is not used).
# As root the missing ones are installed, so a fresh machine runs every
# test. Under CI (CI=true) or as root a test whose program is missing
# fails; otherwise it says "skipped: ... not installed".
TEST_TOOLS = chromium:chromium groff:groff-base man:man-db bash:bash zsh:zsh fish:fish faketime:faketime python3:python3 curl:curl prometheus:prometheus promtool:prometheus

test-deps: test-tools portpicker

test-tools:
	@missing=; for tool in $(TEST_TOOLS); do \
		command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool#*:}"; \
	done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# Python's portpicker, which tests/tests/portserver.rs runs against dynport's
# portserver socket, for the python3 on PATH: installed for everyone, else
# for this user, else (as root, on a Debian system Python that refuses pip)
# from Debian's python3-portpicker. Under CI or as root those tests fail
# without it; for another user who cannot install it they say they are
# skipped.
portpicker:
	@python3 -c 'import portpicker' 2>/dev/null || python3 -m pip install --quiet portpicker \
		|| python3 -m pip install --quiet --user portpicker \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
			&& DEBIAN_FRONTEND=noninteractive apt-get install -y python3-portpicker; } \
		|| echo "portpicker could not be installed: its tests will say they are skipped"
bench: portpicker

# 1,000 SIGKILLs under concurrent lease traffic (some in the middle of a
# port change, some the moment the state file is being rewritten), each
# followed by a check of the state file and the journal against every
# acknowledged answer; the run 15 minutes at most, after the build.
crash:
	$(CARGO) test --release --test tests --no-run
	DYNPORT_CRASH_KILLS=1000 timeout 900 $(CARGO) test --release --test tests crash:: -- --nocapture

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
# Its routing rows need nginx (the installed one, else Debian's package
# unpacked into target/bench-nginx by the driver) and Node 20 with npm
# (the driver installs portless 0.12 into target/bench-portless).
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

# Installing on a host. Every path is under PREFIX, and DESTDIR is put in
# front of each (a staging directory for packaging). The unit goes to
# PREFIX/lib/systemd/system, which systemd reads for PREFIX=/usr/local as
# for /usr, with ExecStart pointing at the binary installed. The man page
# and the completions are dist/'s, generated from the tables of flags (make
# dist-files) and checked against them by tests/dist/.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/dynport
BASHDIR ?= $(DATADIR)/bash-completion/completions
ZSHDIR ?= $(DATADIR)/zsh/site-functions
FISHDIR ?= $(DATADIR)/fish/vendor_completions.d
# The binary installed: the release build, made when a source is newer (so
# `make && sudo make install` does not build as root).
BIN ?= target/release/dynport
# Points the units at the binary where it is installed.
UNIT_SED = sed 's|/usr/local/bin/dynport|$(BINDIR)/dynport|g'

target/release/dynport: Cargo.toml Cargo.lock build.rs dist/hot-code.ld $(shell find src -name '*.rs')
	$(CARGO) build --release --bin dynport

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) $(DESTDIR)$(FISHDIR) \
		$(DESTDIR)$(DOCDIR)/examples
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/dynport
	$(UNIT_SED) dist/systemd/dynport.service > $(DESTDIR)$(UNITDIR)/dynport.service
	$(UNIT_SED) dist/systemd/dynport-example-app.service \
		> $(DESTDIR)$(DOCDIR)/examples/dynport-example-app.service
	chmod 644 $(DESTDIR)$(UNITDIR)/dynport.service \
		$(DESTDIR)$(DOCDIR)/examples/dynport-example-app.service
	install -m 644 dist/man/dynport.1 $(DESTDIR)$(MANDIR)/man1/dynport.1
	install -m 644 dist/completions/dynport.bash $(DESTDIR)$(BASHDIR)/dynport
	install -m 644 dist/completions/_dynport $(DESTDIR)$(ZSHDIR)/_dynport
	install -m 644 dist/completions/dynport.fish $(DESTDIR)$(FISHDIR)/dynport.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dynport $(DESTDIR)$(UNITDIR)/dynport.service \
		$(DESTDIR)$(MANDIR)/man1/dynport.1 $(DESTDIR)$(BASHDIR)/dynport \
		$(DESTDIR)$(ZSHDIR)/_dynport $(DESTDIR)$(FISHDIR)/dynport.fish \
		$(DESTDIR)$(DOCDIR)/examples/dynport-example-app.service
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)

# Writes dist/man/dynport.1 and dist/completions/ from the tables of flags.
dist-files:
	$(CARGO) run --example dist_files

# Writes dist/hot-code.ld, the functions the linker puts first because an
# idle server runs them (see dist/hot-code); needs valgrind.
hot-code:
	dist/hot-code

# systemd-analyze verify on the units as `make install` lays them out.
verify-units: $(BIN)
	BIN=$(BIN) dist/verify-units

# A Debian package of what `make install` lays out for PREFIX=/usr, built by
# cargo-deb (see [package.metadata.deb] in Cargo.toml), in target/debian/.
DEB_ROOT = target/deb-root

deb: $(BIN)
	$(CARGO) deb --version >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked
	rm -rf $(DEB_ROOT)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) BIN=$(BIN) PREFIX=/usr
	$(CARGO) deb --no-build

clean:
	$(CARGO) clean

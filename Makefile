# task-scheduler: `make run` starts the daemon on the embedded broker,
# `make test` runs the test suite. Both install what is missing first.
SWIFT ?= swift
APT_PACKAGES := librdkafka-dev liblua5.4-dev kcat pkg-config
# The tests also render the dashboard in headless Chromium.
TEST_PACKAGES := chromium
# The benchmark's peer: Debian's Python confluent-kafka, on the same librdkafka.
BENCH_PACKAGES := python3-confluent-kafka
CONFIG ?= config.toml
ARGS ?=

.PHONY: deps test-deps apt-install build release run test test-hostile check bench loadtest clean

# Installs the Debian packages the build (and, for test-deps, the tests) need, when missing.
deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

test-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES) $(TEST_PACKAGES)"

apt-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	.build/release/task-scheduler --config $(CONFIG) $(ARGS)

check: build
	.build/debug/task-scheduler check --config $(CONFIG)

# Builds the executable too (a test runs the daemon as a process), and the
# dependency tree once: `swift build --build-tests`, then the tests without
# building again.
test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The hostile-script corpus: endless loops (plain, coroutines, metamethods,
# comparators, replacements), catastrophic patterns, memory bombs, bad error
# objects, SIGTERM with a wedged script; plus the budgeted string library.
test-hostile: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter 'HostileScriptTests|HostileShutdownTests|HostileDaemonTests|ScriptLimitsTests|StringLibraryTests'

# Steady-state throughput on one embedded broker: 1M keyed messages over 16
# partitions read by librdkafka alone (the limit), kcat, the scheduler with a
# no-op and with an emitting process(), and the Python peer; ratios from one
# run; then the handoff gaps over >= 500 handoffs. BENCH_ARGS, e.g.
# BENCH_ARGS="--readers noop,librdkafka --runs 5".
BENCH_ARGS ?=
bench: release
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(BENCH_PACKAGES)"
	.build/release/task-scheduler bench $(BENCH_ARGS)

# Load test on loopback (benchmark, not a test): wrk against GET /health and
# POST /tasks/generate on a release daemon with the embedded broker, then a
# 60 s soak sampling the daemon's RSS. Prints requests/s, p50/p99, errors, RSS.
LOAD_PORT ?= 5077
LOAD_SECONDS ?= 15
SOAK_SECONDS ?= 60
loadtest: release
	@command -v wrk >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; $$SUDO apt-get install -y -qq wrk; }
	@set -e; dir=$$(mktemp -d); \
	printf '[api]\nlisten = "127.0.0.1:$(LOAD_PORT)"\n[producer]\ninterval_ms = 3600000\n[log]\nlevel = "warning"\n[[groups]]\nname = "load"\ntopics = ["load"]\nworkers = 2\nslice_ms = 500\n' > $$dir/config.toml; \
	printf 'function generate() end\n' > $$dir/generate.lua; printf 'function process(msg) end\n' > $$dir/process.lua; \
	printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  return wrk.format(nil, nil, nil, string.format([[{"topic": "load", "message": "m%%d", "key": "k%%d"}]], counter, counter %% 64))\nend\n' > $$dir/post.lua; \
	.build/release/task-scheduler --config $$dir/config.toml --scripts $$dir 2>$$dir/daemon.log & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null || true' EXIT; \
	for i in $$(seq 50); do curl -sf localhost:$(LOAD_PORT)/health >/dev/null && break; sleep 0.2; done; \
	echo "== GET /health, $(LOAD_SECONDS) s, 2 threads, 32 connections"; \
	wrk -t2 -c32 -d$(LOAD_SECONDS)s --latency http://127.0.0.1:$(LOAD_PORT)/health | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors|requests in"; \
	echo "== POST /tasks/generate (each answered after the broker's ack), $(LOAD_SECONDS) s, 2 threads, 32 connections"; \
	wrk -t2 -c32 -d$(LOAD_SECONDS)s --latency -s $$dir/post.lua http://127.0.0.1:$(LOAD_PORT)/tasks/generate | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors|requests in"; \
	echo "== soak: POST for $(SOAK_SECONDS) s, RSS of the daemon every 10 s (KiB)"; \
	wrk -t1 -c16 -d$(SOAK_SECONDS)s -s $$dir/post.lua http://127.0.0.1:$(LOAD_PORT)/tasks/generate > $$dir/soak.txt & wrkpid=$$!; \
	for i in $$(seq 0 10 $(SOAK_SECONDS)); do echo "t=$${i}s rss=$$(ps -o rss= -p $$pid)"; sleep 10; done; wait $$wrkpid; \
	grep -E "Requests/sec|Non-2xx|Socket errors|requests in" $$dir/soak.txt

clean:
	rm -rf .build

# task-scheduler: `make run` starts the daemon on the embedded broker,
# `make test` runs the test suite. Both install what is missing first.
SWIFT ?= swift
APT_PACKAGES := librdkafka-dev liblua5.4-dev kcat pkg-config
# The tests also render the dashboard in headless Chromium, and the short
# chaos run reads Kafka with Debian's Python confluent-kafka.
TEST_PACKAGES := chromium python3-confluent-kafka
# The benchmark's peer: Debian's Python confluent-kafka, on the same librdkafka.
BENCH_PACKAGES := python3-confluent-kafka
CONFIG ?= config.toml
ARGS ?=

.PHONY: deps test-deps apt-install build release run test test-hostile check bench loadtest chaos clean install deb test-deploy

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

# The Swift runtime (standard library, Foundation, Dispatch) is linked
# statically: it is not packaged in Debian, so the binary (and the .deb)
# needs only librdkafka, Lua and the C/C++ runtime from the system.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib

run: release
	.build/release/task-scheduler --config $(CONFIG) $(ARGS)

# The same options as `run` (CONFIG, ARGS such as --scripts DIR), on the
# same release build: checking what `make run` would start.
check: release
	.build/release/task-scheduler check --config $(CONFIG) $(ARGS)

# Builds the executable too (a test runs the daemon as a process), and the
# dependency tree once: `swift build --build-tests`, then the tests without
# building again. The suites that time faults, rebalances, killed daemons and
# shutdown bounds against the embedded broker carry `.runsAlone` in code
# (Tests/SchedulerTests/MachineShare.swift): no other suite runs while they
# do, so a plain `swift test` gives them the quiet machine they measure on.
test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	/usr/bin/python3 tools/chaos.py --short --binary .build/debug/task-scheduler

# The hostile-script corpus: endless loops (plain, coroutines, metamethods,
# comparators, replacements), catastrophic patterns, memory bombs, bad error
# objects, SIGTERM with a wedged script, emit loops past the per-call emit
# budget and large emits against a slow broker (max_inflight_emit_mb), both
# with the daemon's peak RSS; schedule records piling up behind a slow broker
# (max_pending_records); plus the budgeted string library.
test-hostile: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter 'HostileScriptTests|HostileShutdownTests|HostileDaemonTests|HostileMemoryTests|ScriptLimitsTests|CallOutputTests|StringLibraryTests|EmitBudgetBytesTests|EmitBytesPoolTests|PendingRecordsTests|ClientGrowthTests/scriptRecordsBounded'

# Steady-state throughput on one embedded broker: 1M keyed messages over 16
# partitions read by librdkafka alone (the limit), kcat, the scheduler with a
# no-op and with an emitting process(), and the Python peer; ratios from one
# run; then the handoff gaps over >= 500 handoffs; then the fire delay of
# 100,000 schedules due within one minute (reader `schedules`: p50/p95/p99/max,
# the timer's share, every fire counted once by an independent reader, and the
# timer table's heap bytes per schedule). Not by default: reader `startup`, a
# daemon starting on 1,000,000 stored schedules (read time, RSS), e.g.
# BENCH_ARGS="--readers startup --messages 1000". BENCH_ARGS, e.g.
# BENCH_ARGS="--readers noop,librdkafka --runs 5".
BENCH_ARGS ?=
bench: release
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(BENCH_PACKAGES)"
	.build/release/task-scheduler-bench $(BENCH_ARGS)

# Load test on loopback (benchmark, not a test): wrk against GET /health and
# POST /tasks/generate on a release daemon with the embedded broker, both with
# LOAD_CONNECTIONS connections, then a 60 s soak sampling the daemon's RSS.
# No consumer group runs: the mock broker's Fetch scans a partition's message
# sets linearly (rd_kafka_mock_msgset_find), so a group reading what is posted
# measures the mock, not the API (benchmark the workers with `make bench`).
# The posts carry "once": true (published and acknowledged, not pooled: the
# pool is bounded by max_pool_tasks), with a key ("k<n mod 64>") and without
# one (the seed's own example); GET /health, keyed and keyless posts run in
# turn, LOAD_ROUNDS times, and the ratios compare runs of the same round.
# Prints requests/s, p50/p99, errors and the ratios; then a POST run adds
# pooled tasks.
LOAD_PORT ?= 5077
LOAD_SECONDS ?= 15
LOAD_CONNECTIONS ?= 64
LOAD_ROUNDS ?= 1
SOAK_SECONDS ?= 60
WRK_FIGURES := "Requests/sec|50%|99%|Non-2xx|Socket errors|requests in"
loadtest: release
	@command -v wrk >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; $$SUDO apt-get install -y -qq wrk; }
	@set -e; dir=$$(mktemp -d); \
	printf 'groups = []\n[api]\nlisten = "127.0.0.1:$(LOAD_PORT)"\n[producer]\ninterval_ms = 3600000\nmax_pool_tasks = 1000000\n[log]\nlevel = "warning"\n' > $$dir/config.toml; \
	printf 'function generate() end\n' > $$dir/generate.lua; printf 'function process(msg) end\n' > $$dir/process.lua; \
	for mode in once pooled keyless; do flag=$$([ $$mode = pooled ] || echo ', "once": true'); key=$$([ $$mode = keyless ] || echo ', "key": "k%d"'); \
	arg=$$([ $$mode = keyless ] || echo ', counter % 64'); \
	printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  return wrk.format(nil, nil, nil, string.format([[{"topic": "load", "message": "m%%d"%s%s}]], counter%s))\nend\n' "$$key" "$$flag" "$$arg" > $$dir/post-$$mode.lua; done; \
	.build/release/task-scheduler --config $$dir/config.toml --scripts $$dir 2>$$dir/daemon.log & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null || true' EXIT; \
	for i in $$(seq 50); do curl -sf localhost:$(LOAD_PORT)/health >/dev/null && break; sleep 0.2; done; \
	echo "== warm-up: 3 s of keyed and 3 s of keyless posts, not counted"; \
	wrk -t2 -c$(LOAD_CONNECTIONS) -d3s -s $$dir/post-once.lua http://127.0.0.1:$(LOAD_PORT)/tasks/generate >/dev/null; \
	wrk -t2 -c$(LOAD_CONNECTIONS) -d3s -s $$dir/post-keyless.lua http://127.0.0.1:$(LOAD_PORT)/tasks/generate >/dev/null; \
	echo "== load before: $$(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"; \
	for round in $$(seq $(LOAD_ROUNDS)); do \
	echo "== round $$round of $(LOAD_ROUNDS): GET /health, $(LOAD_SECONDS) s, 2 threads, $(LOAD_CONNECTIONS) connections"; \
	wrk -t2 -c$(LOAD_CONNECTIONS) -d$(LOAD_SECONDS)s --latency http://127.0.0.1:$(LOAD_PORT)/health > $$dir/health-$$round.txt; grep -E $(WRK_FIGURES) $$dir/health-$$round.txt; \
	echo "== round $$round: POST /tasks/generate with a key, \"once\": true (each answered after the broker's ack), $(LOAD_SECONDS) s"; \
	wrk -t2 -c$(LOAD_CONNECTIONS) -d$(LOAD_SECONDS)s --latency -s $$dir/post-once.lua http://127.0.0.1:$(LOAD_PORT)/tasks/generate > $$dir/keyed-$$round.txt; grep -E $(WRK_FIGURES) $$dir/keyed-$$round.txt; \
	echo "== round $$round: POST /tasks/generate without a key, \"once\": true, $(LOAD_SECONDS) s"; \
	wrk -t2 -c$(LOAD_CONNECTIONS) -d$(LOAD_SECONDS)s --latency -s $$dir/post-keyless.lua http://127.0.0.1:$(LOAD_PORT)/tasks/generate > $$dir/keyless-$$round.txt; grep -E $(WRK_FIGURES) $$dir/keyless-$$round.txt; \
	awk '/Requests\/sec/ { rate[FILENAME] = $$2 } END { h = rate[ARGV[1]]; k = rate[ARGV[2]]; n = rate[ARGV[3]]; printf "== round %s: health %.0f/s, keyed POST %.0f/s, keyless POST %.0f/s: keyed/health %.2f, keyless/health %.2f (target >= 0.50), keyless/keyed %.2f (target >= 1.00)\n", "'$$round'", h, k, n, k / h, n / h, n / k }' $$dir/health-$$round.txt $$dir/keyed-$$round.txt $$dir/keyless-$$round.txt | tee -a $$dir/ratios.txt; \
	done; \
	echo "== POST /tasks/generate pooled (publication and pool record acknowledged), $(LOAD_SECONDS) s, 2 threads, $(LOAD_CONNECTIONS) connections"; \
	wrk -t2 -c$(LOAD_CONNECTIONS) -d$(LOAD_SECONDS)s --latency -s $$dir/post-pooled.lua http://127.0.0.1:$(LOAD_PORT)/tasks/generate | grep -E $(WRK_FIGURES); \
	echo "== load after: $$(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"; \
	curl -s -X DELETE localhost:$(LOAD_PORT)/tasks >/dev/null; \
	echo "== soak: POST (once) for $(SOAK_SECONDS) s, RSS of the daemon every 10 s (KiB)"; \
	wrk -t1 -c16 -d$(SOAK_SECONDS)s -s $$dir/post-once.lua http://127.0.0.1:$(LOAD_PORT)/tasks/generate > $$dir/soak.txt & wrkpid=$$!; \
	for i in $$(seq 0 10 $(SOAK_SECONDS)); do echo "t=$${i}s rss=$$(ps -o rss= -p $$pid)"; sleep 10; done; wait $$wrkpid; \
	grep -E "Requests/sec|Non-2xx|Socket errors|requests in" $$dir/soak.txt; \
	echo "== summary (ratios within each round):"; cat $$dir/ratios.txt

# Chaos run (benchmark-style, not part of make test, which runs its --short
# version): 3 daemons x 2 workers on one broker, 60,000 keyed messages (300 keys) whose
# process() burns 3 ms and emits a follow-up; one daemon stopped every 10 s
# (SIGTERM and SIGKILL in turn) and started again 1 s later. An independent
# reader prints missing, order violations, duplicates per stop and the longest
# time a partition with lag had no holder. CHAOS_ARGS, e.g.
# CHAOS_ARGS="--stops term --messages 40000".
CHAOS_ARGS ?=
chaos: release
	@$(MAKE) --no-print-directory apt-install PACKAGES="python3-confluent-kafka"
	/usr/bin/python3 tools/chaos.py --binary .build/release/task-scheduler $(CHAOS_ARGS)

# `make install` (PREFIX=/usr/local, DESTDIR for staging): the release
# binary, the config and scripts under SYSCONFDIR/task-scheduler (kept if
# already there: they are the admin's), the systemd unit with the paths
# rewritten for PREFIX, the dashboard, the alert rules and the docs.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SHAREDIR ?= $(PREFIX)/share/task-scheduler
DOCDIR ?= $(PREFIX)/share/doc/task-scheduler
ETCDIR = $(DESTDIR)$(SYSCONFDIR)/task-scheduler
install: release
	install -D -m 0755 .build/release/task-scheduler $(DESTDIR)$(BINDIR)/task-scheduler
	install -d $(ETCDIR)/scripts/policies
	@for f in config.toml scripts/*.lua scripts/policies/*.lua; do \
	  if [ -e $(ETCDIR)/$$f ]; then echo "kept $(ETCDIR)/$$f"; else install -m 0644 $$f $(ETCDIR)/$$f; fi; done
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/bin/task-scheduler|$(BINDIR)/task-scheduler|g' -e 's|/etc/task-scheduler|$(SYSCONFDIR)/task-scheduler|g' \
	  deploy/systemd/task-scheduler.service > $(DESTDIR)$(UNITDIR)/task-scheduler.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/task-scheduler.service
	install -D -m 0644 -t $(DESTDIR)$(DOCDIR) README.md docs/deploy.md
	install -D -m 0644 deploy/grafana/task-scheduler.json $(DESTDIR)$(SHAREDIR)/grafana/task-scheduler.json
	install -D -m 0644 deploy/prometheus/alerts.yml $(DESTDIR)$(SHAREDIR)/prometheus/alerts.yml

# The Debian package, built with dpkg-deb from a staged `make install`
# (PREFIX=/usr); dpkg-shlibdeps (dpkg-dev) computes its Depends.
DEB_VERSION ?= 0.1.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)
DEB_DIR := .build/deb
DEB_FILE = $(DEB_DIR)/task-scheduler_$(DEB_VERSION)_$(shell dpkg --print-architecture).deb
deb: release
	@$(MAKE) --no-print-directory apt-install PACKAGES="dpkg-dev"
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_DIR)/root PREFIX=/usr
	strip --strip-debug $(DEB_DIR)/root/usr/bin/task-scheduler
	deploy/debian/build-deb.sh $(DEB_DIR)/root $(DEB_FILE) $(DEB_VERSION)
	@ls -l $(DEB_FILE)

# Installs the package on this machine (as root), checks it and removes it:
# dpkg -i, the installed binary checks the installed config, systemd-analyze
# verify and security, dpkg -r (only conffiles left), dpkg --purge (nothing).
# Then promtool (Debian's prometheus package) checks the alert rules.
test-deploy: deb
	deploy/test-deploy.sh $(DEB_FILE)
	@$(MAKE) --no-print-directory apt-install PACKAGES="prometheus"
	promtool check rules deploy/prometheus/alerts.yml

clean:
	rm -rf .build

# task-scheduler: `make run` starts the daemon on the embedded broker,
# `make test` runs the test suite. Both install what is missing first.
SWIFT ?= swift
APT_PACKAGES := librdkafka-dev liblua5.4-dev kcat pkg-config
CONFIG ?= config.toml
ARGS ?=

.PHONY: deps build release run test check bench clean

# Installs the Debian packages the build and the tests need, when missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
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

# Builds the executable too: a test runs the daemon as a process.
test: deps
	$(SWIFT) build
	$(SWIFT) test

# Throughput (kcat vs the scheduler) and handoff gaps on one embedded broker.
bench: release
	.build/release/task-scheduler bench

clean:
	rm -rf .build

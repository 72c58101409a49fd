# `make test` installs everything the suite needs (Debian packages as root, Python packages
# into .venv) and runs lint, type checks and the whole test suite against a private Dovecot.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEBS := dovecot-imapd dovecot-lmtpd dovecot-submissiond isync offlineimap3 neomutt swaks tmux \
        libnet-ssleay-perl libio-socket-ssl-perl \
        openssl ca-certificates python3-venv python3-pip systemd chromium chromium-driver

.PHONY: test deps venv lint check bench clean

# The suite mostly waits (Dovecot, sockets, subprocesses), so it runs on more workers than
# CPUs; each worker has its own private Dovecot on free ports. Tests marked `alone` time
# themselves against a budget and run afterwards, with nothing beside them.
TEST_WORKERS ?= 3
ALONE_TESTS = $(shell $(BIN)/python -c 'from tests.conftest import ALONE; print(*ALONE)')

test: deps venv lint
	@status=0; \
	$(BIN)/pytest -q -n $(TEST_WORKERS) -m "not alone" --durations=25 || status=$$?; \
	$(BIN)/pytest -q -m alone --durations=5 $(ALONE_TESTS) || status=$$?; \
	exit $$status

deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(BIN)/commsproxy

$(BIN)/commsproxy: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

lint: venv
	$(BIN)/ruff check commsproxy tests benchmarks scripts
	$(BIN)/ruff format --check commsproxy tests benchmarks scripts
	$(BIN)/mypy

bench: deps venv
	$(BIN)/python benchmarks/relay.py
	$(BIN)/python benchmarks/accuracy.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

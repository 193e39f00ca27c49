# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
# Both build .venv from nothing the first time.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-systemd lint typecheck format bench check clean example mutants

# deploy/constraints.txt pins the runtime dependencies: the tests run with the
# versions a /opt install gets.
$(STAMP): pyproject.toml deploy/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c deploy/constraints.txt -e '.[dev]'
	touch $(STAMP)

# config/vipexsync.example.toml is generated from the key declarations in vipexsync/config.py.
example: $(STAMP)
	$(BIN)/python -m vipexsync.config_render > config/vipexsync.example.toml

demo: $(STAMP)
	$(BIN)/vipexsync demo

# The second pass: integration and end-to-end again, against emulators that
# clear what a write leaves out (the other reading of the vendor document).
# The real-Prometheus test waits ~105 s for alerts to fire and resolve and
# writes nothing an omission could wipe, so it runs once.
# The two passes run side by side (most of a test's time is spent waiting on
# loopback HTTP, timeouts and child processes, not on the CPU); the second
# pass's output is shown once the first is done. Each pytest session has a
# PostgreSQL database of its own (tests/conftest.py), so their job locks stay apart.
SECOND_PASS := tests/integration tests/e2e --emulator-omitted=clear \
	--ignore=tests/e2e/test_prometheus.py -p no:cacheprovider
test: $(STAMP)
	@log=$$(mktemp) && base=$$(mktemp -d) && \
	{ $(BIN)/python -m pytest $(SECOND_PASS) --basetemp=$$base/t >$$log 2>&1 & second=$$!; } && \
	$(BIN)/python -m pytest; first=$$?; \
	wait $$second; again=$$?; \
	echo; echo "=== second pass: emulators that clear omitted fields (pytest $(SECOND_PASS)) ==="; \
	cat $$log; rm -rf $$log $$base; \
	echo "make test: first pass exit $$first, second pass exit $$again"; \
	[ $$first -eq 0 ] && [ $$again -eq 0 ]

# The deploy/systemd units under a real systemd, in a Debian container (root;
# Debian packages systemd-container and debootstrap). `make test` skips it.
test-systemd: $(STAMP)
	VIPEXSYNC_TEST_NSPAWN=1 $(BIN)/python -m pytest -p no:cacheprovider tests/e2e/test_systemd_nspawn.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict vipexsync

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint typecheck test

# Re-plant each known defect (tests/mutants/*.patch) in a temporary copy and
# show the reliability state machine fails on every one.
mutants: $(STAMP)
	$(BIN)/python tests/mutants/run.py

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

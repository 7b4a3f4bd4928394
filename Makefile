# SimGap: two commands on a fresh machine.
#   make demo   - the main job on the embedded Warp LiDAR backend (writes ./demo_out)
#   make test   - the test suite (what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip
DEMO_OUT ?= demo_out

.PHONY: install kit-env demo test test-py310 lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: the CPU wheel; an unpinned torch pulled in later would be a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The real headless Kit kernel (isaacsim-kernel, Python 3.12) that tests/test_kit_headless.py runs the extension in.
kit-env:
	bash scripts/kit_env.sh

# The realistic preset stands in for real scans (none ship with the package). The main job gates realistic synthetic
# frames against it; a second, short run shows what the gate does to a naive ("ideal" sensor) pipeline.
# --resume makes a re-run of `make demo` continue the runs instead of refusing an existing output directory.
demo: install
	$(BIN)/simgap render --sensor os1-64 --preset realistic --frames 20 --seed 1000 --out $(DEMO_OUT)/real
	$(BIN)/simgap generate --sensor os1-64 --frames 30 --real $(DEMO_OUT)/real --out $(DEMO_OUT)/synthetic --resume
	$(BIN)/simgap report $(DEMO_OUT)/synthetic
	$(BIN)/simgap generate --sensor os1-64 --frames 8 --preset ideal --bank $(DEMO_OUT)/synthetic/bank.npz \
		--out $(DEMO_OUT)/naive --resume
	$(BIN)/simgap report $(DEMO_OUT)/naive
	@echo "reports: $(DEMO_OUT)/synthetic/report.html $(DEMO_OUT)/naive/report.html"

# The suite runs twice: on the project venv (Python 3.11 here, with torch) and on the Kit venv (Python 3.12, the
# numpy Kit pins, no torch: those few tests skip), the two interpreters Isaac Sim 5.x and 6.x bring.
# Side by side (scripts/run_tests.sh): each run is mostly one thread, so on 2 cores the pair takes about as long as one.
test: install kit-env
	VENV=$(VENV) bash scripts/run_tests.sh
	$(MAKE) --no-print-directory test-py310

# Isaac Sim 4.5 runs Python 3.10: the payload / writer / Kit-side tests on it (~1 min, plus ~1 min to build the venv
# once; the whole suite passes there too but takes ~8 min). Skipped, with a note, where no Python 3.10 is found.
PY310 ?= $(shell PYENV_VERSION=3.10 python3.10 -c 'import sys; print(sys.executable)' 2>/dev/null)
PY310_TESTS = tests/test_extension_adapters.py tests/test_extension_rtx_payloads.py tests/test_extension_worker.py \
	tests/test_writer.py tests/test_extension_replicator_source.py tests/test_extension_settings.py tests/test_config.py
.venv-py310/.installed: pyproject.toml
	$(PY310) -m venv .venv-py310
	.venv-py310/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

test-py310:
ifeq ($(PY310),)
	@echo "test-py310: no Python 3.10 found (set PY310=/path/to/python3.10): Isaac Sim 4.5 tests skipped"
else
	$(MAKE) --no-print-directory .venv-py310/.installed
	.venv-py310/bin/python -m pytest -q -p no:cacheprovider $(PY310_TESTS)
endif

lint: install
	$(BIN)/ruff check simgap_ext tests benchmarks
	$(BIN)/ruff format --check simgap_ext tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench_chamfer.py

clean:
	rm -rf $(VENV) .venv-kit .venv-py310 $(DEMO_OUT) .pytest_cache

# lbsim: two commands do all the set-up on a fresh machine (Python >= 3.11 with venv, make, cc).
#   make run    create .venv, install lbsim, run the quickstart experiment (results in runs/quickstart/)
#               and print the four transports side by side
#   make test   create .venv, install lbsim with its test tools, run ruff and mypy, then the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

EXPERIMENTS := quickstart latency_vs_size throughput_vs_size mtu queues cpus load kernels

.PHONY: run test lint results clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/lbsim run experiments/quickstart.toml
	$(BIN)/lbsim compare --workload pingpong --msg-bytes 64 --messages 20000

# ruff and mypy first (seconds); then two workers (pytest-xdist): the slow whole-calibration tests run
# beside the rest; the
# tests that run the harness on this host's sockets or its tracefs share one worker (xdist_group "host")
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# ruff (rules in pyproject.toml [tool.ruff]) and mypy ([tool.mypy]: the lbsim package)
lint: $(BIN)/.installed
	$(BIN)/ruff check lbsim tests && $(BIN)/mypy

# the shipped results: every experiment's full sweep into results/<name>/results.parquet and its
# figures (PNG); runs of an older expansion, which lbsim run moves to superseded/, are not shipped.
# Regenerate when lbsim/model/version.py's MODEL_VERSION (or the default costs) change.
# Made with the default costs' profile (the Intel Xeon v1272 guest), on whatever host: rows and
# figures name it (costs_profile).
results: export LBSIM_COSTS = xeon-v1272-2026-12-06
results: $(BIN)/.installed
	for e in $(EXPERIMENTS); do \
	  $(BIN)/lbsim run experiments/$$e.toml --out results/$$e --force --quiet && \
	  rm -rf results/$$e/superseded results/$$e/figures results/$$e/.lock && \
	  $(BIN)/lbsim plot results/$$e || exit 1; \
	done
	$(BIN)/python scripts/readme_numbers.py

clean:
	rm -rf $(VENV) build *.egg-info

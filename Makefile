# Two commands matter: `make run` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= scenarios/smoke.toml

.PHONY: run test test-fast serve bench typecheck clean

$(BIN)/flowsim-stamp: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "flowsim needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run the smoke scenario against the embedded simulator
run: $(BIN)/flowsim-stamp
	$(BIN)/flowsim run $(SCENARIO) --summary-json runs/last-summary.json --html runs/last-report.html

## run the whole test suite (slow end-to-end tests included)
test: $(BIN)/flowsim-stamp
	@# mypy beside pytest, not before it (the suite's budget is 8 minutes on 2 cores); both must pass.
	@# Four pytest workers on two cores: most end-to-end runs wait on their schedules, not the CPU.
	$(BIN)/python -m mypy > .mypy.out 2>&1 & mypy=$$!; \
	$(BIN)/python -m pytest -q -n 4 --dist loadgroup; rc=$$?; \
	wait $$mypy; typed=$$?; cat .mypy.out; rm -f .mypy.out; \
	[ $$rc -eq 0 ] && [ $$typed -eq 0 ]

## the fast tier: everything that needs no real Locust run (not marked slow); for every change
test-fast: $(BIN)/flowsim-stamp
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow"

## the simulator in the foreground on 127.0.0.1:8080
serve: $(BIN)/flowsim-stamp
	$(BIN)/flowsim serve

## benchmarks (print figures; see README "Performance")
bench: $(BIN)/flowsim-stamp
	$(BIN)/python bench/bench_simulator.py

typecheck: $(BIN)/flowsim-stamp
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache

# Build glue for the course. Everything runs inside .venv, created on first use.
#   make lab         set up and open the course in JupyterLab
#   make test        set up and run the whole test suite (what CI runs)
#   make exercises   regenerate exercises/ from solutions/
#   make solutions   re-execute solution notebooks so their stored outputs are current

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra pip arguments for torch, e.g. a CPU-only wheel index (see README).
TORCH_ARGS ?=
# The lock file was tested on Python 3.11; other versions install from the ranges in pyproject.toml.
CONSTRAINTS := $(shell $(PYTHON) -c 'import sys; print("-c constraints.txt" if sys.version_info[:2] == (3, 11) else "")' 2>/dev/null)
STAMP := $(VENV)/.installed
NBVAL := --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: setup lab test unit notebooks exercises check-exercises solutions clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) $(TORCH_ARGS) "torch>=2.1,<3"
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e ".[course,test]"
	touch $@

# Jupyter refuses to run as root (containers, cloud shells) unless told to.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) course/00_start_here.ipynb

test: $(STAMP)
	GANLIB_SMOKE=1 $(BIN)/python -m pytest --doctest-modules tests ganlib
	GANLIB_SMOKE=1 $(BIN)/python -m pytest --nbval $(NBVAL) solutions
	GANLIB_SMOKE=1 $(BIN)/python -m pytest --nbval-lax $(NBVAL) course

unit: $(STAMP)
	GANLIB_SMOKE=1 $(BIN)/python -m pytest --doctest-modules tests ganlib

exercises: $(STAMP)
	$(BIN)/python -m ganlib exercises

check-exercises: $(STAMP)
	$(BIN)/python -m ganlib exercises --check

solutions: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.record_timing=False solutions/*.ipynb
	$(BIN)/python -m ganlib exercises

clean:
	rm -rf $(VENV) .pytest_cache

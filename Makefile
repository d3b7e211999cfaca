# Build glue for the course. Everything runs inside .venv, created on first use.
#   make setup       create .venv and install everything (no server, no tests)
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
# The unit tests run in parallel (pytest-xdist), one test file per worker at a time, so a file's
# module-level fixtures (a trained classifier, a distributed run) are built once. make test JOBS=1 runs them serially.
JOBS ?= 2
XDIST := $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadfile)

.PHONY: setup lab test unit notebooks-no-simd exercises check-exercises solutions clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) $(TORCH_ARGS) "torch>=2.1,<3"
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e ".[course,test]"
	touch $@

# Jupyter refuses to run as root (containers, cloud shells) unless told to.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

# Serve from the repository root (course/, exercises/ and solutions/ all visible) and open chapter 00.
# The course's JupyterLab settings (.jupyterlab/settings/overrides.json: no "Jupyter news" pop-up)
# apply to this server only; the user's own Jupyter configuration is left alone.
# The file browser hides what Jupyter hides by default plus the package metadata that `make setup`'s
# editable install writes beside ganlib/ (ganlib.egg-info).
LAB_SETTINGS := $(CURDIR)/.jupyterlab/settings
LAB_HIDE := __pycache__ *.pyc *.pyo .DS_Store *~ *.egg-info
LAB_FLAGS = --ServerApp.root_dir="$(CURDIR)" --LabApp.app_settings_dir="$(LAB_SETTINGS)" \
  $(foreach glob,$(LAB_HIDE),--ContentsManager.hide_globs='$(glob)')

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) $(LAB_FLAGS) course/00_start_here.ipynb

# The notebooks run a second time with the CPU's optional vector code switched off: NumPy's dispatched
# SIMD kernels (AVX2, AVX-512...: the list comes from the installed NumPy, see
# ganlib.utils.optional_simd_features), OpenBLAS's kernels (generic x86-64 ones) and torch's (no AVX).
# They change the last bits of exp, log, sums and matrix products, as another CPU would: a compared
# output that prints floating-point noise fails here instead of on someone else's machine. This pass
# covers every problem set (all their outputs are compared) and the lessons whose compared cells print
# NumPy results (chapters 00-05 and appendix A); the image lessons compare little and would double
# the time of CI.
NO_SIMD_LESSONS = $(wildcard course/0[0-5]_*.ipynb course/A_*.ipynb)
SIMD_OFF = $(shell $(BIN)/python -c "from ganlib.utils import optional_simd_features as f; print(' '.join(f()))")
NO_SIMD = NPY_DISABLE_CPU_FEATURES="$(SIMD_OFF)" ATEN_CPU_CAPABILITY=default \
  $(if $(filter x86_64 amd64 AMD64,$(shell uname -m 2>/dev/null)),OPENBLAS_CORETYPE=Prescott,)

test: $(STAMP)
	$(MAKE) --no-print-directory unit
	GANLIB_SMOKE=1 $(BIN)/python -m pytest --nbval $(NBVAL) solutions
	GANLIB_SMOKE=1 $(BIN)/python -m pytest --nbval-lax $(NBVAL) course
	$(MAKE) --no-print-directory notebooks-no-simd

notebooks-no-simd: $(STAMP)
	$(NO_SIMD) GANLIB_SMOKE=1 $(BIN)/python -m pytest -p no:cacheprovider --nbval $(NBVAL) solutions
	$(NO_SIMD) GANLIB_SMOKE=1 $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax $(NBVAL) $(NO_SIMD_LESSONS)

unit: $(STAMP)
	GANLIB_SMOKE=1 $(BIN)/python -m pytest $(XDIST) --doctest-modules tests ganlib

exercises: $(STAMP)
	$(BIN)/python -m ganlib exercises

check-exercises: $(STAMP)
	$(BIN)/python -m ganlib exercises --check

# CI=1 silences the progress bars (budgets are unchanged): the stored outputs carry no bar.
solutions: $(STAMP)
	CI=1 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.record_timing=False solutions/*.ipynb
	$(BIN)/python -m ganlib exercises

clean:
	rm -rf $(VENV) .pytest_cache

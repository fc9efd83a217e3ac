# make demo  - create .venv, build pyclone, run the demonstration
# make test  - create .venv, build pyclone with its test extras, run the tests
# make bench - create .venv, build pyclone, run the benchmark table
# make dist  - the sdist and manylinux wheels in dist/, checked
# make docs  - create .venv, build pyclone with Sphinx, build the site in docs/_build/html
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test bench dist docs venv install install-test install-docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

venv: $(PY)

# build/ is setuptools' object cache, named by version only: a debug and a
# release build of one CPython would share it, so it starts empty each time.
install: $(PY)
	rm -rf build
	$(PY) -m pip install --quiet --disable-pip-version-check .

install-test: $(PY)
	rm -rf build
	$(PY) -m pip install --quiet --disable-pip-version-check '.[test]'

install-docs: $(PY)
	rm -rf build
	$(PY) -m pip install --quiet --disable-pip-version-check '.[docs]'

demo: install
	$(PY) -m pyclone demo

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m pyclone bench

# warnings are errors: a broken link or docstring fails the build
docs: install-docs
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# sdist + a manylinux wheel per CPython on this machine, checked (.ci/dist)
dist:
	bash .ci/dist

clean:
	rm -rf $(VENV) .venv-* build dist src/*.egg-info

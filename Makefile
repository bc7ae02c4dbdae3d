# rbnode: MicroPython firmware for rbAmp energy-monitoring nodes.
# `make run` and `make test` install what they need by themselves (tools/setup.sh).
PY      := .venv/bin/python
PYTEST  ?= $(PY) -m pytest
DURATION ?=
export DURATION

.PHONY: setup run test bench clean

setup:
	@tools/setup.sh

run: setup
	@$(PY) tools/hostrun.py

test: setup
	@$(PYTEST) -q -n 2 --dist loadgroup tests $(PYTEST_ARGS)

bench: setup
	@$(PY) bench/run.py $(SUITE)

clean:
	rm -rf build .hostboard .pytest_cache

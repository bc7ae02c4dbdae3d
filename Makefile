# rbnode: MicroPython firmware for rbAmp energy-monitoring nodes.
# `make run` and `make test` install what they need by themselves (tools/setup.sh).
PY      := .venv/bin/python
PYTEST  ?= $(PY) -m pytest
DURATION ?=
export DURATION

BOARD   ?= ESP32_GENERIC
PORT    ?=
IMAGE   ?=
CONFIG  ?= config.json
export MPY_DIR FIRMWARE ERASE FS_SIZE VARIANT

.PHONY: setup run test test-slow ha-setup test-ha bench clean firmware fs-image merged flash deploy dev config-check \
	manifest-check stubcheck checks ota-key ota-bundle ota-firmware

setup:
	@tools/setup.sh

run: setup
	@$(PY) tools/host/hostrun.py

test: setup
	@$(PYTEST) -q -n 2 --dist loadgroup -m "not slow" tests $(PYTEST_ARGS)

test-slow: setup
	@$(PY) tools/ha_env.py --if-possible
	@$(PYTEST) -q -n 2 --dist loadgroup -m slow tests $(PYTEST_ARGS)

ha-setup: setup
	@$(PY) tools/ha_env.py

test-ha: setup ha-setup
	@$(PYTEST) -q -rs tests/test_ha.py $(PYTEST_ARGS)

bench: setup
	@$(PY) bench/run.py $(SUITE)

clean:
	rm -rf build .hostboard .pytest_cache

# ---- firmware image and tools (README, "Firmware image") -------------------------------
firmware: setup
	@$(PY) tools/firmware.py $(BOARD)

fs-image: setup
	@$(PY) tools/fsimage.py image $(BOARD) $(if $(wildcard $(CONFIG)),--config $(CONFIG))

merged: setup
	@$(PY) tools/fsimage.py merged $(BOARD) "$(FIRMWARE)" $(if $(wildcard $(CONFIG)),--config $(CONFIG))

flash: setup
	@$(PY) tools/devloop.py flash $(BOARD) "$(PORT)" $(IMAGE)

deploy: setup
	@$(PY) tools/devloop.py deploy "$(PORT)"

dev: setup
	@$(PY) tools/devloop.py dev "$(PORT)"

config-check: setup
	@$(PY) tools/checkconfig.py $(if $(filter command line environment,$(origin BOARD)),--board $(BOARD)) $(CONFIG)

# ---- over-the-air updates (README, "Updates over the air") -------------------------------
KEY     ?= keys/ota-key.pem
export KEY VERSION OUT

ota-key: setup
	@$(PY) tools/ota.py keygen

ota-bundle: setup
	@$(PY) tools/ota.py bundle

ota-firmware: setup
	@$(PY) tools/ota.py firmware $(if $(IMAGE),--image $(IMAGE))

manifest-check: setup
	@$(PY) tools/manifest.py check

stubcheck: setup
	@$(PY) tools/stubcheck.py

checks: manifest-check stubcheck

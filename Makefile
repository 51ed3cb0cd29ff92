# karma_memory: `make demo` and `make test` do all set-up on a fresh Debian 12 / Python 3.11 machine.
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
export AMENT_PREFIX_PATH := $(VENV)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOG_DIR := $(CURDIR)/build/ros_log

.PHONY: setup test demo bench clean fleet-demo
setup:
	@bash scripts/setup_venv.sh

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/karma demo

bench: setup
	$(VENV)/bin/karma bench all

fleet-demo: setup
	$(VENV)/bin/karma fleet demo

clean:
	rm -rf build .venv .pytest_cache

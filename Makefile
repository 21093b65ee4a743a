# lfn_ros developer entry points. On a fresh machine (Python >= 3.10 with venv, cmake, a C/C++
# compiler) `make run` and `make test` do all set-up themselves:
#   1. create .venv and install the pinned requirements.txt (ROS 2 wheels, torch, OpenCV, pytest)
#   2. install lfn_ros from this tree in editable mode (source edits take effect at once)
#   3. build msg/ into .venv with plain CMake (tools/build_msgs.sh), giving lfn_ros.msg
# Each step leaves a stamp file in .venv and is redone only when its inputs change.
# On a ROS install use colcon instead: `colcon build --packages-select lfn_ros`.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
MSGS_BUILD ?= build/msgs
PYTEST_ARGS ?=

VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
# pip's config on some machines names find-links/index locations that do not exist; pip warns
# about each one on every run ("Location ... is ignored"). Drop those lines, keep the rest.
PIP_FILTER := 2>&1 | { grep -v -E 'Location .* is ignored' || true; }

# What `make run` runs (one place to change it).
RUN_CMD ?= $(VENV)/bin/lfn-ros run

# ROS middleware for everything started from here (tests, demo).
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export PYTHONUNBUFFERED := 1

STAMP_REQS := $(VENV)/.stamp-requirements
STAMP_EDITABLE := $(VENV)/.stamp-editable
STAMP_MSGS := $(VENV)/.stamp-msgs
MSG_FILES := $(wildcard msg/*.msg)

.PHONY: help venv msgs run test clean distclean

help:
	@echo "lfn_ros make targets:"
	@echo "  make run        set up .venv if needed, then run the demo: $(RUN_CMD)"
	@echo "  make test       set up .venv if needed, then run the tests: pytest -q test$(if $(PYTEST_ARGS), $(PYTEST_ARGS))"
	@echo "  make venv       create .venv, install requirements.txt and lfn_ros (editable)"
	@echo "  make msgs       build msg/ into .venv (lfn_ros.msg); rebuilt when msg/ or CMake files change"
	@echo "  make clean      remove build/, out/ and caches (keeps .venv; msgs are rebuilt next time)"
	@echo "  make distclean  clean, and remove .venv"
	@echo "Variables: PYTHON=$(PYTHON) VENV=$(VENV) PYTEST_ARGS='-k name' RUN_CMD='...'"

# --- set-up -------------------------------------------------------------------------------

$(VPY):
	@echo ">> creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version 2>&1))"
	@$(PYTHON) -m venv $(VENV) || { echo "make: '$(PYTHON) -m venv' failed (on Debian/Ubuntu: apt install python3-venv)" >&2; exit 1; }

$(STAMP_REQS): requirements.txt | $(VPY)
	@echo ">> installing requirements.txt into $(VENV) (first time: a few minutes, about 1.5 GB)"
	@$(PIP) install -q --disable-pip-version-check -r requirements.txt $(PIP_FILTER)
	@touch $@

$(STAMP_EDITABLE): setup.py $(STAMP_REQS)
	@echo ">> installing lfn_ros from this tree into $(VENV) (editable)"
	@$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation -e . $(PIP_FILTER)
	@touch $@

$(STAMP_MSGS): $(MSG_FILES) CMakeLists.txt package.xml tools/build_msgs.sh tools/fix_rosidl_wheels.py $(STAMP_REQS)
	@echo ">> building msg/ into $(VENV) (cmake, $(MSGS_BUILD))"
	@tools/build_msgs.sh $(VENV) $(MSGS_BUILD)
	@touch $@

venv: $(STAMP_EDITABLE)

msgs: $(STAMP_MSGS)

# --- use ----------------------------------------------------------------------------------

run: $(STAMP_EDITABLE) $(STAMP_MSGS)
	@mkdir -p out
	$(RUN_CMD)

test: $(STAMP_EDITABLE) $(STAMP_MSGS)
	$(VPY) -m pytest -q test $(PYTEST_ARGS)

# --- cleaning -----------------------------------------------------------------------------

clean:
	rm -rf build out .pytest_cache *.egg-info $(STAMP_MSGS)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

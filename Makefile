# CropMapper: `make test` and `make demo` set up everything they need on a fresh Debian 12 machine.
SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen

.PHONY: all test demo bench package system-packages venv clean

all: test

system-packages:
	@scripts/install_system_packages.sh

# Order-only on system-packages: checking them never forces a reinstall of the venv.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt | system-packages
	$(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) -m engine demo --out demo_out

bench: $(STAMP)
	$(PY) bench/run_all.py

package:
	$(SYSTEM_PYTHON) scripts/package_plugin.py

clean:
	rm -rf $(VENV) dist .pytest_cache

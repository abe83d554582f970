# The two commands of the README: `make demo` (the main job on the embedded default) and
# `make test`. Both create .venv/ with Python 3.11 and install everything on first use.
PYTHON ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[bridge,blender,dev]"
	@touch $@

demo: $(STAMP)
	$(VPY) -m bridge demo --out out

test: $(STAMP)
	$(VPY) -m pytest -q

bench: $(STAMP)
	$(VPY) -m benchmarks prior --json

clean:
	rm -rf $(VENV) out

# The two commands of the README: `make demo` (the main job on the embedded default) and
# `make test`. Both create .venv/ with Python 3.11 and install everything on first use.
PYTHON ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The Khronos glTF validator (npm) checks the .glb files mesh_export writes; without npm that one
# test is skipped.
NODE_TOOLS := $(VENV)/node
GLTF_VALIDATOR := gltf-validator@2.0.0-dev.3.10

.PHONY: demo test bench venv extension clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[bridge,blender,dev]"
	@touch $@

$(NODE_TOOLS)/.installed:
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --prefix $(NODE_TOOLS) $(GLTF_VALIDATOR) && touch $@ \
			|| echo "could not install $(GLTF_VALIDATOR): the glTF validator test will be skipped"; \
	else echo "npm not found: the glTF validator test will be skipped"; fi

# The main job: first without Blender (bridge CLI: prior, mesh export, edits through the bridge),
# then through Blender: the example script run by the bpy module as `blender -b --python` would,
# with the built extension installed; it starts a bridge (token and cache under out/bridge), edits
# a head with a shipped module and, on top, an instruction sentence that no module was trained for
# (the open model), imports it, writes out/*.glb, out/*.blend and a Cycles preview.
DEMO_PORT ?= 8767
demo: $(STAMP)
	$(VPY) -m bridge demo --out out
	TEXT_EDIT_CONFIG_DIR=$(abspath out/bridge/config) TEXT_EDIT_CACHE_DIR=$(abspath out/bridge/cache) \
		$(VPY) -m tools.blender --user-resources out/blender-user examples/edit_head.py -- \
		--seed 3 --module red_hair --instruction "make the eyes green" --url http://127.0.0.1:$(DEMO_PORT) --bridge-python $(abspath $(VPY)) --out out

# The Blender extension: one zip per platform in dist/ (wheels fetched into wheels/).
extension: $(STAMP)
	$(VPY) -m tools.extension validate
	$(VPY) -m tools.extension build --platform all

test: $(STAMP) $(NODE_TOOLS)/.installed
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .
	NODE_PATH=$(abspath $(NODE_TOOLS))/node_modules $(VPY) -m pytest -q

bench: $(STAMP)
	$(VPY) -m benchmarks prior --json
	$(VPY) -m benchmarks mesh --json
	$(VPY) -m benchmarks guidance --json
	$(VPY) -m benchmarks addon --json
	$(VPY) -m benchmarks eg3d --json
	$(VPY) -m benchmarks interactive --json
	$(VPY) -m benchmarks hostile --json

clean:
	rm -rf $(VENV) out dist build wheels

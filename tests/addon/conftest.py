"""The add-on as Blender runs it: the extension zip built for this platform, installed into a
private Blender user folder, scripts run through tools/blender.py (like `blender -b --python`),
and a real bridge process on a free loopback port."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.conftest import BridgeProcess

ROOT = Path(__file__).resolve().parents[2]
RESULT = "RESULT "


@contextlib.contextmanager
def checkout_as_package():
    """The checkout imported as the package `text_edit` (as Blender imports the extension), for
    add-on modules that need no running Blender; removed from sys.modules afterwards."""
    spec = importlib.util.spec_from_file_location("text_edit", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["text_edit"] = package
    spec.loader.exec_module(package)
    try:
        yield package
    finally:
        for name in [n for n in sys.modules if n == "text_edit" or n.startswith("text_edit.")]:
            del sys.modules[name]


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    from tools.extension import build, current_platform

    return build([current_platform()], tmp_path_factory.mktemp("dist"))[0]


@pytest.fixture(scope="module")
def live_bridge(tmp_path_factory):
    process = BridgeProcess(tmp_path_factory.mktemp("bridge")).start()
    yield process
    process.stop()


class Blender:
    """Runs a script body in a fresh bpy process with the extension enabled; the body may call
    `result(obj)` to hand a JSON-able value back."""

    PRELUDE = (
        "import json, sys, bpy, importlib\n"
        "text_edit = importlib.import_module('bl_ext.user_default.text_edit.addon')\n"
        "api = importlib.import_module('bl_ext.user_default.text_edit.addon.api')\n"
        "prefs = bpy.context.preferences.addons['bl_ext.user_default.text_edit'].preferences\n"
        "def result(value):\n"
        f"    print({RESULT!r} + json.dumps(value), flush=True)\n"
    )

    def __init__(self, zip_path: Path, folder: Path):
        self.zip_path, self.folder = zip_path, folder

    def run(self, body: str, *args: str, env: dict | None = None, script: Path | None = None, timeout: float = 600):
        if script is None:
            script = self.folder / "script.py"
            script.write_text(self.PRELUDE + body)
        command = [
            sys.executable,
            "-m",
            "tools.blender",
            "--extension",
            str(self.zip_path),
            "--user-resources",
            str(self.folder / "blender-user"),
            str(script),
            "--",
            *args,
        ]
        environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout)
        results = [json.loads(line[len(RESULT) :]) for line in done.stdout.splitlines() if line.startswith(RESULT)]
        return done, (results[-1] if results else None)


@pytest.fixture
def blender(extension_zip, tmp_path) -> Blender:
    return Blender(extension_zip, tmp_path)


def bridge_env(bridge: BridgeProcess) -> dict:
    """Points the add-on (and the example script) at the test bridge's token folder."""
    return {"TEXT_EDIT_CONFIG_DIR": str(bridge.config), "TEXT_EDIT_CACHE_DIR": str(bridge.cache)}

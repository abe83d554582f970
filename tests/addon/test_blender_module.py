"""The add-on side runs in Blender's Python; tests use the bpy 4.5 wheel as a module."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bpy_wheel_is_blender_4_5_with_numpy_1():
    script = "import bpy, numpy; print(bpy.app.version[:2], numpy.__version__.split('.')[0])"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2].strip() == "(4, 5) 1"


def test_extension_package_registers_and_never_imports_torch():
    script = (
        "import sys, importlib.util, bpy\n"
        f"spec = importlib.util.spec_from_file_location('text_edit', {str(ROOT / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(ROOT)!r}])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['text_edit'] = module\n"
        "spec.loader.exec_module(module)\n"
        "module.register(); module.unregister()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("False")


def test_blenders_own_extension_validator_accepts_the_manifest():
    from tools.extension import run_blender_ext

    assert "Success" in run_blender_ext("validate", str(ROOT))  # raises BuildError with the tool's output otherwise


def test_manifest_has_the_fields_blender_requires():
    import tomllib

    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min", "license"):
        assert key in manifest, key
    assert manifest["type"] == "add-on"
    assert importlib.util.find_spec("bpy") is not None

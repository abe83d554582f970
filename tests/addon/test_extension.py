"""The built extension zip: what it carries, and that Blender installs and registers it."""

import zipfile

from tests.addon.conftest import ROOT


def test_zip_carries_the_addon_mesh_export_the_client_and_its_platform_wheels(extension_zip):
    names = set(zipfile.ZipFile(extension_zip).namelist())
    for needed in (
        "__init__.py",
        "blender_manifest.toml",
        "addon/__init__.py",
        "addon/api.py",
        "mesh_export/pipeline.py",
        "bridge/service/client.py",
        "bridge/service/settings.py",
        "bridge/errors.py",
    ):
        assert needed in names, needed
    assert not any(n.startswith(("bridge/field", "bridge/lenerf", "bridge/prior", "tests/", "tools/")) for n in names)
    assert "bridge/service/api.py" not in names and "bridge/service/engine.py" not in names
    wheels = [n for n in names if n.startswith("wheels/")]
    assert any("scikit_image" in n for n in wheels) and any("scipy" in n for n in wheels)
    assert not any("win_amd64" in n or "macosx" in n for n in wheels), "only this platform's wheels"
    assert not any(n.startswith("wheels/numpy") for n in wheels), "Blender ships numpy"


def test_every_addon_and_mesh_export_module_ships(extension_zip):
    names = set(zipfile.ZipFile(extension_zip).namelist())
    sources = {p.relative_to(ROOT).as_posix() for folder in ("addon", "mesh_export") for p in (ROOT / folder).glob("*.py")}
    assert sources and sources <= names, sorted(sources - names)


def test_installed_extension_registers_panel_operators_and_preferences_without_torch(blender):
    done, found = blender.run(
        "result({'panel': hasattr(bpy.types, 'VIEW3D_PT_text_edit'),\n"
        "        'category': bpy.types.VIEW3D_PT_text_edit.bl_category,\n"
        "        'operators': sorted(op for op in dir(bpy.ops.text_edit)),\n"
        "        'url': prefs.bridge_url, 'grid': prefs.default_grid,\n"
        "        'scene': bpy.context.scene.text_edit.seed,\n"
        "        'torch': 'torch' in sys.modules})\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert found["panel"] and found["category"] == "Text Edit"
    assert {"connect", "new_head", "edit", "remove_last", "train", "cancel", "show_mask", "export_gltf"} <= set(found["operators"])
    assert found["url"] == "http://127.0.0.1:8765" and found["grid"] == 128
    assert found["torch"] is False


def test_disabling_the_addon_mid_task_cancels_it_and_removes_its_timer(blender):
    done, found = blender.run(
        "import addon_utils, threading\n"
        "tasks = importlib.import_module('bl_ext.user_default.text_edit.addon.tasks')\n"
        "runner = text_edit.properties.RUNNER\n"
        "runner.background = False\n"
        "cancelled = threading.Event()\n"
        "def work(progress):\n"
        "    while not progress.cancelled:\n"
        "        threading.Event().wait(0.01)\n"
        "runner.start(tasks.Task('wait', work, lambda v: None, on_cancel=cancelled.set))\n"
        "registered = bpy.app.timers.is_registered(runner.timer_callback)\n"
        "addon_utils.disable('bl_ext.user_default.text_edit')\n"
        "result({'registered': registered, 'after': bpy.app.timers.is_registered(runner.timer_callback),\n"
        "        'cancelled': cancelled.wait(5), 'panel': hasattr(bpy.types, 'VIEW3D_PT_text_edit')})\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert found == {"registered": True, "after": False, "cancelled": True, "panel": False}

"""The add-on inside Blender (the bpy module, the built extension, a real bridge on loopback).

- import_s_128, import_s_256: FieldGrid bytes (a blue_eyes edit at that grid) -> textured Blender
  object: read, marching cubes, UV atlas, 1024^2 texture bake, mesh + material + mask + vertex
  group in bpy. Median of 3.
- ui_blocked_max_ms: the longest main-thread callback of the add-on while an edit job (grid 128)
  runs on the bridge: the timer that drains the worker's queue, pumped every 10 ms the way
  Blender's event loop calls bpy.app.timers. ui_tick_late_max_ms: how much later than asked the
  main thread got to run at all (the worker's meshing holds the GIL at times). import_main_thread_ms is the one callback that builds
  the Blender data when the job is done (it has to touch bpy, so it runs on the main thread).
- glb_export_s: the 256-grid head to .glb with texture, mask attribute and extras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bridge.service.launcher import LocalBridge

ROOT = Path(__file__).resolve().parents[1]
MARK = "ADDON_FIGURES "

PRELUDE = r"""
import importlib, json, statistics, sys, threading, time
import bpy
root = "bl_ext.user_default.text_edit"
api = importlib.import_module(root + ".addon.api")
addon = importlib.import_module(root + ".addon")
mesh_export = importlib.import_module(root + ".mesh_export")
work = importlib.import_module(root + ".addon.work")
importer = importlib.import_module(root + ".addon.importer")
"""
"""What every benchmark script run in Blender starts with: the installed extension's modules."""

SCRIPT = (
    PRELUDE
    + r"""
properties = addon.properties
url, grids, repeats, texture = sys.argv[-4], [int(g) for g in sys.argv[-3].split(",")], int(sys.argv[-2]), int(sys.argv[-1])
bpy.ops.wm.read_homefile(use_empty=True)
api.connect(url=url)
client = importlib.import_module(root + ".addon.connection").make_client(
    addon.preferences.get().settings(), True)
figures = {}
head = client.create_head(seed=3)
for grid in grids:
    job = client.submit_edit(head["id"], [{"module": "blue_eyes"}], grid)
    client.wait(job["id"], poll_s=0.05)
    data = client.result(job["id"], "field.npz")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        mesh = mesh_export.grid_to_mesh(mesh_export.read_bytes(data), mesh_export.ExportOptions(texture_size=texture)).to_blender()
        request = work.EditRequest(work.HeadSpec(3), ({"module": "blue_eyes"},), grid, texture)
        obj = importer.import_outcome(bpy.context.scene, work.EditOutcome(request, mesh, job, b""))
        times.append(time.perf_counter() - started)
    figures[f"import_s_{grid}"] = round(statistics.median(times), 3)
    figures[f"triangles_{grid}"] = len(obj.data.polygons)
started = time.perf_counter()
api.export_glb(sys.argv[-5], [obj])
figures["glb_export_s"] = round(time.perf_counter() - started, 3)

# The interactive path: worker thread + timer callbacks pumped like Blender's event loop.
timers = []
runner = properties.RUNNER
runner.background, runner.register_timer = False, timers.append
settings = bpy.context.scene.text_edit
settings.grid, settings.texture_size, settings.seed = min(grids[-1], 128), str(texture), 3
operators = importlib.import_module(root + ".addon.operators")
operators.start_edit(bpy.context, work.HeadSpec(3), [{"module": "blue_eyes", "strength": 0.8}], "benchmark edit")
during, final, polls, late, woke = 0.0, 0.0, 0, 0.0, None
while True:
    started = time.perf_counter()
    if woke is not None:
        late = max(late, 1000 * (started - woke) - 10.0)
    again = timers[-1]()
    spent = 1000 * (time.perf_counter() - started)
    if again is None:
        final = spent
        break
    during, polls = max(during, spent), polls + 1
    woke = time.perf_counter()
    time.sleep(0.01)
figures["ui_blocked_max_ms"] = round(during, 2)
figures["ui_callbacks_during_job"] = polls
figures["ui_tick_late_max_ms"] = round(late, 1)
figures["import_main_thread_ms"] = round(final, 1)
figures["job_failed"] = runner.status.failed
print("ADDON_FIGURES " + json.dumps(figures), flush=True)
api.disconnect()
"""
)


def in_blender(script: str, mark: str, what: str, args: Callable[[Path, str], list[str]]) -> dict:
    """Run `script` in the bpy module with the built extension installed and a real bridge on
    loopback (its config and cache in a temporary folder); `args(folder, bridge_url)` are the
    script's arguments. The JSON the script printed after `mark`."""
    from tools.extension import build, current_platform

    with tempfile.TemporaryDirectory(prefix="text-edit-blender-bench-") as folder:
        folder = Path(folder)
        extension = build([current_platform()], folder / "dist")[0]
        path = folder / "measure.py"
        path.write_text(script)
        with LocalBridge(folder / "config", folder / "cache", log=folder / "bridge.log") as bridge:
            env = {**os.environ, "TEXT_EDIT_CONFIG_DIR": str(folder / "config"), "TEXT_EDIT_CACHE_DIR": str(folder / "cache")}
            command = [sys.executable, "-m", "tools.blender", "--extension", str(extension), "--user-resources", str(folder / "user")]
            done = subprocess.run([*command, str(path), "--", *args(folder, bridge.url)], cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(mark)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the {what} benchmark failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len(mark) :])


def run(quick: bool = False) -> dict:
    grids, repeats = ("64,128", 1) if quick else ("128,256", 3)
    return in_blender(SCRIPT, MARK, "add-on", lambda folder, url: [str(folder / "head.glb"), url, grids, str(repeats), "1024"])

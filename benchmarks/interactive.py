"""Interactive edits: from pressing Edit to a textured head in Blender, sparse against dense sampling.

One warm bridge on loopback (its CLIP, planes and the head already made), Blender as the bpy
module with the built extension, the shipped blue_eyes edit on head seed 3. Both paths run in the
same process one after the other, so their ratio is measured side by side.

- edit_to_mesh_s_128 / _256: the add-on's worker path (addon/work.py run_edit: the field job and
  the pictures job submitted together, the FieldGrid downloaded and meshed with UV atlas and
  1024^2 texture while the bridge renders the pictures, arrays prepared for bpy; the pictures
  follow the head) and then the Blender object built (every import part run back to back): the first edit at that grid, meshed
  from scratch. `_dense`: the same with the field evaluated at every voxel. speedup_128 /
  speedup_256: dense over sparse, both first edits. `_again` (edit_to_mesh_s_128_again,
  edit_to_mesh_s_256_again, edit_to_mesh_s_128_dense_again, speedup_128_again): the same edit once
  more (median of 2 for sparse): a colour edit keeps the head's density, so the add-on's mesher
  re-colours the surface it kept (mesh_export.SurfaceCache) instead of meshing again, as for every
  colour edit of a head already in Blender. parts_s_128 (and _again): where the first (last) sparse
  run's time went (field_job: submit to field done; download_and_mesh; import: the bpy part;
  pictures_after_import: how much later the pictures job's before | after picture reached the
  head, as the add-on's follow-up attaches it (the head does not wait for it; the next edit
  starts after it); bridge: the field job's own stages on the bridge, in seconds).
- chamfer_voxels, colour_psnr_db_vs_dense, mask_max_abs_vs_dense: the sparse grid's mesh against
  the dense one's at 128^3 (mean two-way closest-vertex distance in voxels; colour and mask read at
  the dense mesh's vertices from each grid).
- main_thread_max_ms: the longest timer callback while the add-on's own Edit runs (worker thread +
  timers pumped every 10 ms as Blender's event loop calls them, the import spread over ticks);
  tick_late_max_ms: how much later than asked a timer got to run.
- slider_step_s: one step of the live strength slider (addon/live.py) while dragging: the same edit
  at another strength on its coarse grid (64^3, 512^2 texture, no previews), request to Blender
  object; median of 3.
- apply_ms: on the bridge's side, one edit applied and one 128^2 view rendered as the previews are,
  skipping empty space with its samples moved to the coarse pass (`occupancy.skipping_samples`;
  median of 3); apply_ms_full: the same view with the prior's own samples, evaluating every one.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.addon import PRELUDE, in_blender

MARK = "INTERACTIVE_FIGURES "

SCRIPT = (
    PRELUDE
    + r'''
import numpy as np
from scipy.spatial import cKDTree
colour = importlib.import_module(root + ".mesh_export.colour")
surface = importlib.import_module(root + ".mesh_export.surface")
url, quick = sys.argv[-2], sys.argv[-1] == "quick"
bpy.ops.wm.read_homefile(use_empty=True)
api.connect(url=url)
client = importlib.import_module(root + ".addon.connection").make_client(addon.preferences.get().settings(), True)
head = client.create_head(seed=3)
steps = [{"module": "blue_eyes", "strength": 1.0}]


tasks = importlib.import_module(root + ".addon.tasks")
marks = []
progress = tasks.Progress(lambda fraction, stage, eta: marks.append((stage, time.perf_counter())), __import__("threading").Event())


def edit_to_mesh(grid, sampling, strength=1.0, previews=True, texture=1024):
    """The add-on's own worker path (work.run_edit: the field job, the pictures job beside it,
    download, meshing, arrays for bpy), then every import part back to back."""
    marks.clear()
    started = time.perf_counter()
    request = work.EditRequest(work.HeadSpec(3), ({**steps[0], "strength": strength},), grid, texture, previews, sampling)
    outcome = work.run_edit(client, request, progress, 600, pictures_later=True)
    prepared = time.perf_counter()
    importer.import_outcome(bpy.context.scene, outcome)
    done = time.perf_counter()
    if outcome.pictures_job:  # as the add-on's follow-up does; the next edit starts after them
        preview, _ = work.fetch_pictures(client, outcome.pictures_job, 600)
        importer.attach_pictures(bpy.context.scene, request.head.key, outcome.job["id"], preview)
    stage_at = {stage: when for stage, when in marks}
    parts = {"field_job": stage_at.get("downloading the field", prepared) - started,
             "download_and_mesh": stage_at.get("preparing the import", prepared) - stage_at.get("downloading the field", started),
             "import": done - prepared,
             "pictures_after_import": time.perf_counter() - done}
    breakdowns[grid, sampling] = {**{k: round(v, 3) for k, v in parts.items()}, "bridge": outcome.job.get("info", {}).get("stage_seconds")}
    field = mesh_export.read_bytes(client.result(outcome.job["id"], "field.npz"))
    return done - started, field


figures, breakdowns = {}, {}
edit_to_mesh(64, "sparse")  # warm: CLIP, the module, the planes
grids = (128,) if quick else (128, 256)
fields = {}
for grid in grids:
    # The first edit at a grid meshes the head from scratch; the next ones (a colour edit keeps the
    # head's density) are re-coloured on the surface the mesher kept: measured apart.
    for sampling in ("sparse", "dense"):
        runs = 1 if quick else (3 if sampling == "sparse" else 2 if grid == 128 else 1)
        times, parts = [], []
        for _ in range(runs):
            seconds, fields[grid, sampling] = edit_to_mesh(grid, sampling)
            times.append(seconds)
            parts.append(breakdowns[grid, sampling])
        suffix = "" if sampling == "sparse" else "_dense"
        figures[f"edit_to_mesh_s_{grid}{suffix}"] = round(times[0], 3)
        if len(times) > 1:
            figures[f"edit_to_mesh_s_{grid}{suffix}_again"] = round(statistics.median(times[1:]), 3)
        if sampling == "sparse":
            figures[f"parts_s_{grid}"] = parts[0]
            if len(parts) > 1:
                figures[f"parts_s_{grid}_again"] = parts[-1]
    figures[f"speedup_{grid}"] = round(figures[f"edit_to_mesh_s_{grid}_dense"] / figures[f"edit_to_mesh_s_{grid}"], 2)
    if f"edit_to_mesh_s_{grid}_dense_again" in figures:
        figures[f"speedup_{grid}_again"] = round(figures[f"edit_to_mesh_s_{grid}_dense_again"] / figures[f"edit_to_mesh_s_{grid}_again"], 2)
    figures[f"evaluated_fraction_{grid}"] = fields[grid, "sparse"].provenance.get("sampling", {}).get("evaluated")

dense, sparse = fields[128, "dense"], fields[128, "sparse"]
options = surface.SurfaceOptions(max_triangles=0, min_component_fraction=0.0)
theirs, ours = surface.extract_surface(dense, options), surface.extract_surface(sparse, options)
a, b = cKDTree(theirs.vertices), cKDTree(ours.vertices)
figures["chamfer_voxels"] = round(float((a.query(ours.vertices)[0].mean() + b.query(theirs.vertices)[0].mean()) / 2 / dense.voxel_size), 5)
mse = float(np.mean((colour.sample_rgb(dense, theirs.vertices) - colour.sample_rgb(sparse, theirs.vertices)) ** 2))
figures["colour_psnr_db_vs_dense"] = round(10 * np.log10(1 / max(mse, 1e-12)), 2)
figures["mask_max_abs_vs_dense"] = round(float(np.abs(colour.sample_masks(dense, theirs.vertices) - colour.sample_masks(sparse, theirs.vertices)).max()), 5)

live = importlib.import_module(root + ".addon.live")
slider = [edit_to_mesh(live.LIVE_GRID, "sparse", strength, False, live.LIVE_TEXTURE)[0] for strength in (0.4, 0.6, 0.8)]
figures["slider_step_s"] = round(statistics.median(slider), 3)

# The add-on's own Edit: worker thread + timer callbacks pumped like Blender's event loop.
timers = []
runner = addon.properties.RUNNER
runner.background, runner.register_timer = False, timers.append
settings = bpy.context.scene.text_edit
settings.grid, settings.texture_size, settings.seed = 128, "1024", 3
operators = importlib.import_module(root + ".addon.operators")
started = time.perf_counter()
operators.start_edit(bpy.context, work.HeadSpec(3), [{"module": "blue_eyes", "strength": 0.9}], "benchmark edit")
longest, late, woke, asked = 0.0, 0.0, None, 0.0
while True:
    now = time.perf_counter()
    if woke is not None:
        late = max(late, 1000 * (now - woke - asked))
    again = timers[-1]()
    longest = max(longest, 1000 * (time.perf_counter() - now))
    if again is None:
        break
    asked = min(again, 0.01)
    woke = time.perf_counter()
    time.sleep(asked)
figures["addon_edit_s_128"] = round(time.perf_counter() - started, 3)
figures["main_thread_max_ms"] = round(longest, 2)
figures["tick_late_max_ms"] = round(late, 2)
figures["job_failed"] = runner.status.failed
print("INTERACTIVE_FIGURES " + json.dumps(figures), flush=True)
api.disconnect()
'''
)


def _apply_ms(repeats: int = 3) -> dict:
    """One edit applied and one 128^2 view rendered, with and without empty-space skipping."""
    import torch

    from bridge.field.occupancy import Occupancy, skipping_samples
    from bridge.lenerf.apply import EditStep, apply_edits
    from bridge.lenerf.edit_module import BUNDLED_LIBRARY, EditLibrary
    from bridge.prior.model import HeadPrior

    prior = HeadPrior.load(None)
    module = EditLibrary(BUNDLED_LIBRARY, generator_sha256=prior.sha256).load("blue_eyes")
    ws, _ = prior.head_ws(3)
    times: dict[str, list[float]] = {"apply_ms": [], "apply_ms_full": []}
    with torch.no_grad():
        for _ in range(repeats):
            for name in times:
                started = time.perf_counter()
                field, edited_ws = apply_edits(prior.generator, ws[None], [EditStep(module, 1.0)])
                config = None
                if name == "apply_ms":
                    field = Occupancy.probe(field, prior.render_config.box_size).skipping(field)
                    config = skipping_samples(prior.render_config)
                prior.view(field, edited_ws, 20.0, 128, ("rgb", "mask"), config)
                times[name].append(1000 * (time.perf_counter() - started))
    return {name: round(statistics.median(values), 1) for name, values in times.items()}


def run(quick: bool = False) -> dict:
    figures = _apply_ms(1 if quick else 3)
    measured = in_blender(SCRIPT, MARK, "interactive", lambda folder, url: [url, "quick" if quick else "full"])
    return {**measured, **figures}

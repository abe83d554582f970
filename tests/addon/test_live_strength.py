"""The live strength slider (addon/live.py) with a real bridge: the drag's changes re-edit the
head on the coarse grid without undo steps (a change arriving while one runs is coalesced), and
letting go gives the full edit as exactly one undo step."""

from tests.addon.conftest import bridge_env

SLIDER = r"""
url = sys.argv[-1]
prefs.bridge_url = url
bpy.ops.wm.read_homefile(use_empty=True)
settings = bpy.context.scene.text_edit
settings.grid, settings.texture_size, settings.seed = 96, "512", 4
assert bpy.ops.text_edit.connect() == {"FINISHED"}
settings.source, settings.module = "LIBRARY", "blue_eyes"
assert bpy.ops.text_edit.edit() == {"FINISHED"}
operators = importlib.import_module("bl_ext.user_default.text_edit.addon.operators")
live = importlib.import_module("bl_ext.user_default.text_edit.addon.live")
pushes, grids = [], []
operators._undo_push = lambda message: pushes.append(message)
started = operators.start_edit

def recording(context, head, steps, label, grid=None, **options):
    grids.append(grid or context.scene.text_edit.grid)
    return started(context, head, steps, label, grid=grid, **options)

operators.start_edit = recording
head = bpy.context.view_layer.objects.active
full_vertices = len(head.data.vertices)
for value in (0.3, 0.55, 0.8):
    bpy.context.window_manager.text_edit_live_strength = value   # the slider's update callback
head = bpy.context.view_layer.objects.active
dragging = {"pushes": list(pushes), "vertices": len(head.data.vertices), "stack": json.loads(head["text_edit_stack"])}
live.LIVE.release(bpy.context)
head = bpy.context.view_layer.objects.active
result({"dragging": dragging, "full_vertices": full_vertices, "pushes": pushes, "grids": grids,
        "released": {"vertices": len(head.data.vertices), "stack": json.loads(head["text_edit_stack"]),
                     "preview": head["text_edit_preview"]}})
"""


def test_dragging_is_coarse_without_undo_and_letting_go_is_one_full_undo_step(blender, live_bridge):
    done, report = blender.run(SLIDER, live_bridge.url, env=bridge_env(live_bridge))
    assert done.returncode == 0 and report, done.stdout[-3000:] + done.stderr[-3000:]
    dragging = report["dragging"]
    assert dragging["pushes"] == [], "moving the slider adds no undo steps"
    assert dragging["stack"] == [{"module": "blue_eyes", "strength": 0.8}], "the head follows the slider"
    assert dragging["vertices"] < 0.7 * report["full_vertices"], "while dragging the mesh comes from the coarse grid"
    assert report["grids"] == [64, 64, 64, 96], "each change re-edits coarsely, the release at the panel's grid"
    assert report["pushes"] == ["Text Edit: Strength 0.8 on seed 4"], "one undo step per release"
    released = report["released"]
    assert released["stack"] == [{"module": "blue_eyes", "strength": 0.8}] and released["preview"]
    assert abs(released["vertices"] - report["full_vertices"]) < 0.2 * report["full_vertices"]

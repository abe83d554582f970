"""The artist's path through the operators, in the bpy module with a real bridge: connect, new head,
edit with a shipped module, re-run (updates in place), stack, remove, show the mask, export glTF and
read it back."""

from tests.addon.conftest import bridge_env

WORKFLOW = r"""
import numpy as np
url, out = sys.argv[-2], sys.argv[-1]
bpy.ops.wm.read_homefile(use_empty=True)
prefs.bridge_url = url
settings = bpy.context.scene.text_edit
settings.grid, settings.texture_size, settings.seed = 64, "512", 5
report = {}
assert bpy.ops.text_edit.connect() == {"FINISHED"}
report["modules"] = [m["name"] for m in text_edit.properties.BRIDGE.modules]
assert bpy.ops.text_edit.new_head() == {"FINISHED"}
head = bpy.context.view_layer.objects.active
report["unedited"] = {"name": head.name, "stack": json.loads(head["text_edit_stack"])}
settings.source, settings.module = "LIBRARY", "blue_eyes"
assert bpy.ops.text_edit.edit() == {"FINISHED"}
settings.strength = 0.5
assert bpy.ops.text_edit.edit() == {"FINISHED"}   # re-run: replaces the last edit of the same head
head = bpy.context.view_layer.objects.active
mesh = head.data
mask = np.zeros(len(mesh.vertices), np.float32)
mesh.attributes["text_edit_mask"].data.foreach_get("value", mask)
gltf_mask = np.zeros_like(mask)
mesh.attributes["_EDIT_MASK"].data.foreach_get("value", gltf_mask)
group = head.vertex_groups["text_edit_mask"]
weights = [g.weight for v in mesh.vertices for g in v.groups if g.group == group.index]
nodes = head.active_material.node_tree.nodes
image = next(n.image for n in nodes if n.type == "TEX_IMAGE")
report["edited"] = {
    "name": head.name, "heads": len(text_edit.importer.head_objects(bpy.context.scene)),
    "stack": json.loads(head["text_edit_stack"]), "collection": head.users_collection[0].name,
    "mask_max": float(mask.max()), "mask_mean": float(mask.mean()), "masks_equal": bool(np.array_equal(mask, gltf_mask)),
    "group_size": len(weights), "group_max": max(weights) if weights else 0.0,
    "colours": mesh.color_attributes.active_color.name, "uv": mesh.uv_layers.active.name,
    "image": list(image.size), "packed": image.packed_file is not None,
    "edits": head["text_edit_edits"], "bridge_version": head["text_edit_bridge_version"],
    "meshes": len(bpy.data.meshes), "images": len(bpy.data.images),
    "preview": list(bpy.data.images[head["text_edit_preview"]].size),
}
settings.module = "red_hair"
assert bpy.ops.text_edit.edit(on_top=True) == {"FINISHED"}
report["stacked"] = json.loads(bpy.context.view_layer.objects.active["text_edit_stack"])
assert bpy.ops.text_edit.remove_last() == {"FINISHED"}
head = bpy.context.view_layer.objects.active
report["removed"] = json.loads(head["text_edit_stack"])
bpy.ops.text_edit.show_mask()
report["mask_material"] = head.active_material.name
bpy.ops.text_edit.show_mask()
report["head_material"] = head.active_material.name
assert bpy.ops.text_edit.export_gltf(filepath=out) == {"FINISHED"}
bpy.ops.wm.read_homefile(use_empty=True)
bpy.ops.import_scene.gltf(filepath=out)
back = [o for o in bpy.context.scene.objects if o.type == "MESH"][0]
report["reimported"] = {
    "attributes": sorted(a.name for a in back.data.attributes),
    "extras": {k: back[k] for k in back.keys() if k.startswith("text_edit") and isinstance(back[k], (str, int, float))},
    "images": [list(i.size) for i in bpy.data.images if i.size[0] > 0],
    "colour_attributes": [c.name for c in back.data.color_attributes],
}
result(report)
"""


def test_full_edit_through_the_operators_and_a_gltf_round_trip(blender, live_bridge, tmp_path):
    out = tmp_path / "head.glb"
    done, report = blender.run(WORKFLOW, live_bridge.url, str(out), env=bridge_env(live_bridge))
    assert done.returncode == 0 and report, done.stdout[-3000:] + done.stderr[-3000:]
    assert {"blue_eyes", "red_hair", "open_mouth"} <= set(report["modules"])
    assert report["unedited"]["stack"] == [] and report["unedited"]["name"] == "seed 5: unedited"

    edited = report["edited"]
    assert edited["heads"] == 1, "re-running an edit updates the head instead of adding a copy"
    assert edited["stack"] == [{"module": "blue_eyes", "strength": 0.5}]
    assert edited["name"] == "seed 5: blue_eyes" and edited["collection"] == "Text Edit"
    assert 0.5 < edited["mask_max"] <= 1.0 and edited["mask_mean"] < 0.2, "the eyes mask covers a small part"
    assert edited["masks_equal"] and edited["group_size"] > 0 and edited["group_max"] > 0.5
    assert edited["colours"] == "Col" and edited["uv"] == "UVMap"
    assert edited["image"] == [512, 512] and edited["packed"]
    assert "blue eyes" in edited["edits"] and "x0.5" in edited["edits"] and edited["bridge_version"]
    assert edited["meshes"] == 1 and edited["images"] <= 3, "old meshes and images are not left behind"
    width, height = edited["preview"]
    assert height >= 64 and width > 2.5 * height, "the bridge's before | after | mask picture is kept with the head"

    assert [s["module"] for s in report["stacked"]] == ["blue_eyes", "red_hair"]
    assert [s["module"] for s in report["removed"]] == ["blue_eyes"]
    assert report["mask_material"] == "Text Edit mask" and report["head_material"] == "Text Edit seed 5"

    back = report["reimported"]
    assert "_EDIT_MASK" in back["attributes"]
    assert back["extras"]["text_edit_head"] == "seed 5" and "blue eyes" in back["extras"]["text_edit_edits"]
    assert [512, 512] in back["images"], "the baked texture survives the glTF round trip"
    assert back["colour_attributes"], "vertex colours survive"


TRAIN = r"""
url = sys.argv[-1]
prefs.bridge_url = url
bpy.ops.wm.read_homefile(use_empty=True)
settings = bpy.context.scene.text_edit
settings.source, settings.edit_prompt, settings.mask_prompt = "PROMPTS", "green eyes", "eyes"
settings.training_steps, settings.texture_only, settings.grid, settings.texture_size = 2, True, 64, "512"
assert bpy.ops.text_edit.connect() == {"FINISHED"}
before = [m["name"] for m in text_edit.properties.BRIDGE.modules]
assert bpy.ops.text_edit.train() == {"FINISHED"}
after = [m["name"] for m in text_edit.properties.BRIDGE.modules]
assert bpy.ops.text_edit.edit() == {"FINISHED"}   # by prompts: the module just trained
head = bpy.context.view_layer.objects.active
result({"before": before, "after": after, "chosen": settings.module, "edits": head["text_edit_edits"],
        "message": text_edit.properties.RUNNER.status.message})
"""


def test_train_new_edit_then_edit_by_its_prompts(blender, live_bridge):
    done, report = blender.run(TRAIN, live_bridge.url, env=bridge_env(live_bridge))
    assert done.returncode == 0 and report, done.stdout[-3000:] + done.stderr[-3000:]
    new = set(report["after"]) - set(report["before"])
    assert len(new) == 1 and report["chosen"] in new, report
    assert "green eyes @ eyes" in report["edits"]


PROMPTS = r"""
url = sys.argv[-1]
prefs.bridge_url = url
bpy.ops.wm.read_homefile(use_empty=True)
settings = bpy.context.scene.text_edit
settings.grid, settings.texture_size, settings.seed = 64, "512", 4
assert bpy.ops.text_edit.connect() == {"FINISHED"}
settings.source, settings.edit_prompt, settings.mask_prompt = "PROMPTS", "purple hair", "hair"
assert bpy.ops.text_edit.edit() == {"FINISHED"}   # no module was trained for it: the open model
report = {"prompt_message": text_edit.properties.RUNNER.status.message}
settings.source, settings.instruction = "INSTRUCTION", "make the eyes green"
assert bpy.ops.text_edit.edit(on_top=True) == {"FINISHED"}
head = bpy.context.view_layer.objects.active
report.update({"stack": json.loads(head["text_edit_stack"]), "edits": head["text_edit_edits"],
               "heads": len(text_edit.importer.head_objects(bpy.context.scene)),
               "message": text_edit.properties.RUNNER.status.message})
result(report)
"""


def test_any_prompt_and_a_sentence_edit_at_once_through_the_operators(blender, live_bridge):
    done, report = blender.run(PROMPTS, live_bridge.url, env=bridge_env(live_bridge))
    assert done.returncode == 0 and report, done.stdout[-3000:] + done.stderr[-3000:]
    assert "purple hair" in report["prompt_message"] and "CLIP" in report["prompt_message"]
    assert "not taught purple for the hair" in report["prompt_message"], "the panel says what the head CLIP does not know"
    first, second = report["stack"]
    assert (first["edit"], first["mask"]) == ("purple hair", "hair")
    assert (second["instruction"], second["edit"], second["mask"]) == ("make the eyes green", "green eyes", "eyes")
    assert report["heads"] == 1 and "green eyes" in report["edits"]


PICTURES_LATER = r"""
import time
url = sys.argv[-1]
bpy.ops.wm.read_homefile(use_empty=True)
prefs.bridge_url = url
settings = bpy.context.scene.text_edit
settings.grid, settings.texture_size, settings.seed = 48, "512", 4
assert bpy.ops.text_edit.connect() == {"FINISHED"}
operators = importlib.import_module("bl_ext.user_default.text_edit.addon.operators")
importer = text_edit.importer
work = importlib.import_module("bl_ext.user_default.text_edit.addon.work")
runner = text_edit.properties.RUNNER
timers = []
runner.background, runner.register_timer = False, timers.append  # pumped below as Blender's event loop would
operators.start_edit(bpy.context, work.HeadSpec(4), [{"module": "blue_eyes", "strength": 1.0}], "pictures later")
deadline = time.monotonic() + 300
while runner.busy and time.monotonic() < deadline:
    timers[-1]()
    time.sleep(0.01)
head = importer.find_head(bpy.context.scene, "seed 4")
report = {"imported": head is not None, "preview_at_import": head[importer.PREVIEW], "following_up": runner.following_up}
while timers[-1]() is not None and time.monotonic() < deadline:
    time.sleep(0.01)
report["preview"] = list(bpy.data.images[head[importer.PREVIEW]].size) if head[importer.PREVIEW] else None
report["message"] = runner.status.message
report["stale"] = importer.attach_pictures(bpy.context.scene, "seed 4", "another job", b"not used") is None
report["still"] = head[importer.PREVIEW]
# a prompt edit's pictures bring CLIP's sentence: it joins that edit's status, not a later task's
operators.start_edit(bpy.context, work.HeadSpec(4), [{"edit": "green eyes", "mask": "eyes", "strength": 1.0}], "by prompt")
while runner.busy and time.monotonic() < deadline:
    timers[-1]()
    time.sleep(0.01)
report["prompt_following_up"] = runner.following_up
runner.status = text_edit.tasks.Status(message="another task: done.")
while timers[-1]() is not None and time.monotonic() < deadline:
    time.sleep(0.01)
report["other_message"] = runner.status.message
report["prompt_preview"] = head[importer.PREVIEW]
# a live slider step (no pictures of its own) keeps waiting for the last full edit's pictures
full_job = head["text_edit_job"]
operators.start_edit(bpy.context, work.HeadSpec(4), [{"edit": "green eyes", "mask": "eyes", "strength": 0.5}], "live", previews=False, undo=False)
while runner.busy and time.monotonic() < deadline:
    timers[-1]()
    time.sleep(0.01)
report["live_strength"] = list(head["text_edit_strength"])
import struct, zlib
chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0" + b"\x80" * 6 + b"\0" + b"\x80" * 6)) + chunk(b"IEND", b"")
report["full_pictures_attach"] = importer.attach_pictures(bpy.context.scene, "seed 4", full_job, png) is not None
result(report)
"""


def test_a_head_is_imported_before_its_pictures_which_then_attach_to_it(blender, live_bridge):
    done, report = blender.run(PICTURES_LATER, live_bridge.url, env=bridge_env(live_bridge))
    assert done.returncode == 0 and report, done.stdout[-3000:] + done.stderr[-3000:]
    assert report["imported"] and report["preview_at_import"] == "" and report["following_up"]
    assert report["preview"] and report["preview"][1] == 64 and report["preview"][0] > 3 * 64
    assert "imported" in report["message"]
    assert report["stale"] and report["still"], "pictures of an older edit do not replace the head's"
    assert report["prompt_following_up"] and report["prompt_preview"], "the prompt edit's pictures came after its import, and attached"
    assert report["other_message"] == "another task: done.", "CLIP's sentence stays with its own edit"
    assert report["live_strength"] == [0.5] and report["full_pictures_attach"], "a slider step does not orphan the pictures on their way"

"""Heads from pictures in Blender: "Head from view" renders the selected head through the active
camera and makes a new head of it, which is then edited like any other; "Head from image" takes a
file; bad files get one sentence."""

from tests.addon.conftest import bridge_env

SCRIPT = r"""
url, folder = sys.argv[-2], sys.argv[-1]
camera = importlib.import_module('bl_ext.user_default.text_edit.addon.camera')
picture = importlib.import_module('bl_ext.user_default.text_edit.addon.picture')
bpy.ops.wm.read_homefile(use_empty=True)
prefs.bridge_url = url
scene = bpy.context.scene
settings = scene.text_edit
settings.grid, settings.texture_size, settings.seed, settings.refine_steps = 64, "512", 5, 2
report = {"render_before": [scene.render.resolution_x, scene.render.resolution_y]}
assert bpy.ops.text_edit.new_head() == {"FINISHED"}
source = bpy.context.view_layer.objects.active
camera.eg3d_camera(scene, yaw_deg=20.0, pitch_deg=5.0)
report["eg3d_view"] = picture.view_of_head(scene, scene.camera, source, 384)
scene.camera.location *= 1.6  # further away: the head is smaller in the picture
report["far_view"] = picture.view_of_head(scene, scene.camera, source, 384)
source.location.x += 0.05  # the head moved: the crop follows it
report["moved_view"] = picture.view_of_head(scene, scene.camera, source, 384)
source.location.x -= 0.05
camera.eg3d_camera(scene, yaw_deg=0.0, pitch_deg=0.0)
camera._lights(scene)
scene.render.engine = "CYCLES"
scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 4, False
assert bpy.ops.text_edit.head_from_view() == {"FINISHED"}, text_edit.properties.RUNNER.status.message
head = bpy.context.view_layer.objects.active
report["from_view"] = {
    "name": head.name, "key": head["text_edit_head"], "has_latent": "text_edit_latent" in head,
    "heads": len(text_edit.importer.head_objects(scene)), "render_after": [scene.render.resolution_x, scene.render.resolution_y],
}
settings.source, settings.edit_prompt, settings.mask_prompt = "PROMPTS", "blue eyes", "eyes"
assert bpy.ops.text_edit.edit() == {"FINISHED"}, text_edit.properties.RUNNER.status.message
edited = bpy.context.view_layer.objects.active
report["edited"] = {"name": edited.name, "key": edited["text_edit_head"], "stack": json.loads(edited["text_edit_stack"])}
assert bpy.ops.text_edit.head_from_image(filepath=folder + "/astronaut.png") == {"FINISHED"}, text_edit.properties.RUNNER.status.message
photo = bpy.context.view_layer.objects.active
report["from_image"] = {"key": photo["text_edit_head"], "heads": len(text_edit.importer.head_objects(scene))}
empty = folder + "/empty.png"
open(empty, "wb").close()
try:
    bpy.ops.text_edit.head_from_image(filepath=empty)
    report["empty_message"] = None
except RuntimeError as error:  # an operator that reports an error raises it under -b
    report["empty_message"] = str(error)
report["heads_after_empty"] = len(text_edit.importer.head_objects(scene))
result(report)
"""


def test_head_from_view_then_an_edit_of_it(blender, live_bridge, tmp_path):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).resize((1024, 1024)).save(tmp_path / "astronaut.png")  # 1.3 MB: Blender scales it to send
    done, report = blender.run(SCRIPT, live_bridge.url, str(tmp_path), env=bridge_env(live_bridge))
    assert done.returncode == 0 and report, done.stdout[-3000:] + done.stderr[-3000:]
    (left, top, side), yaw, pitch = report["eg3d_view"]
    assert abs(yaw - 20) < 0.5 and abs(pitch - 5) < 0.5
    assert abs(side - 384) <= 2 and abs(left) <= 2 and abs(top) <= 2, "EG3D's own camera frames the head as the encoder saw it"
    (far_left, far_top, far_side), far_yaw, _ = report["far_view"]
    assert 0.5 * 384 < far_side < 0.75 * 384 and abs(far_yaw - 20) < 0.5, "the crop shrinks as the camera moves away"
    assert report["moved_view"][0][0] > far_left + 5, "a head moved toward +x (the image's right) is cropped further right"
    view = report["from_view"]
    assert view["key"].startswith("picture ") and view["has_latent"] and view["heads"] == 2
    assert view["render_after"] == report["render_before"], "the scene's render size is put back"
    assert report["edited"]["key"] == view["key"], "the edit applies to the head made from the view"
    assert report["edited"]["stack"] == [{"edit": "blue eyes", "mask": "eyes", "strength": 1.0}]
    photo = report["from_image"]
    assert photo["key"].startswith("picture ") and photo["key"] != view["key"] and photo["heads"] == 3
    assert report["empty_message"] and "empty (0 bytes)" in report["empty_message"] and report["heads_after_empty"] == 3


TURN_SCRIPT = r"""
import base64
picture = importlib.import_module('bl_ext.user_default.text_edit.addon.picture')
report = {}
for path in sys.argv[-1].split(","):
    data = open(path, "rb").read()
    report[path] = {"orientation": picture.exif_orientation(data), "sent": base64.b64encode(picture.read_picture(path)).decode()}
result(report)
"""


def test_a_large_photo_reaches_the_bridge_upright_whatever_its_exif_orientation(blender, tmp_path):
    """Blender ignores EXIF orientation; a phone photo too large to send as it is (> 700 kB) is
    scaled by Blender, so the add-on turns it as its EXIF block says (a portrait went on its side)."""
    import base64
    import io

    import numpy as np
    from PIL import Image, ImageOps
    from skimage import data

    rng = np.random.default_rng(0)
    upright = Image.fromarray(
        np.clip(data.astronaut()[:, 64:448].repeat(2, 0).repeat(2, 1) + rng.integers(0, 90, (1024, 768, 3)), 0, 255).astype(np.uint8)
    )
    paths = []
    for orientation in (1, 3, 6, 8, 5):
        exif = Image.Exif()
        exif[0x0112] = orientation
        inverse = {
            1: None,
            3: Image.Transpose.ROTATE_180,
            6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270,
            5: Image.Transpose.TRANSPOSE,
        }
        stored = upright.transpose(inverse[orientation]) if inverse[orientation] is not None else upright
        path = tmp_path / f"photo_{orientation}.jpg"
        stored.save(path, "JPEG", quality=98, exif=exif.tobytes())
        assert path.stat().st_size > 700_000
        assert ImageOps.exif_transpose(Image.open(path)).size == upright.size, "the file is what a phone writes"
        paths.append(str(path))
    done, report = blender.run(TURN_SCRIPT, ",".join(paths))
    assert done.returncode == 0 and report, done.stdout[-3000:] + done.stderr[-3000:]
    expected = np.asarray(upright.resize((384, 512)), dtype=np.float32)
    for path, orientation in zip(paths, (1, 3, 6, 8, 5)):
        assert report[path]["orientation"] == orientation
        sent = Image.open(io.BytesIO(base64.b64decode(report[path]["sent"]))).convert("RGB")
        assert sent.size == (384, 512), (orientation, sent.size)
        assert np.abs(np.asarray(sent, dtype=np.float32) - expected).mean() < 12, orientation

"""The bridge serving an imported EG3D generator instead of the bundled prior: heads by seed, an
edit job with a module made for that generator, and the FieldGrid it returns."""

import io

from PIL import Image

import mesh_export
from bridge.eg3d.convert import import_checkpoint
from bridge.eg3d.heads import SURFACE_LEVEL, EG3DHeads
from bridge.eg3d.synthetic import TINY, random_generator, write_checkpoint
from bridge.lenerf.edit_module import EditModule, EditSpec
from tests.service.conftest import BridgeProcess


def test_bridge_edits_heads_of_an_imported_generator(tmp_path):
    weights = import_checkpoint(write_checkpoint(random_generator(TINY), tmp_path / "eg3d.pkl"), tmp_path / "imported")
    heads = EG3DHeads.load(weights)
    bridge = BridgeProcess(tmp_path / "bridge")
    EditModule.untrained(EditSpec("green eyes", "eyes"), heads.generator, heads.sha256).save(bridge.cache / "modules" / "identity")
    bridge.generator = weights
    with bridge:
        status, info = bridge.call("GET", "/v1/info")
        assert status == 200 and info["generator"]["name"] == "EG3D eg3d.pkl" and info["generator"]["sha256"] == heads.sha256
        status, modules = bridge.call("GET", "/v1/modules")
        usable = {m["name"] for m in modules["modules"] if m["usable"]}
        assert usable == {"identity"}, "the prior's shipped edits do not apply to another generator"

        status, head = bridge.call("POST", "/v1/heads", {"seed": 3})
        assert status == 201 and head["source"] == "eg3d" and head["seed"] == 3
        status, refused = bridge.call("POST", "/v1/heads", {"seed": 3, "params": {"eye_colour": "blue"}})
        assert status == 400 and "no prior parameters" in refused["detail"]

        status, job = bridge.call("POST", "/v1/jobs/edit", {"head": head["id"], "steps": [{"module": "identity"}], "grid": 64})
        assert status == 202, job
        job = bridge.wait(job["id"])
        assert job["state"] == "done", job
        status, data = bridge.call("GET", f"/v1/jobs/{job['id']}/results/field.npz")
        grid = mesh_export.read_bytes(data)
        assert grid.resolution == 64 and grid.level == SURFACE_LEVEL and grid.edit_steps == 1
        assert grid.provenance["generator"] == "EG3D eg3d.pkl"
        assert grid.provenance["camera"] == {
            "radius": TINY.render.camera_radius,
            "pivot": list(TINY.render.camera_pivot),
            "focal": TINY.render.focal,
        }
        status, png = bridge.call("GET", f"/v1/jobs/{job['id']}/results/preview.png")
        with Image.open(io.BytesIO(png)) as preview:
            assert preview.size == (3 * 128 + 2 * 2, 128), "before | after | mask at the super-resolved size"

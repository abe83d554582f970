"""The .glb writer: what Blender and other viewers need, checked by re-reading it (and by the
Khronos glTF validator when node and the `gltf-validator` npm package are found on NODE_PATH)."""

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from mesh_export import ExportOptions, grid_to_mesh, write_glb
from mesh_export.coords import METRES_PER_FIELD_UNIT
from mesh_export.gltf import MASK_ATTRIBUTE_PREFIX, PROVENANCE_KEY, glb_bytes, read_glb_arrays
from tests.mesh_export.fields import make_grid, sphere_sdf

PROVENANCE = {"edit_prompt": "blue eyes", "mask_prompt": "eyes", "seed": 3, "bridge_version": "0.1.0"}
VALIDATE_JS = """
const validator = require('gltf-validator');
const data = new Uint8Array(require('fs').readFileSync(process.argv[1]));
validator.validateBytes(data).then((r) => console.log(JSON.stringify(r.issues)))
  .catch((e) => { console.error(String(e)); process.exit(3); });
"""


@pytest.fixture(scope="module")
def mesh():
    masks = (lambda p: (p[:, 1] > 0.1).astype(float), lambda p: (p[:, 0] > 0).astype(float))
    grid = make_grid(48, sphere_sdf(0.3), masks=masks, provenance=PROVENANCE)
    return grid_to_mesh(grid, ExportOptions(texture_size=128))


def _gltf_json(data: bytes) -> dict:
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    chunk_length, chunk_type = struct.unpack_from("<I4s", data, 12)
    assert chunk_type == b"JSON"
    return json.loads(data[20 : 20 + chunk_length])


def test_glb_rereads_with_the_same_counts_and_values(mesh, tmp_path):
    path = write_glb(mesh, tmp_path / "head.glb")
    arrays = read_glb_arrays(path.read_bytes())
    assert arrays["positions"].shape == mesh.vertices.shape and arrays["faces"].shape == mesh.faces.shape
    np.testing.assert_array_equal(arrays["faces"], mesh.faces)
    np.testing.assert_allclose(arrays["positions"], mesh.vertices * METRES_PER_FIELD_UNIT, atol=1e-6)
    np.testing.assert_allclose(arrays["uvs"], mesh.uvs, atol=1e-6)
    for step in range(2):
        np.testing.assert_allclose(arrays[f"{MASK_ATTRIBUTE_PREFIX}{step}"].reshape(-1), mesh.masks[:, step])


def test_glb_structure_material_texture_and_extras(mesh):
    tree = _gltf_json(glb_bytes(mesh))
    (primitive,) = tree["meshes"][0]["primitives"]
    attributes = set(primitive["attributes"])
    assert attributes == {"POSITION", "NORMAL", "TEXCOORD_0", "_MASK_0", "_MASK_1"}  # COLOR_0 would multiply the texture
    assert all(name.startswith("_") for name in attributes if name not in {"POSITION", "NORMAL", "TEXCOORD_0"})
    assert tree["accessors"][primitive["attributes"]["POSITION"]]["count"] == len(mesh.vertices)
    assert tree["accessors"][primitive["indices"]]["count"] == 3 * len(mesh.faces)
    material = tree["materials"][primitive["material"]]["pbrMetallicRoughness"]
    texture = tree["textures"][material["baseColorTexture"]["index"]]
    assert tree["images"][texture["source"]]["mimeType"] == "image/png"
    node = next(n for n in tree["nodes"] if "mesh" in n)
    assert node["extras"][PROVENANCE_KEY]["edit_prompt"] == "blue eyes"
    assert node["extras"][PROVENANCE_KEY]["mesh_export"]["triangles"] == len(mesh.faces)


def test_vertex_colours_are_color_0_without_a_texture():
    plain = grid_to_mesh(make_grid(32, sphere_sdf(0.3)), ExportOptions(texture_size=0))
    tree = _gltf_json(glb_bytes(plain))
    attributes = tree["meshes"][0]["primitives"][0]["attributes"]
    assert "COLOR_0" in attributes and "TEXCOORD_0" not in attributes and "images" not in tree
    material = tree["materials"][tree["meshes"][0]["primitives"][0]["material"]]["pbrMetallicRoughness"]
    assert material["metallicFactor"] == 0.0 and material["baseColorFactor"] == [1.0, 1.0, 1.0, 1.0]


IMPORT_IN_BLENDER = """
import sys, json, bpy
bpy.ops.wm.read_homefile(use_empty=True)
bpy.ops.import_scene.gltf(filepath=sys.argv[1])
(head,) = [o for o in bpy.context.scene.objects if o.type == "MESH"]
masks = {}
for name in ("_MASK_0", "_MASK_1"):
    values = [0.0] * len(head.data.vertices)
    head.data.attributes[name].data.foreach_get("value", values)
    masks[name] = values
print("MASKS " + json.dumps({"count": len(head.data.vertices), "masks": masks}))
"""


def test_blender_imports_the_textured_glb_whatever_its_hash_seed(mesh, tmp_path):
    """Blender 4.5's glTF importer pairs custom attributes with their data in a set's order, which
    changes with PYTHONHASHSEED: a file that mixes attribute widths imported only for some seeds."""
    path = write_glb(mesh, tmp_path / "head.glb")
    script = tmp_path / "import.py"
    script.write_text(IMPORT_IN_BLENDER)
    for seed in ("1", "2", "5"):
        done = subprocess.run(
            [sys.executable, str(script), str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("MASKS ")]
        assert done.returncode == 0 and lines, f"hash seed {seed}: " + done.stderr[-2000:]
        read = json.loads(lines[-1][len("MASKS ") :])
        assert read["count"] > 0
        for step in range(2):
            values = sorted(read["masks"][f"_MASK_{step}"])
            np.testing.assert_allclose(values, sorted(mesh.masks[:, step]), atol=1e-6)


def _validator_available() -> bool:
    if shutil.which("node") is None or not os.environ.get("NODE_PATH"):
        return False
    probe = subprocess.run(["node", "-e", "require.resolve('gltf-validator')"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _validator_available(), reason="node with gltf-validator on NODE_PATH not found")
def test_khronos_validator_finds_no_errors_or_warnings(mesh, tmp_path):
    path = write_glb(mesh, tmp_path / "head.glb")
    result = subprocess.run(["node", "-e", VALIDATE_JS, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    issues = json.loads(result.stdout)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]

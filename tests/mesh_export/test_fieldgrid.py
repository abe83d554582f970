"""FieldGrid: one writer, one reader, one validator; every bad file gives one clear sentence."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

import mesh_export
from mesh_export import FieldGrid, FieldGridError, fieldgrid
from tests.mesh_export.fields import make_grid, sphere_sdf

R = 16


@pytest.fixture(scope="module")
def grid() -> FieldGrid:
    masks = (lambda p: (p[:, 0] > 0).astype(float), lambda p: np.clip(p[:, 1] + 0.5, 0, 1))
    return make_grid(R, sphere_sdf(0.3), masks=masks, rgb_dtype=np.uint8, provenance={"prompt": "blue eyes", "seed": 7})


def _members(grid: FieldGrid) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(mesh_export.to_bytes(grid)), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _npz(members: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def _refused(data: bytes, match: str) -> str:
    with pytest.raises(FieldGridError, match=match) as caught:
        mesh_export.read_bytes(data)
    message = str(caught.value)
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0
    return message


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_keeps_every_member(grid, tmp_path, compress):
    path = mesh_export.write(grid, tmp_path / "field.npz", compress=compress)
    back = mesh_export.read(path)
    assert back.resolution == R and back.edit_steps == 2
    np.testing.assert_array_equal(back.density, grid.density)
    np.testing.assert_array_equal(back.rgb, grid.rgb)
    np.testing.assert_array_equal(back.masks, grid.masks)
    assert back.level == grid.level and back.box_size == grid.box_size
    np.testing.assert_array_equal(back.box_centre, grid.box_centre)
    assert back.provenance == {"prompt": "blue eyes", "seed": 7}
    assert mesh_export.read_bytes(mesh_export.to_bytes(back)).provenance == back.provenance


def test_members_are_plain_arrays_named_in_the_format(grid):
    members = _members(grid)
    assert set(members) == set(fieldgrid.REQUIRED_MEMBERS)
    assert str(members["format"]) == mesh_export.FORMAT_NAME and int(members["version"]) == mesh_export.FORMAT_VERSION
    assert json.loads(str(members["provenance"]))["seed"] == 7
    assert all(array.dtype != object for array in members.values())


def test_samples_are_voxel_centres_indexed_x_y_z():
    points = mesh_export.grid_points(R, box_size=2.0, box_centre=(1.0, 0.0, 0.0)).reshape(R, R, R, 3)
    step = 2.0 / R
    np.testing.assert_allclose(points[0, 0, 0], [0.0 + step / 2, -1.0 + step / 2, -1.0 + step / 2])
    np.testing.assert_allclose(points[R - 1, 0, 0, 0], 2.0 - step / 2)
    assert points[3, 5, 7, 0] == points[3, 0, 0, 0] and points[3, 5, 7, 1] == points[0, 5, 0, 1]
    assert points[3, 5, 7, 2] == points[0, 0, 7, 2]


def test_from_arrays_converts_and_clips():
    density = np.zeros((R, R, R))
    rgb = np.full((R, R, R, 3), 1.002)
    built = FieldGrid.from_arrays(density, rgb, masks=np.full((R, R, R), 0.5), level=10.0)
    assert built.density.dtype == np.float32 and built.rgb.dtype == np.uint8 and built.rgb.max() == 255
    assert built.masks.shape == (1, R, R, R) and built.masks.dtype == np.float16


def test_wrong_version_says_which_side_to_update(grid):
    members = _members(grid)
    members["version"] = np.array(2, dtype=np.int32)
    assert "update the add-on" in _refused(_npz(members), "format version 2")
    members["version"] = np.array(0, dtype=np.int32)
    assert "update the bridge" in _refused(_npz(members), "format version 0")


def test_other_format_name_is_refused(grid):
    members = _members(grid)
    members["format"] = np.array("something-else")
    _refused(_npz(members), "is not a text-edit-fieldgrid file")


@pytest.mark.parametrize("name", ["density", "rgb", "masks"])
def test_nan_values_are_refused(grid, name):
    members = _members(grid)
    bad = members[name].astype(np.float32)
    bad.reshape(-1)[5] = np.nan
    members[name] = bad
    _refused(_npz(members), "NaN")


def test_colour_outside_unit_range_is_refused(grid):
    members = _members(grid)
    members["rgb"] = members["rgb"].astype(np.float16) / 255 * 1.5
    _refused(_npz(members), "outside")


def test_shapes_dtypes_box_and_level_are_checked(grid):
    cases = {
        "density": (np.zeros((R, R, R + 1), np.float32), "not a cube"),
        "rgb": (np.zeros((R, R, R, 4), np.uint8), "rgb has shape"),
        "masks": (np.zeros((R, R, R), np.float16), "masks have shape"),
        "box_size": (np.array(-1.0), "box size"),
        "level": (np.array(np.inf), "level"),
        "box_centre": (np.zeros(2), "box centre"),
    }
    for name, (value, match) in cases.items():
        members = _members(grid)
        members[name] = value
        _refused(_npz(members), match)
    members = _members(grid)
    members["density"] = members["density"].astype(np.float64)
    _refused(_npz(members), "dtype float64")


def test_missing_and_unknown_members_are_refused(grid):
    members = _members(grid)
    del members["level"]
    _refused(_npz(members), "lacks the member")
    members = _members(grid)
    members["extra"] = np.zeros(3)
    _refused(_npz(members), "unknown member")


def test_truncated_or_corrupt_files_give_one_error(grid, tmp_path):
    data = mesh_export.to_bytes(grid)
    _refused(data[: len(data) // 2], "damaged or truncated")
    _refused(data[:-10], "damaged or truncated")
    _refused(b"not a zip at all", "damaged or truncated")
    flipped = bytearray(data)
    start = data.index(b"density.npy") + 200
    flipped[start : start + 64] = bytes(64)
    _refused(bytes(flipped), "damaged or truncated")
    with pytest.raises(FieldGridError, match="does not exist"):
        mesh_export.read(tmp_path / "missing.npz")


class _Touch:
    """Unpickling this would create a file: proof that nothing is ever unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_objects_are_refused_and_never_run(grid, tmp_path):
    marker = tmp_path / "unpickled"
    members = _members(grid)
    members["provenance"] = np.array([_Touch(marker)], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    _refused(buffer.getvalue(), "Python objects")
    assert not marker.exists()


def test_size_limits(grid, monkeypatch):
    with pytest.raises(FieldGridError, match="resolution 8 is outside"):
        FieldGrid.from_arrays(np.zeros((8, 8, 8)), np.zeros((8, 8, 8, 3)))
    with pytest.raises(FieldGridError, match="edit steps"):
        FieldGrid.from_arrays(np.zeros((R, R, R)), np.zeros((R, R, R, 3)), masks=np.zeros((17, R, R, R)))
    data = mesh_export.to_bytes(grid)
    monkeypatch.setattr(fieldgrid, "MAX_ARRAY_BYTES", 10_000)
    _refused(data, "KiB of arrays")
    monkeypatch.setattr(fieldgrid, "MAX_FILE_BYTES", 1_000)
    _refused(data, "larger than")


def test_a_write_that_fails_leaves_nothing_behind_and_says_so_cleanly(grid, tmp_path, monkeypatch):
    """A full disk: np.savez left its archive to the garbage collector ("Exception ignored ... seek
    of closed file" at exit) and a half-written .npz where the grid was to be."""
    import errno
    import subprocess
    import sys

    real = np.lib.format.write_array

    def fill_up(stream, array, **kw):
        if array.dtype == np.uint8:  # the rgb member, half way through the archive
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(stream, array, **kw)

    monkeypatch.setattr(np.lib.format, "write_array", fill_up)
    with pytest.raises(OSError, match="No space"):
        mesh_export.write(grid, tmp_path / "grid.npz")
    assert list(tmp_path.iterdir()) == [], "neither the grid nor a partial file"
    monkeypatch.undo()
    mesh_export.write(grid, tmp_path / "grid.npz")
    assert mesh_export.read(tmp_path / "grid.npz").density.shape == grid.density.shape
    if Path("/dev/full").exists():  # a device is written through (never replaced), and says it is full
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "grid", "--seed", "1", "--res", "16", "--out", "/dev/full"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (
            done.returncode == 2
            and done.stderr.strip() == "error: the disk is full (writing the output); free some space and run it again."
        )
        assert Path("/dev/full").is_char_device()

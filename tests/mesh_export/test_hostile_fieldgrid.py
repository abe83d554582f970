"""Hostile FieldGrid files: each gives one FieldGridError sentence (exit 2 from the CLI), sizes are
checked before anything is allocated, and nothing the reader accepts can put NaN into a .glb."""

import json
import struct
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mesh_export
from benchmarks.hostile_fieldgrid import (
    R,
    archive,
    hostile_fieldgrid_files,
    npy,
    npy_raw,
    valid_grid,
    valid_members,
)
from bridge import cli
from mesh_export import FieldGrid, FieldGridError, fieldgrid
from mesh_export.gltf import GltfError, glb_bytes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    return dict(hostile_fieldgrid_files(tmp_path_factory.mktemp("hostile")))


def _with(**members: bytes) -> bytes:
    return archive({**valid_members(), **members})


def _one_sentence(message: str) -> str:
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0, message
    return message


def _refused(data: bytes, match: str) -> str:
    with pytest.raises(FieldGridError, match=match) as caught:
        mesh_export.read_bytes(data)
    return _one_sentence(str(caught.value))


def _peak_bytes(data: bytes) -> int:
    """Peak memory numpy and Python allocate while the reader refuses `data`."""
    tracemalloc.start()
    try:
        with pytest.raises(FieldGridError):
            mesh_export.read_bytes(data)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_generator_makes_many_distinct_cases_around_a_valid_grid(hostile):
    assert len(hostile) >= 35
    grid = mesh_export.read_bytes(archive(valid_members()))
    assert grid.resolution == R and grid.edit_steps == 1


def test_every_hostile_file_gives_one_sentence(hostile):
    for name, path in hostile.items():
        try:
            mesh_export.read(path)
        except FieldGridError as error:
            _one_sentence(str(error))
        else:
            pytest.fail(f"{name} was accepted")


# ---------------------------------------------------------------- sizes, before any allocation


def test_a_header_declaring_2048_cubed_over_a_small_member_is_refused_before_allocating():
    data = _with(density=npy_raw("<f4", (2048,) * 3, valid_grid().density.tobytes()))
    assert _peak_bytes(data) < 8 * 2**20
    _refused(data, "declares 32 GiB of data but holds 16 KiB")


def test_a_deflate_bomb_is_refused_before_it_is_inflated(hostile):
    data = hostile["deflate_bomb_256_cubed"].read_bytes()
    assert len(data) < 2**20
    assert _peak_bytes(data) < 16 * 2**20  # the density alone would be 64 MiB
    _refused(data, "rgb has shape")


def test_a_zip_directory_declaring_more_than_the_cap_is_refused(hostile):
    _refused(hostile["directory_declares_4_gib"].read_bytes(), "GiB of arrays")


@pytest.mark.parametrize("shape, match", [((-16, 16, 16), "negative dimension"), ((8, 8, 8), "declares 2 KiB")])
def test_headers_with_negative_or_wrong_shapes_are_refused(shape, match):
    _refused(_with(density=npy_raw("<f4", shape, valid_grid().density.tobytes())), match)


def test_headers_that_are_not_npy_headers_are_refused(hostile):
    names = ("header_longer_than_64_kib", "header_deep_nesting", "header_unary_chain", "fortran_order_not_bool", "npy_version_9")
    for name in names:
        _refused(hostile[name].read_bytes(), "damaged npy header")


def test_memory_errors_become_one_sentence(monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(fieldgrid.np, "empty", no_memory)
    _refused(archive(valid_members()), "does not fit in the memory")


# ---------------------------------------------------------------- members that are not plain arrays


@pytest.mark.parametrize("name", ["format", "version", "box_centre", "density"])
def test_members_that_are_not_npy_data_are_refused(name):
    _refused(_with(**{name: b"text-edit-fieldgrid"}), f"member '{name}' is not npy array data")


def test_object_dtypes_are_refused_without_unpickling(hostile):
    _refused(hostile["object_dtype_pickle"].read_bytes(), "Python objects")


def test_text_that_is_not_unicode_is_refused(hostile):
    _refused(hostile["provenance_invalid_code_point"].read_bytes(), "not valid text")


def test_a_fortran_order_grid_is_still_read():
    grid = valid_grid()
    back = mesh_export.read_bytes(_with(density=npy(np.asfortranarray(grid.density))))
    np.testing.assert_array_equal(back.density, grid.density)


# ---------------------------------------------------------------- provenance JSON


def test_deep_provenance_is_refused():
    _refused(_with(provenance=npy(np.array("[" * 30_000 + "]" * 30_000))), "nests deeper than 64 levels")
    _refused(_with(provenance=npy(np.array("[" * 100_000 + "]" * 100_000))), "longer than 65536 characters")
    with pytest.raises(FieldGridError, match="nests deeper"):
        FieldGrid.from_arrays(valid_grid().density, valid_grid().rgb, provenance={"a": _nested(70)})


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_huge_integers_in_provenance_are_refused():
    _refused(_with(provenance=npy(np.array('{"seed": ' + "9" * 5000 + "}"))), "more than 100 digits")
    with pytest.raises(FieldGridError, match="more than 100 digits"):
        FieldGrid.from_arrays(valid_grid().density, valid_grid().rgb, provenance={"seed": 10**200})


@pytest.mark.parametrize(
    "value, match", [("NaN", "NaN, which JSON"), ("-Infinity", "Infinity, which JSON"), ("1e999", "NaN or infinite numbers")]
)
def test_non_finite_provenance_numbers_are_refused(value, match):
    _refused(_with(provenance=npy(np.array('{"strength": ' + value + "}"))), match)


def test_no_grid_can_carry_nan_into_a_glb():
    with pytest.raises(FieldGridError, match="NaN or infinite"):
        FieldGrid.from_arrays(valid_grid().density, valid_grid().rgb, provenance={"strength": float("nan")})
    mesh = mesh_export.grid_to_mesh(valid_grid(), mesh_export.ExportOptions(texture_size=0))
    with pytest.raises(GltfError, match="NaN or infinite"):
        glb_bytes(replace(mesh, provenance={"strength": float("inf")}))
    with pytest.raises(GltfError, match="vertices hold NaN"):
        glb_bytes(replace(mesh, vertices=np.full_like(mesh.vertices, np.nan)))
    data = glb_bytes(mesh)
    (length,) = struct.unpack_from("<I", data, 12)
    json.loads(data[20 : 20 + length], parse_constant=lambda name: pytest.fail(f"{name} in the glTF JSON"))


# ---------------------------------------------------------------- the box


@pytest.mark.parametrize(
    "member, value, match",
    [
        ("box_centre", np.full(3, 1e308), "box sizes from the origin"),
        ("box_centre", np.array([0.0, np.inf, 0.0]), "three finite numbers"),
        ("box_size", np.array(1e-300), "box size 1e-300 is not in"),
        ("box_size", np.array(1e308), "box size"),
        ("level", np.array(1e300), "level"),
    ],
)
def test_boxes_that_would_give_nan_or_collapsed_vertices_are_refused(member, value, match):
    _refused(_with(**{member: npy(value)}), match)


def test_the_smallest_and_farthest_box_allowed_still_gives_distinct_finite_vertices():
    grid = valid_grid()
    size = fieldgrid.MIN_BOX_SIZE
    centre = np.full(3, fieldgrid.MAX_BOX_CENTRE_OFFSET * size)
    small = replace(grid, box_size=size, box_centre=centre)
    mesh = mesh_export.grid_to_mesh(small, mesh_export.ExportOptions(texture_size=0))
    assert np.isfinite(mesh.vertices).all() and len(np.unique(mesh.vertices, axis=0)) == len(mesh.vertices)


# ---------------------------------------------------------------- the command line


def _export_in_process(path: Path, tmp_path: Path, capsys) -> str:
    code = cli.main(["export", "--field", str(path), "--out", str(tmp_path / "x.glb")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_cli_export_gives_exit_2_and_one_sentence_for_every_hostile_file(hostile, tmp_path, capsys):
    for path in hostile.values():
        _export_in_process(path, tmp_path, capsys)
    assert not (tmp_path / "x.glb").exists()


def test_cli_export_as_a_process(hostile, tmp_path):
    for name, match in (("header_2048_cubed_over_small_member", "declares 32 GiB"), ("provenance_nan", "NaN")):
        result = subprocess.run(
            [sys.executable, "-m", "bridge", "export", "--field", str(hostile[name]), "--out", str(tmp_path / "x.glb")],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and match in result.stderr


# ---------------------------------------------------------------- fuzzing


def _interesting_offsets(data: bytes) -> list[int]:
    """Where zip and npy headers start: mutations there reach past the CRC check."""
    found = []
    for marker in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"\x93NUMPY"):
        start = data.find(marker)
        while start >= 0:
            found.append(start)
            start = data.find(marker, start + 1)
    return found


SHAPES = st.lists(st.sampled_from([0, 1, 3, 15, 16, 17, -1, 2**31, 2**62]) | st.integers(-5, 40), max_size=5).map(tuple)
DESCRS = st.sampled_from(
    ["<f4", "<f2", "<f8", ">f4", "|u1", "<i4", "<u8", "|b1", "<c8", "|O", "<U5", "<U0", "|S3", "|V4", "<M8[s]", "", "x"]
)
FORTRAN = st.booleans() | st.sampled_from(["yes", 0, None])


@st.composite
def hostile_bytes(draw) -> bytes:
    compress = draw(st.booleans())
    base = archive(valid_members(), compress=compress)
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "member", "header"]))
    if kind == "truncate":
        return base[: draw(st.integers(0, len(base)))]
    if kind in ("flip", "insert"):
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 4))):
            where = draw(st.sampled_from(_interesting_offsets(base)) | st.integers(0, len(base) - 1))
            where = min(where + draw(st.integers(0, 64)), len(data) - 1)
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[where : where + (len(chunk) if kind == "flip" else 0)] = chunk
        return bytes(data)
    members = valid_members()
    name = draw(st.sampled_from([*fieldgrid.REQUIRED_MEMBERS, "extra"]))
    if kind == "member":
        members[name] = draw(st.binary(max_size=256))
    else:
        descr, shape = draw(DESCRS), draw(SHAPES)
        header = draw(st.none() | st.text(st.characters(max_codepoint=255), max_size=80))
        try:
            itemsize = np.dtype(descr).itemsize
        except TypeError:
            itemsize = 4
        size = int(np.prod(shape, dtype=object)) * itemsize if all(n >= 0 for n in shape) else 0
        length = size if 0 <= size <= 2**16 and draw(st.booleans()) else draw(st.integers(0, 512))
        data = np.random.default_rng(draw(st.integers(0, 2**32))).bytes(length)
        members[name] = npy_raw(descr, shape, data, draw(FORTRAN), draw(st.sampled_from([(1, 0), (2, 0)])), header)
    return archive(members, compress=compress)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_bytes())
def test_fuzzed_files_give_a_valid_grid_or_one_field_grid_error(data):
    try:
        grid = mesh_export.read_bytes(data)
    except FieldGridError as error:
        _one_sentence(str(error))
        return
    fieldgrid.validate(grid)
    json.dumps(grid.provenance, allow_nan=False)


@pytest.mark.parametrize("compress", [False, True])
def test_reading_member_by_member_agrees_with_numpy(tmp_path, compress):
    path = mesh_export.write(valid_grid(), tmp_path / "grid.npz", compress=compress)
    grid = mesh_export.read(path)
    with np.load(path, allow_pickle=False) as loaded:
        for name in ("density", "rgb", "masks", "box_centre"):
            np.testing.assert_array_equal(getattr(grid, name), loaded[name])
            assert getattr(grid, name).flags.writeable


def test_a_folder_or_a_fifo_given_as_the_grid_says_what_it_is(tmp_path):
    import os

    from mesh_export import FieldGridError, read

    with pytest.raises(FieldGridError, match="is a folder"):
        read(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FieldGridError, match="is not a regular file"):
        read(fifo)

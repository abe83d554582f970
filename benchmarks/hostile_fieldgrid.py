"""Hostile FieldGrid files, built by hand (zipfile + hand-written npy headers), for the reader's tests
and benchmarks.hostile: every file here must be refused with one FieldGridError sentence, never a
traceback, and without allocating more than a valid grid of its declared size would.

    for name, path in hostile_fieldgrid_files(folder):
        mesh_export.read(path)   # -> FieldGridError

`valid_members()` and `archive()` give the pieces to build more (the tests' fuzzing starts from them).
"""

from __future__ import annotations

import functools
import io
import pickle
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

import mesh_export

R = 16
NPY_MAGIC = b"\x93NUMPY"
LOCAL_HEADER = b"PK\x03\x04"
CENTRAL_HEADER = b"PK\x01\x02"


def npy(array: np.ndarray) -> bytes:
    """An array as numpy writes it (.npy bytes)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_raw(descr, shape, data: bytes = b"", fortran_order=False, version=(1, 0), header: str | None = None) -> bytes:
    """.npy bytes with a hand-written header (which may lie about `data`, or not be a header at all)."""
    text = header if header is not None else repr({"descr": descr, "fortran_order": fortran_order, "shape": shape})
    length_format = "<H" if version == (1, 0) else "<I"
    used = len(NPY_MAGIC) + 2 + struct.calcsize(length_format) + len(text) + 1
    text += " " * (-used % 64) + "\n"
    return NPY_MAGIC + bytes(version) + struct.pack(length_format, len(text)) + text.encode("latin1") + data


def valid_grid() -> mesh_export.FieldGrid:
    """A small valid grid: a ball of radius 0.3, one mask, a little provenance."""
    axis = (np.arange(R) + 0.5) / R - 0.5
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    inside = 0.3 - np.sqrt(x**2 + y**2 + z**2)
    rgb = np.stack([x, y, z], axis=-1) + 0.5
    return mesh_export.FieldGrid.from_arrays(
        50.0 * np.tanh(inside / 0.05), rgb, masks=(x > 0).astype(float), provenance={"prompt": "blue eyes", "seed": 7}
    )


@functools.cache
def _valid_bytes() -> bytes:
    return mesh_export.to_bytes(valid_grid())


def valid_members() -> dict[str, bytes]:
    """{member name: .npy bytes} of `valid_grid()`, as its writer stores them."""
    with zipfile.ZipFile(io.BytesIO(_valid_bytes())) as zipped:
        return {info.filename.removesuffix(".npy"): zipped.read(info) for info in zipped.infolist()}


def archive(members: dict[str, bytes] | list[tuple[str, bytes]], compress: bool = False) -> bytes:
    """A zip of `members` (name without .npy -> bytes; a list may repeat a name)."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    items = members.items() if isinstance(members, dict) else members
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", method) as zipped:
        warnings.simplefilter("ignore")  # "Duplicate name": wanted here
        for name, data in items:
            zipped.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def _with(**changes: bytes | None) -> bytes:
    """The valid archive with members replaced (bytes) or removed (None)."""
    members = valid_members()
    for name, data in changes.items():
        if data is None:
            del members[name]
        else:
            members[name] = data
    return archive(members)


def _patch(data: bytes, member: str, central_offset: int, local_offset: int, value: int, size: int) -> bytes:
    """Overwrite a field of `member`'s central-directory entry and local header (little-endian)."""
    patched = bytearray(data)
    name = f"{member}.npy".encode()
    central = data.index(CENTRAL_HEADER)
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.index(CENTRAL_HEADER, central + 4)
    local = int.from_bytes(data[central + 42 : central + 46], "little")
    patched[central + central_offset : central + central_offset + size] = value.to_bytes(size, "little")
    patched[local + local_offset : local + local_offset + size] = value.to_bytes(size, "little")
    return bytes(patched)


def _zeroed(data: bytes, after: bytes, skip: int, count: int) -> bytes:
    """`data` with `count` bytes zeroed, `skip` bytes after the first `after` (damaged, same length)."""
    start = data.index(after) + skip
    return data[:start] + bytes(count) + data[start + count :]


def _text(value: str) -> bytes:
    return npy(np.array(value))


def _number(value, dtype=np.float64) -> bytes:
    return npy(np.array(value, dtype=dtype))


def _density(values: np.ndarray) -> bytes:
    return npy(values.astype(np.float32))


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deflate_bomb() -> bytes:
    """A 256^3 float32 density of zeros (64 MiB) deflated to ~64 KiB, beside 16^3 rgb and masks."""
    buffer = io.BytesIO()
    members = valid_members()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in members.items():
            if name != "density":
                zipped.writestr(f"{name}.npy", data)
        with zipped.open("density.npy", "w") as stream:
            stream.write(npy_raw("<f4", (256, 256, 256)))
            chunk = bytes(2**22)
            for _ in range(16):
                stream.write(chunk)
    return buffer.getvalue()


def _cases() -> dict[str, Callable[[], bytes]]:
    valid = _valid_bytes
    density = valid_grid().density
    masks = valid_grid().masks
    small_density = density.tobytes()
    nan_density = density.copy()
    nan_density[3, 4, 5] = np.nan
    long_header = repr({"descr": "<f4", "fortran_order": False, "shape": (R,) * 3}) + " " * 70_000
    return {
        # not a zip, or not a whole one
        "empty_file": lambda: b"",
        "not_a_zip": lambda: b"this is not a zip archive\n" * 8,
        "zip_magic_only": lambda: b"PK\x03\x04 not really a zip",
        "truncated_half": lambda: valid()[: len(valid()) // 2],
        "truncated_end": lambda: valid()[:-10],
        "crc_mismatch": lambda: _zeroed(valid(), b"density.npy", 300, 64),
        "compression_method_unknown": lambda: _patch(valid(), "density", 10, 8, 99, 2),
        "encrypted_flag": lambda: _patch(valid(), "density", 8, 6, 1, 2),
        # members
        "missing_density": lambda: _with(density=None),
        "missing_provenance": lambda: _with(provenance=None),
        "unknown_member": lambda: archive({**valid_members(), "extra": npy(np.zeros(3))}),
        "path_traversal_member": lambda: archive({**valid_members(), "../density": npy(np.zeros(3))}),
        "duplicate_member": lambda: archive([*valid_members().items(), ("density", npy(density))]),
        # sizes: zip bombs and lying headers
        "header_2048_cubed_over_small_member": lambda: _with(density=npy_raw("<f4", (2048, 2048, 2048), small_density)),
        "header_huge_shape": lambda: _with(density=npy_raw("<f4", (2**40, 2**40, 2**40), small_density)),
        "header_smaller_than_data": lambda: _with(density=npy_raw("<f4", (8, 8, 8), small_density)),
        "directory_declares_4_gib": lambda: _patch(valid(), "density", 24, 22, 2**32 - 16, 4),
        "deflate_bomb_256_cubed": _deflate_bomb,
        "negative_shape": lambda: _with(density=npy_raw("<f4", (-16, 16, 16), small_density)),
        "resolution_1024_lying": lambda: _with(density=npy_raw("<f4", (1024,) * 3, small_density)),
        # headers that are not headers
        "format_raw_bytes": lambda: _with(format=b"text-edit-fieldgrid"),
        "version_raw_bytes": lambda: _with(version=b"\x01\x00\x00\x00"),
        "box_centre_raw_bytes": lambda: _with(box_centre=np.zeros(3).tobytes()),
        "density_raw_bytes": lambda: _with(density=small_density),
        "npy_version_9": lambda: _with(density=npy_raw("<f4", (R,) * 3, small_density, version=(9, 9))),
        "header_longer_than_64_kib": lambda: _with(density=npy_raw(None, None, small_density, version=(2, 0), header=long_header)),
        "header_not_a_dict": lambda: _with(density=npy_raw(None, None, small_density, header="[1, 2, 3]")),
        "header_syntax_error": lambda: _with(density=npy_raw(None, None, small_density, header="{'descr': '<f4', 'shape': (16,")),
        "header_deep_nesting": lambda: _with(density=npy_raw(None, None, small_density, header="{'descr': " + "(" * 900 + ")" * 900 + "}")),
        "header_unary_chain": lambda: _with(density=npy_raw(None, None, small_density, header="{'shape': " + "-" * 900 + "1}")),
        "header_missing_keys": lambda: _with(density=npy_raw(None, None, small_density, header="{'descr': '<f4'}")),
        "header_bad_descr": lambda: _with(density=npy_raw("<f99", (R,) * 3, small_density)),
        "header_shape_not_ints": lambda: _with(density=npy_raw("<f4", (16.0, 16, 16), small_density)),
        "fortran_order_not_bool": lambda: _with(density=npy_raw("<f4", (R,) * 3, small_density, fortran_order="yes")),
        "fortran_order_lying_shape": lambda: _with(density=npy_raw("<f4", (R, R, 2 * R), small_density, fortran_order=True)),
        # dtypes
        "object_dtype_pickle": lambda: _with(provenance=npy_raw("|O", (), pickle.dumps("{}"))),
        "density_float64": lambda: _with(density=npy(density.astype(np.float64))),
        "density_int32": lambda: _with(density=npy(density.astype(np.int32))),
        "density_big_endian": lambda: _with(density=npy(density.astype(">f4"))),
        "density_structured": lambda: _with(density=npy_raw([("a", "<f4")], (R,) * 3, small_density)),
        "density_subarray": lambda: _with(density=npy_raw([("a", "<f4", (R,))], (R, R), small_density)),
        "rgb_int64": lambda: _with(rgb=npy(np.zeros((R, R, R, 3), np.int64))),
        "masks_uint8": lambda: _with(masks=npy(np.zeros((1, R, R, R), np.uint8))),
        "format_not_text": lambda: _with(format=_number(1, np.int32)),
        "version_float": lambda: _with(version=_number(1.0)),
        "box_size_text": lambda: _with(box_size=_text("1.0")),
        "provenance_bytes_dtype": lambda: _with(provenance=npy(np.array(b"{}"))),
        "provenance_invalid_code_point": lambda: _with(provenance=npy_raw("<U1", (), struct.pack("<I", 0xFFFFFFFF))),
        "provenance_zero_width_text": lambda: _with(provenance=npy_raw("<U0", ())),
        "provenance_lone_surrogate": lambda: _with(provenance=npy_raw("<U3", (), struct.pack("<3I", 0x7B, 0xD800, 0x7D))),
        # shapes and values
        "resolution_mismatch": lambda: _with(rgb=npy(np.zeros((2 * R, 2 * R, 2 * R, 3), np.uint8))),
        "resolution_8": lambda: _with(density=npy(np.zeros((8, 8, 8), np.float32))),
        "density_not_cube": lambda: _with(density=npy(np.zeros((R, R, R + 1), np.float32))),
        "rgb_four_channels": lambda: _with(rgb=npy(np.zeros((R, R, R, 4), np.uint8))),
        "too_many_edit_steps": lambda: _with(masks=npy(np.zeros((17, R, R, R), np.float16))),
        "density_nan": lambda: _with(density=_density(nan_density)),
        "density_inf": lambda: _with(density=_density(np.where(density > 0, np.inf, density))),
        "rgb_nan": lambda: _with(rgb=npy(np.full((R, R, R, 3), np.nan, np.float32))),
        "mask_above_one": lambda: _with(masks=npy((masks.astype(np.float32) * 1.5).astype(np.float16))),
        "mask_negative": lambda: _with(masks=npy(masks.astype(np.float32) - 0.5)),
        "mask_nan_float16": lambda: _with(masks=npy(np.full((1, R, R, R), np.nan, np.float16))),
        # scalars
        "format_other_name": lambda: _with(format=_text("something-else")),
        "format_very_long": lambda: _with(format=_text("x" * 10_000)),
        "version_2": lambda: _with(version=_number(2, np.int32)),
        "version_huge": lambda: _with(version=_number(2**64 - 1, np.uint64)),
        "level_nan": lambda: _with(level=_number(np.nan)),
        "level_1e300": lambda: _with(level=_number(1e300)),
        "box_size_1e-300": lambda: _with(box_size=_number(1e-300)),
        "box_size_1e308": lambda: _with(box_size=_number(1e308)),
        "box_size_negative": lambda: _with(box_size=_number(-1.0)),
        "box_size_nan": lambda: _with(box_size=_number(np.nan)),
        "box_centre_1e308": lambda: _with(box_centre=npy(np.full(3, 1e308))),
        "box_centre_inf": lambda: _with(box_centre=npy(np.array([0.0, np.inf, 0.0]))),
        "box_centre_far": lambda: _with(box_centre=npy(np.array([1e6, 0.0, 0.0]))),
        "box_centre_two_numbers": lambda: _with(box_centre=npy(np.zeros(2))),
        # provenance
        "provenance_100k_deep": lambda: _with(provenance=_text(_deep_json(100_000))),
        "provenance_30k_deep": lambda: _with(provenance=_text(_deep_json(30_000))),
        "provenance_65_deep": lambda: _with(provenance=_text('{"a": ' + _deep_json(65) + "}")),
        "provenance_5000_digit_int": lambda: _with(provenance=_text('{"seed": ' + "9" * 5000 + "}")),
        "provenance_101_digit_int": lambda: _with(provenance=_text('{"seed": -' + "9" * 101 + "}")),
        "provenance_nan": lambda: _with(provenance=_text('{"strength": NaN}')),
        "provenance_infinity": lambda: _with(provenance=_text('{"strength": -Infinity}')),
        "provenance_float_overflow": lambda: _with(provenance=_text('{"strength": 1e999}')),
        "provenance_not_json": lambda: _with(provenance=_text('{"prompt": ')),
        "provenance_not_object": lambda: _with(provenance=_text("[1, 2, 3]")),
        "provenance_too_long": lambda: _with(provenance=_text('{"a": "' + "x" * 70_000 + '"}')),
    }


def hostile_fieldgrid_files(folder: Path) -> list[tuple[str, Path]]:
    """Write every hostile case into `folder` as NAME.npz; -> [(name, path)]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in _cases().items():
        path = folder / f"{name}.npz"
        path.write_bytes(build())
        written.append((name, path))
    return written

"""FieldGrid: the radiance field sampled on a regular grid, the one format the bridge sends.

A FieldGrid is an uncompressed or deflated `.npz` archive; every member is a plain array (never
unpickled), and the reader checks every npy header against the zip directory and the format's limits
before it allocates anything. See docs/mesh_export.md for the table of members. In short:

- samples sit at voxel CENTRES: index i on an axis is the field coordinate
  `box_centre + box_size * ((i + 0.5) / R - 0.5)`, so R voxels tile the box exactly;
- axis order is x, y, z: `density[i, j, k]` is the sample at (x_i, y_j, z_k) (numpy "ij" indexing);
- `density` is EG3D's raw sigma (the renderer uses softplus(sigma - 1)); the surface is where it
  crosses `level`, which the writer states (EG3D weights: 10; the embedded prior: 0).

One reader (`read`, `read_bytes`), one writer (`write`, `to_bytes`), one validator (`validate`).
"""

from __future__ import annotations

import io
import json
import math
import numbers
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import write_whole

FORMAT_NAME = "text-edit-fieldgrid"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

MIN_RESOLUTION = 16
MAX_RESOLUTION = 512
MAX_EDIT_STEPS = 16
# The box and level bound what vertex positions can be: finite, and voxels far wider than float32's
# step at the box centre (so a mesh never collapses to a point).
MIN_BOX_SIZE = 1e-4
MAX_BOX_SIZE = 100.0
MAX_BOX_CENTRE_OFFSET = 100  # in box sizes, on each axis
MAX_ABS_LEVEL = 1e6
MAX_PROVENANCE_CHARS = 65536
MAX_PROVENANCE_DEPTH = 64
MAX_PROVENANCE_DIGITS = 100
MAX_FORMAT_CHARS = 64
# An npy header (a Python dict literal) is about 120 characters; numpy pads it to 64 bytes.
MAX_HEADER_CHARS = 1024
# Largest archive accepted, and largest sum of its members once inflated (a 512^3 grid with float32
# density, uint8 colour and two float16 masks is 1.4 GiB).
MAX_FILE_BYTES = 3 * 2**30
MAX_ARRAY_BYTES = 3 * 2**30

DENSITY_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
RGB_DTYPES = (np.dtype(np.uint8), np.dtype(np.float16), np.dtype(np.float32))
MASK_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))
# float16 bit patterns: every value in [+0, 1] is <= the pattern of 1.0 (NaN and inf are above it).
FLOAT16_ONE_BITS = 0x3C00
FLOAT16_NEGATIVE_ZERO_BITS = 0x8000
REQUIRED_MEMBERS = ("format", "version", "density", "rgb", "masks", "level", "box_size", "box_centre", "provenance")


class FieldGridError(ValueError):
    """A field grid that cannot be used; the message is one sentence that says what to do."""


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def _fail(problem: str) -> FieldGridError:
    return FieldGridError(f"The field grid {problem}; export it again from the bridge (python -m bridge) or check its source.")


@dataclass(frozen=True, eq=False)
class FieldGrid:
    """A field sampled at R^3 voxel centres of an axis-aligned cube (field space: y up, face toward +z).

    density: (R, R, R) float32 or float16, raw sigma indexed [x, y, z].
    rgb: (R, R, R, 3) uint8 (0-255) or float16/float32 in [0, 1].
    masks: (S, R, R, R) float16/float32 in [0, 1], one attention mask per edit step (S may be 0).
    level: the density value of the surface.
    box_size: edge length of the cube; box_centre: (3,) its centre.
    provenance: JSON-serialisable dict (prompts, seed, module, strength, bridge version, ...).
    """

    density: np.ndarray
    rgb: np.ndarray
    masks: np.ndarray
    level: float
    box_size: float = 1.0
    box_centre: np.ndarray = field(default_factory=lambda: np.zeros(3))
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def from_arrays(
        cls,
        density: np.ndarray,
        rgb: np.ndarray,
        masks: np.ndarray | None = None,
        level: float = 0.0,
        box_size: float = 1.0,
        box_centre: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
        provenance: dict[str, Any] | None = None,
    ) -> "FieldGrid":
        """Build a grid from any arrays: density -> float32, float rgb in [0, 1] -> uint8 (the smallest
        member; its 1/510 rounding is far below what a texture shows), masks -> float16; rgb and
        masks are clipped to [0, 1]. density (R, R, R), rgb (R, R, R, 3), masks (S, R, R, R) or
        (R, R, R) for one step."""
        density = np.asarray(density, dtype=np.float32)
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8:
            rgb = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
        if masks is None:
            masks = np.zeros((0, *density.shape), dtype=np.float16)
        masks = np.asarray(masks)
        if masks.ndim == 3:
            masks = masks[None]
        if masks.dtype != np.float16:  # float16 masks are taken as they are (validate checks their range)
            masks = np.clip(masks.astype(np.float32), 0.0, 1.0).astype(np.float16)
        return cls(
            density=density,
            rgb=rgb,
            masks=masks,
            level=float(level),
            box_size=float(box_size),
            box_centre=np.asarray(box_centre, dtype=np.float64),
            provenance=dict(provenance or {}),
        )

    @property
    def resolution(self) -> int:
        return int(self.density.shape[0])

    @property
    def edit_steps(self) -> int:
        return int(self.masks.shape[0])

    @property
    def voxel_size(self) -> float:
        return self.box_size / self.resolution

    @property
    def origin(self) -> np.ndarray:
        """(3,) field coordinates of the box's lowest corner (not a sample: samples sit half a voxel in)."""
        return np.asarray(self.box_centre, dtype=np.float64) - 0.5 * self.box_size

    def axis_coordinates(self) -> np.ndarray:
        """(R,) field coordinate of the samples along each axis (relative to the box centre's axis)."""
        return axis_coordinates(self.resolution, self.box_size)

    def rgb_float(self) -> np.ndarray:
        """(R, R, R, 3) float32 colour in [0, 1]."""
        if self.rgb.dtype == np.uint8:
            return self.rgb.astype(np.float32) / 255.0
        return self.rgb.astype(np.float32)


def axis_coordinates(resolution: int, box_size: float = 1.0) -> np.ndarray:
    """(R,) float64 offsets of voxel centres from the box centre along one axis."""
    return box_size * ((np.arange(resolution) + 0.5) / resolution - 0.5)


def grid_points(resolution: int, box_size: float = 1.0, box_centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(R^3, 3) float32 field points in the order of `density.reshape(-1)`: what the bridge queries."""
    axis = axis_coordinates(resolution, box_size)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    points = np.stack([x, y, z], axis=-1).reshape(-1, 3) + np.asarray(box_centre, dtype=np.float64)
    return points.astype(np.float32)


# ---------------------------------------------------------------- validation


def _check_dtype(name: str, dtype: np.dtype, allowed: tuple[np.dtype, ...]) -> None:
    if dtype not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise _fail(f"member '{name}' has dtype {dtype}, not one of {names}")


def _check_layout(shapes: dict[str, tuple[int, ...]], dtypes: dict[str, np.dtype]) -> None:
    """Shapes and dtypes of density, rgb and masks: run on arrays by `validate` and on npy headers
    by the reader, before any of their data is read."""
    density = shapes["density"]
    if len(density) != 3 or len(set(density)) != 1:
        raise _fail(f"density has shape {density}, not a cube (R, R, R)")
    resolution = density[0]
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise _fail(f"resolution {resolution} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}")
    if shapes["rgb"] != (resolution,) * 3 + (3,):
        raise _fail(f"rgb has shape {shapes['rgb']}, not ({resolution}, {resolution}, {resolution}, 3)")
    masks = shapes["masks"]
    if len(masks) != 4 or masks[1:] != (resolution,) * 3:
        raise _fail(f"masks have shape {masks}, not (S, {resolution}, {resolution}, {resolution})")
    if masks[0] > MAX_EDIT_STEPS:
        raise _fail(f"has {masks[0]} edit steps, more than {MAX_EDIT_STEPS}")
    _check_dtype("density", dtypes["density"], DENSITY_DTYPES)
    _check_dtype("rgb", dtypes["rgb"], RGB_DTYPES)
    _check_dtype("masks", dtypes["masks"], MASK_DTYPES)


def _check_finite_unit(name: str, array: np.ndarray) -> None:
    if array.dtype == np.uint8 or array.size == 0:
        return
    if array.dtype == np.float16:
        bits = array.view(np.uint16)
        if bits.max() <= FLOAT16_ONE_BITS:
            return
        outside = (bits > FLOAT16_ONE_BITS) & (bits != FLOAT16_NEGATIVE_ZERO_BITS)
        if not outside.any():
            return
    if not np.isfinite(array).all():
        raise _fail(f"member '{name}' holds NaN or infinite values")
    if array.min() < 0.0 or array.max() > 1.0:
        raise _fail(f"member '{name}' has values outside [0, 1]")


def provenance_problem(provenance: Any, max_chars: int = MAX_PROVENANCE_CHARS, max_depth: int = MAX_PROVENANCE_DEPTH) -> str | None:
    """What keeps `provenance` from being a grid's provenance ("holds NaN ...", said of it), or None:
    it must be a JSON object of bounded depth, length and numbers, with no NaN or infinity (which
    would make the glTF extras invalid JSON)."""
    if not isinstance(provenance, dict):
        return "is not a JSON object"
    pending = [(provenance, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return "holds NaN or infinite numbers"
        if isinstance(value, int) and abs(value) >= 10**MAX_PROVENANCE_DIGITS:
            return f"holds an integer of more than {MAX_PROVENANCE_DIGITS} digits"
        if isinstance(value, (dict, list, tuple)):
            if depth > max_depth:
                return f"nests deeper than {max_depth} levels"
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    try:
        text = json.dumps(provenance, allow_nan=False)
    except (TypeError, ValueError):
        return "is not JSON-serialisable"
    if len(text) > max_chars:
        return f"is longer than {max_chars} characters"
    return None


def validate(grid: FieldGrid) -> None:
    """Raise FieldGridError unless shapes, dtypes, values, box, level and provenance are all valid."""
    density, rgb, masks = grid.density, grid.rgb, grid.masks
    if not all(isinstance(a, np.ndarray) for a in (density, rgb, masks)):
        raise _fail("has members that are not arrays")
    arrays = {"density": density, "rgb": rgb, "masks": masks}
    _check_layout({k: a.shape for k, a in arrays.items()}, {k: a.dtype for k, a in arrays.items()})
    if not np.isfinite(density).all():
        raise _fail("density holds NaN or infinite values")
    _check_finite_unit("rgb", rgb)
    _check_finite_unit("masks", masks)
    if not isinstance(grid.level, numbers.Real) or not abs(grid.level) <= MAX_ABS_LEVEL:
        raise _fail(f"level {grid.level!r} is not a finite number between -{MAX_ABS_LEVEL:g} and {MAX_ABS_LEVEL:g}")
    if not isinstance(grid.box_size, numbers.Real) or not MIN_BOX_SIZE <= grid.box_size <= MAX_BOX_SIZE:
        raise _fail(f"box size {grid.box_size!r} is not in [{MIN_BOX_SIZE:g}, {MAX_BOX_SIZE:g}]")
    centre = np.asarray(grid.box_centre)
    if centre.shape != (3,) or centre.dtype.kind not in "fiu" or not np.isfinite(centre).all():
        raise _fail("box centre is not three finite numbers")
    if not (np.abs(centre) <= MAX_BOX_CENTRE_OFFSET * grid.box_size).all():
        raise _fail(f"box centre {tuple(centre.tolist())} is more than {MAX_BOX_CENTRE_OFFSET} box sizes from the origin")
    problem = provenance_problem(grid.provenance)
    if problem is not None:
        raise _fail(f"provenance {problem}")


# ---------------------------------------------------------------- writing


def _save(grid: FieldGrid, target, compress: bool) -> None:
    """A validated grid as `.npz` into a file object: numpy's own npz layout (one .npy member per
    array), written in a `with` so that a failed write (a full disk) closes the archive at once
    (np.savez left it to the garbage collector, which then wrote to a closed file)."""
    members = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, dtype=np.int32),
        "density": grid.density,
        "rgb": grid.rgb,
        "masks": grid.masks,
        "level": np.array(grid.level, dtype=np.float64),
        "box_size": np.array(grid.box_size, dtype=np.float64),
        "box_centre": np.asarray(grid.box_centre, dtype=np.float64),
        "provenance": np.array(json.dumps(grid.provenance, sort_keys=True)),
    }
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in members.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def to_bytes(grid: FieldGrid, compress: bool = False) -> bytes:
    """The grid as `.npz` bytes (deflated if `compress`: ~3x smaller, ~5x slower to read)."""
    validate(grid)
    buffer = io.BytesIO()
    _save(grid, buffer, compress)
    return buffer.getvalue()


def write(grid: FieldGrid, path: str | Path, compress: bool = False) -> Path:
    """Write the grid to `path` (conventionally `.npz`), whole or not at all; returns the path."""
    validate(grid)  # before the file is opened: a refused grid leaves no file behind
    return write_whole(path, lambda file: _save(grid, file, compress))


# ---------------------------------------------------------------- reading
#
# Every member's npy header is read and checked (dtype, shape, declared size against the zip
# directory) before any array is allocated, so a forged header or a zip bomb costs nothing; data is
# inflated in bounded chunks, never beyond the size the header declared.

READ_CHUNK_BYTES = 64 * 2**20
NUMBER_MEMBERS = {"version": "iu", "level": "fiu", "box_size": "fiu", "box_centre": "fiu"}
TEXT_MEMBERS = {"format": MAX_FORMAT_CHARS, "provenance": MAX_PROVENANCE_CHARS}
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError, RuntimeError, NotImplementedError)


@dataclass(frozen=True)
class _Member:
    """One archive member as its npy header declares it."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    offset: int  # bytes of npy magic and header before the data


def _check_archive(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    names = [info.filename.removesuffix(".npy") for info in infos]
    missing = [name for name in REQUIRED_MEMBERS if name not in names]
    if missing:
        raise _fail(f"lacks the member(s) {', '.join(missing)}")
    unknown = sorted(set(names) - set(REQUIRED_MEMBERS))
    if unknown:
        raise _fail(f"has unknown member(s) {', '.join(unknown)}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise _fail(f"holds the member(s) {', '.join(twice)} more than once")
    if sum(info.file_size for info in infos) > MAX_ARRAY_BYTES:
        raise _fail(f"holds more than {_size(MAX_ARRAY_BYTES)} of arrays")
    for name, info in zip(names, infos):
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
            raise _fail(f"member '{name}' is encrypted or compressed other than by deflate")
    return dict(zip(names, infos))


def _header(archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo) -> _Member:
    with archive.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
        except ValueError:
            raise _fail(f"member '{name}' is not npy array data") from None
        try:
            shape, fortran_order, dtype = HEADER_READERS[version](stream, max_header_size=MAX_HEADER_CHARS)
        except Exception:  # noqa: BLE001 -- numpy parses hostile header text with ast and tokenize, which raise many kinds
            raise _fail(f"member '{name}' has a damaged npy header") from None
        offset = stream.tell()
    if dtype.hasobject:
        raise _fail("contains Python objects, which are never loaded")
    if any(n < 0 for n in shape):
        raise _fail(f"member '{name}' has a negative dimension")
    member = _Member(info, tuple(int(n) for n in shape), fortran_order, dtype, offset)
    declared, held = math.prod(member.shape) * dtype.itemsize, max(info.file_size - offset, 0)
    if declared != held:
        raise _fail(f"member '{name}' declares {_size(declared)} of data but holds {_size(held)}")
    return member


def _check_small_member(name: str, member: _Member) -> None:
    dtype, shape = member.dtype, member.shape
    number = dtype.kind in NUMBER_MEMBERS.get(name, "") and dtype.itemsize <= 8
    if name == "box_centre":
        if shape != (3,) or not number:
            raise _fail("box centre is not three numbers")
    elif name in NUMBER_MEMBERS:
        if shape != () or not number:
            raise _fail(f"member '{name}' is not a single number")
    elif shape != () or dtype.kind != "U" or not dtype.isnative:
        raise _fail(f"member '{name}' is not a single string")
    elif dtype.itemsize > 4 * TEXT_MEMBERS[name]:
        raise _fail(f"{name} is longer than {TEXT_MEMBERS[name]} characters")


def _data(archive: zipfile.ZipFile, name: str, member: _Member) -> np.ndarray:
    """The member's array, read into an array of the declared (checked) size: a stored member straight
    from the archive's bytes, a deflated one inflated chunk by chunk; either checked against its CRC."""
    flat = np.empty(math.prod(member.shape), dtype=member.dtype)
    raw = memoryview(flat.view(np.uint8))
    if member.info.compress_type == zipfile.ZIP_STORED:
        _read_stored(archive, name, member, raw)
    else:
        with archive.open(member.info) as stream:
            stream.read(member.offset)
            _read_into(stream, raw, name)
    return flat.reshape(member.shape, order="F" if member.fortran_order else "C")


def _read_into(stream, raw: memoryview, name: str) -> None:
    """Fill `raw` from `stream` in READ_CHUNK_BYTES pieces; a stream that ends first is a truncated member."""
    done = 0
    while done < len(raw):
        count = stream.readinto(raw[done : done + READ_CHUNK_BYTES])
        if not count:
            raise _fail(f"member '{name}' is truncated")
        done += count


LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
"""A zip member's local header: signature, versions, flags, method, time, date, CRC, sizes, name and extra lengths."""


def _read_stored(archive: zipfile.ZipFile, name: str, member: _Member, raw: memoryview) -> None:
    """A stored member's data, read with one copy (zipfile's reader makes three: a 151 MB 256^3 grid
    read in 0.28-0.46 s, now 0.12-0.20 s), after the npy header; the whole member's CRC is checked as zipfile would
    (a mismatch is a damaged archive, said as for any other)."""
    source = archive.fp
    source.seek(member.info.header_offset)
    header = source.read(LOCAL_HEADER.size)
    if len(header) != LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"member '{name}' has a damaged zip header")
    name_length, extra_length = LOCAL_HEADER.unpack(header)[-2:]
    source.seek(member.info.header_offset + LOCAL_HEADER.size + name_length + extra_length)
    npy_header = source.read(member.offset)
    _read_into(source, raw, name)
    if zlib.crc32(raw, zlib.crc32(npy_header)) != member.info.CRC:
        raise zipfile.BadZipFile(f"member '{name}' does not match its checksum")


def _text(name: str, array: np.ndarray) -> str:
    codes = array.reshape(-1).view(np.uint32)
    if ((codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))).any():
        raise _fail(f"member '{name}' is not valid text")
    return str(array.item())


def _refuse_constant(name: str) -> None:
    raise _fail(f"provenance holds {name}, which JSON does not allow")


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_PROVENANCE_DIGITS:
        raise _fail(f"provenance holds an integer of more than {MAX_PROVENANCE_DIGITS} digits")
    return int(text)


def _provenance(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_json_int)
    except RecursionError:
        raise _fail(f"provenance nests deeper than {MAX_PROVENANCE_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise _fail("has provenance that is not valid JSON") from None


def _check_version(version: int) -> None:
    if version not in SUPPORTED_VERSIONS:
        newer = version > max(SUPPORTED_VERSIONS)
        raise FieldGridError(
            f"The field grid has format version {version} but this mesh_export reads version(s) "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}; "
            + ("update the add-on to match the bridge." if newer else "update the bridge to match the add-on.")
        )


def _read_archive(archive: zipfile.ZipFile) -> FieldGrid:
    infos = _check_archive(archive)
    members = {name: _header(archive, name, infos[name]) for name in REQUIRED_MEMBERS}
    small = {}
    for name in ("format", "version", "provenance", "level", "box_size", "box_centre"):
        _check_small_member(name, members[name])
        small[name] = _data(archive, name, members[name])
    if _text("format", small["format"]) != FORMAT_NAME:
        raise _fail(f"is not a {FORMAT_NAME} file")
    _check_version(small["version"].item())
    provenance = _provenance(_text("provenance", small["provenance"]))
    arrays = ("density", "rgb", "masks")
    _check_layout({k: members[k].shape for k in arrays}, {k: members[k].dtype for k in arrays})
    return FieldGrid(
        density=_data(archive, "density", members["density"]),
        rgb=_data(archive, "rgb", members["rgb"]),
        masks=_data(archive, "masks", members["masks"]),
        level=float(small["level"].item()),
        box_size=float(small["box_size"].item()),
        box_centre=small["box_centre"].astype(np.float64),
        provenance=provenance,
    )


def _read(source: io.BufferedIOBase) -> FieldGrid:
    try:
        with zipfile.ZipFile(source) as archive:
            return _read_archive(archive)
    except FieldGridError:
        raise
    except MemoryError:
        raise FieldGridError(
            "The field grid does not fit in the memory that is free; close other programs or export it at a lower resolution."
        ) from None
    except DAMAGED:
        raise _fail("is damaged or truncated (not a complete .npz archive)") from None


def read_bytes(data: bytes) -> FieldGrid:
    """Parse and validate `.npz` bytes (e.g. an HTTP body). Raises FieldGridError on any problem."""
    if len(data) > MAX_FILE_BYTES:
        raise _fail(f"is larger than {_size(MAX_FILE_BYTES)}")
    return _read(io.BytesIO(data))


def read(path: str | Path) -> FieldGrid:
    """Read and validate a grid file. Raises FieldGridError (missing, damaged, invalid)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else ("is not a regular file" if path.exists() else "does not exist")
        raise FieldGridError(f"The field grid file {path} {what}; check the path.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise _fail(f"file {path.name} is larger than {_size(MAX_FILE_BYTES)}")
    try:
        stream = path.open("rb")
    except OSError as error:
        reason = error.strerror or error
        raise FieldGridError(f"The field grid file {path} cannot be read ({reason}); check its permissions.") from None
    with stream:
        return _read(stream)

"""FieldGrid: the radiance field sampled on a regular grid, the one format the bridge sends.

A FieldGrid is an uncompressed or deflated `.npz` archive read with `allow_pickle=False`; every
member is a plain array. See docs/mesh_export.md for the table of members. In short:

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
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "text-edit-fieldgrid"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

MIN_RESOLUTION = 16
MAX_RESOLUTION = 512
MAX_EDIT_STEPS = 16
MAX_BOX_SIZE = 100.0
MAX_PROVENANCE_CHARS = 65536
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
        masks = np.asarray(masks, dtype=np.float32)
        if masks.ndim == 3:
            masks = masks[None]
        masks = np.clip(masks, 0.0, 1.0).astype(np.float16)
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


def _check_dtype(name: str, array: np.ndarray, allowed: tuple[np.dtype, ...]) -> None:
    if array.dtype not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise _fail(f"member '{name}' has dtype {array.dtype}, not one of {names}")


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


def validate(grid: FieldGrid) -> None:
    """Raise FieldGridError unless shapes, dtypes, values, box, level and provenance are all valid."""
    density, rgb, masks = grid.density, grid.rgb, grid.masks
    if not all(isinstance(a, np.ndarray) for a in (density, rgb, masks)):
        raise _fail("has members that are not arrays")
    if density.ndim != 3 or len(set(density.shape)) != 1:
        raise _fail(f"density has shape {density.shape}, not a cube (R, R, R)")
    resolution = density.shape[0]
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise _fail(f"resolution {resolution} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}")
    if rgb.shape != (resolution,) * 3 + (3,):
        raise _fail(f"rgb has shape {rgb.shape}, not ({resolution}, {resolution}, {resolution}, 3)")
    if masks.ndim != 4 or masks.shape[1:] != (resolution,) * 3:
        raise _fail(f"masks have shape {masks.shape}, not (S, {resolution}, {resolution}, {resolution})")
    if masks.shape[0] > MAX_EDIT_STEPS:
        raise _fail(f"has {masks.shape[0]} edit steps, more than {MAX_EDIT_STEPS}")
    _check_dtype("density", density, DENSITY_DTYPES)
    _check_dtype("rgb", rgb, RGB_DTYPES)
    _check_dtype("masks", masks, MASK_DTYPES)
    if not np.isfinite(density).all():
        raise _fail("density holds NaN or infinite values")
    _check_finite_unit("rgb", rgb)
    _check_finite_unit("masks", masks)
    if not isinstance(grid.level, numbers.Real) or not math.isfinite(grid.level):
        raise _fail(f"level {grid.level!r} is not a finite number")
    if not isinstance(grid.box_size, numbers.Real) or not 0.0 < grid.box_size <= MAX_BOX_SIZE:
        raise _fail(f"box size {grid.box_size!r} is not in (0, {MAX_BOX_SIZE}]")
    centre = np.asarray(grid.box_centre)
    if centre.shape != (3,) or not np.isfinite(centre).all():
        raise _fail("box centre is not three finite numbers")
    if not isinstance(grid.provenance, dict):
        raise _fail("provenance is not a JSON object")
    try:
        text = json.dumps(grid.provenance)
    except (TypeError, ValueError):
        raise _fail("provenance is not JSON-serialisable") from None
    if len(text) > MAX_PROVENANCE_CHARS:
        raise _fail(f"provenance is longer than {MAX_PROVENANCE_CHARS} characters")


# ---------------------------------------------------------------- writing


def to_bytes(grid: FieldGrid, compress: bool = False) -> bytes:
    """The grid as `.npz` bytes (deflated if `compress`: ~3x smaller, ~5x slower to read)."""
    validate(grid)
    buffer = io.BytesIO()
    save = np.savez_compressed if compress else np.savez
    save(
        buffer,
        format=np.array(FORMAT_NAME),
        version=np.array(FORMAT_VERSION, dtype=np.int32),
        density=grid.density,
        rgb=grid.rgb,
        masks=grid.masks,
        level=np.array(grid.level, dtype=np.float64),
        box_size=np.array(grid.box_size, dtype=np.float64),
        box_centre=np.asarray(grid.box_centre, dtype=np.float64),
        provenance=np.array(json.dumps(grid.provenance, sort_keys=True)),
    )
    return buffer.getvalue()


def write(grid: FieldGrid, path: str | Path, compress: bool = False) -> Path:
    """Write the grid to `path` (conventionally `.npz`); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(grid, compress=compress))
    return path


# ---------------------------------------------------------------- reading


def _scalar(members: dict[str, np.ndarray], name: str, kind: str) -> Any:
    value = members[name]
    if value.shape != () or value.dtype.kind not in kind:
        raise _fail(f"member '{name}' is not a single {'string' if kind == 'U' else 'number'}")
    return value.item()


def _box_centre(value: np.ndarray) -> np.ndarray:
    if value.shape != (3,) or value.dtype.kind not in "fiu":
        raise _fail("box centre is not three numbers")
    return value.astype(np.float64)


def _check_archive(archive: zipfile.ZipFile) -> None:
    names = [info.filename.removesuffix(".npy") for info in archive.infolist()]
    missing = [name for name in REQUIRED_MEMBERS if name not in names]
    if missing:
        raise _fail(f"lacks the member(s) {', '.join(missing)}")
    unknown = sorted(set(names) - set(REQUIRED_MEMBERS))
    if unknown:
        raise _fail(f"has unknown member(s) {', '.join(unknown)}")
    if sum(info.file_size for info in archive.infolist()) > MAX_ARRAY_BYTES:
        raise _fail(f"holds more than {_size(MAX_ARRAY_BYTES)} of arrays")


def read_bytes(data: bytes) -> FieldGrid:
    """Parse and validate `.npz` bytes (e.g. an HTTP body). Raises FieldGridError on any problem."""
    if len(data) > MAX_FILE_BYTES:
        raise _fail(f"is larger than {_size(MAX_FILE_BYTES)}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_archive(archive)
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            members = {name: archive[name] for name in REQUIRED_MEMBERS}
    except FieldGridError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise _fail("contains Python objects, which are never loaded") from None
        raise _fail("is damaged or truncated") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, RuntimeError):
        raise _fail("is damaged or truncated (not a complete .npz archive)") from None

    if _scalar(members, "format", "U") != FORMAT_NAME:
        raise _fail(f"is not a {FORMAT_NAME} file")
    version = _scalar(members, "version", "iu")
    if version not in SUPPORTED_VERSIONS:
        newer = version > max(SUPPORTED_VERSIONS)
        raise FieldGridError(
            f"The field grid has format version {version} but this mesh_export reads version(s) "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}; "
            + ("update the add-on to match the bridge." if newer else "update the bridge to match the add-on.")
        )
    try:
        provenance = json.loads(_scalar(members, "provenance", "U"))
    except json.JSONDecodeError:
        raise _fail("has provenance that is not valid JSON") from None
    return FieldGrid(
        density=members["density"],
        rgb=members["rgb"],
        masks=members["masks"],
        level=float(_scalar(members, "level", "fiu")),
        box_size=float(_scalar(members, "box_size", "fiu")),
        box_centre=_box_centre(members["box_centre"]),
        provenance=provenance,
    )


def read(path: str | Path) -> FieldGrid:
    """Read and validate a grid file. Raises FieldGridError (missing, damaged, invalid)."""
    path = Path(path)
    if not path.is_file():
        raise FieldGridError(f"The field grid file {path} does not exist; check the path.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise _fail(f"file {path.name} is larger than {_size(MAX_FILE_BYTES)}")
    return read_bytes(path.read_bytes())

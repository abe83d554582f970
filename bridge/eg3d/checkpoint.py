"""Read an EG3D checkpoint without running anything it carries.

EG3D's `.pkl` snapshots are pickles of `torch_utils.persistence` objects: each network is stored
as a record (its class name, the *source code of its module*, and its state) and normal loading
executes that source. `read_checkpoint` uses an unpickler that knows a short list of globals:

- torch's tensor and parameter rebuilders, and storages, whose bytes are read with
  `torch.load(weights_only=True)` instead of `torch.storage._load_from_bytes` (which unpickles
  with weights_only=False);
- `torch_utils.persistence._reconstruct_persistent_obj`, answered with a `PersistentRecord` that
  keeps the class name, the state and only a checksum of the module source (never executed);
- `dnnlib.util.EasyDict` (a dict), `collections.OrderedDict`, and the plain (non-persistent)
  network classes a snapshot holds inside its records (torch.nn's, and EG3D's ImportanceRenderer,
  RaySampler, MipRayMarcher2 and OSGDecoder), which become inert `OpaqueObject`s holding their state;
- numpy scalars (some layer gains), rebuilt from their dtype code and bytes with `struct`, never by
  numpy's reducers.

Any other global (os.system, builtins.eval, subprocess.Popen, ...) stops the load with
`UnsafeCheckpoint` before it is called. Sizes are checked before anything is allocated: a pickle
opcode cannot declare more bytes than the file has left, a storage's declared length must be the
bytes that follow it, a converted `.pth` may not inflate past a cap, and the loaded structure's
nesting and (shared-reference) size are bounded, so a crafted file is one sentence, never a
MemoryError. The same rules read the converted `.pth` dicts some
projects redistribute (keys G_init_args, G_init_kwargs, G, G_neural_rendering_resolution,
G_renderinig_kwargs), through torch.load's `pickle_module`.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch._utils

from bridge.errors import WeightsError

GENERATOR_KEYS = ("G_ema", "G")
"""Which network of a training snapshot is the generator to use (EG3D's own scripts take G_ema)."""

PLAIN_CLASSES = {
    ("training.volumetric_rendering.renderer", "ImportanceRenderer"),
    ("training.volumetric_rendering.ray_sampler", "RaySampler"),
    ("training.volumetric_rendering.ray_marcher", "MipRayMarcher2"),
    ("training.triplane", "OSGDecoder"),
}
"""EG3D's networks that are not persistent: pickled as plain objects inside the generator's record."""

MAX_DEPTH = 64
MAX_NODES = 2_000_000
"""Bounds on the loaded structure: a released snapshot nests about 12 deep and has ~100k objects."""
MAX_INFLATED_BYTES = 4 << 30
MAX_INFLATION_RATIO = 64
"""A converted .pth is stored, not deflated (torch.save); a member may not inflate past these."""


class UnsafeCheckpoint(WeightsError):
    """The file asks to run something other than rebuilding tensors and records."""


@dataclass
class PersistentRecord:
    """What `torch_utils.persistence` stored for one network object, with its code left unrun."""

    class_name: str
    module_src_sha256: str
    state: dict = field(default_factory=dict)

    @property
    def init_kwargs(self) -> dict:
        kwargs = self.state.get("_init_kwargs") or self.state.get("init_kwargs") or {}
        return dict(kwargs) if isinstance(kwargs, dict) else {}


class OpaqueObject:
    """An instance of an allowed network class, kept as plain state (none of its code runs)."""

    qualified_name = "object"

    def __init__(self, *args, **kwargs) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    def __repr__(self) -> str:
        return f"<{self.qualified_name} (not run)>"


class EasyDict(dict):
    """dnnlib.util.EasyDict, as a plain dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or not isinstance(meta.get("state") or {}, dict):
        raise WeightsError("A network record in the checkpoint is not the dict EG3D writes; the file is damaged or not EG3D's.")
    source = meta.get("module_src") or ""
    return PersistentRecord(
        class_name=str(meta.get("class_name", "?")),
        module_src_sha256=hashlib.sha256(str(source).encode("utf-8", "replace")).hexdigest(),
        state=dict(meta.get("state") or {}),
    )


STRUCT_CODES = {
    "f2": "e",
    "f4": "f",
    "f8": "d",
    "i1": "b",
    "i2": "h",
    "i4": "i",
    "i8": "q",
    "u1": "B",
    "u2": "H",
    "u4": "I",
    "u8": "Q",
    "b1": "?",
}


class NumpyDtype:
    """numpy.dtype(code, align, copy) as pickled with a numpy scalar: the code and byte order only."""

    def __init__(self, code: Any = None, align: Any = False, copy: Any = True) -> None:
        if code not in STRUCT_CODES:
            raise UnsafeCheckpoint(
                f"The checkpoint holds a numpy value of dtype {str(code)[:20]!r}, which an EG3D snapshot does not; refused."
            )
        self.code, self.byteorder = code, "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = state[1]


def _numpy_scalar(dtype: Any, data: Any = b"") -> float | int | bool:
    if not isinstance(dtype, NumpyDtype) or not isinstance(data, bytes):
        raise UnsafeCheckpoint("The checkpoint rebuilds a numpy scalar from something other than a dtype and bytes; refused.")
    order = ">" if dtype.byteorder == ">" else "<"
    try:
        return struct.unpack(order + STRUCT_CODES[dtype.code], data)[0]
    except struct.error:
        raise WeightsError(f"A numpy value in the checkpoint has {len(data)} bytes for dtype {dtype.code}; the file is damaged.") from None


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """_codecs.encode as protocol-2 pickles use it for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpoint("The checkpoint calls _codecs.encode on something other than latin-1 text; refused.")
    return text.encode("latin1")


STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageHeader(pickle.Unpickler):
    """The small pickles of torch's legacy storage format: plain values and a storage type name."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise UnsafeCheckpoint(f"A tensor storage in the checkpoint asks for {module}.{name}; refused.")

    def persistent_load(self, pid: Any) -> Any:
        return pid


def _storage_from_bytes(data: bytes) -> torch.TypedStorage:
    """torch.storage._load_from_bytes without torch.load: the legacy format's header pickles (magic,
    version, system info, the storage's id, its keys), then its element count and raw bytes, which
    must be exactly what the header declares."""
    stream = io.BytesIO(data)
    try:
        magic, _, system = (_StorageHeader(stream).load() for _ in range(3))
        pid, keys = _StorageHeader(stream).load(), _StorageHeader(stream).load()
        kind, type_name, key, _, numel = pid[:5]
        count = struct.unpack("<q", stream.read(8))[0]
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, struct.error):
        raise WeightsError("A tensor storage in the checkpoint is not in torch's format; the file is damaged.") from None
    dtype = STORAGE_DTYPES.get(type_name) if isinstance(type_name, str) else None
    if (
        magic != LEGACY_MAGIC
        or kind != "storage"
        or dtype is None
        or keys != [key]
        or not isinstance(system, dict)
        or system.get("little_endian") is not True
    ):
        raise WeightsError("A tensor storage in the checkpoint is not in torch's format; the file is damaged.")
    payload = data[stream.tell() :]
    if count != numel or not isinstance(count, int) or count * dtype.itemsize != len(payload):
        raise WeightsError(
            f"A tensor storage in the checkpoint declares {numel} values but holds {len(payload)} bytes; the file is damaged."
        )
    values = torch.frombuffer(bytearray(payload), dtype=dtype) if payload else torch.empty(0, dtype=dtype)
    return torch.TypedStorage(wrap_storage=values.untyped_storage(), dtype=dtype, _internal=True)


def _opaque_class(module: str, name: str) -> type:
    return types.new_class(name, (OpaqueObject,), {}, lambda ns: ns.update(qualified_name=f"{module}.{name}"))


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("numpy", "dtype"): NumpyDtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("_codecs", "encode"): _latin1,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,  # protocol 2 pickles sets by calling set(list)
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "frozenset"): frozenset,
}
for _dtype in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"):
    _ALLOWED[("torch", _dtype)] = getattr(torch, _dtype)


def _refuse_bytearray(unpickler: pickle._Unpickler) -> None:
    raise pickle.UnpicklingError("the file holds a bytearray, which no checkpoint does")


class Unpickler(pickle._Unpickler):
    """pickle's unpickler that only knows the globals above (plus inert network classes). It is
    the Python one (as fast here: the time goes into the tensors' bytes), because the C one
    allocates a bytearray of whatever size the file declares before reading it."""

    dispatch = {**pickle._Unpickler.dispatch, pickle.BYTEARRAY8[0]: _refuse_bytearray}

    def load_build(self) -> None:
        """BUILD (set an object's state) only on the inert objects this reader makes: network
        objects and numpy dtypes; on anything else (a record, a dict, one of our functions) it could
        replace what the reader relies on."""
        target = self.stack[-2] if len(self.stack) > 1 else None
        if not isinstance(target, (OpaqueObject, NumpyDtype)):
            raise UnsafeCheckpoint(
                f"The checkpoint sets the state of a {type(target).__name__}, which an EG3D snapshot never does; refused."
            )
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) in PLAIN_CLASSES or (module.startswith("torch.nn.modules.") and name[:1].isupper()):
            return _opaque_class(module, name)
        if module == "copyreg" and name == "_reconstructor":
            return _reconstructor
        raise UnsafeCheckpoint(
            f"The checkpoint asks to run {module}.{name} while loading; refused (an EG3D checkpoint "
            f"only rebuilds tensors and network records), so nothing in it was run. Use the original file from NVIDIA."
        )


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    if not isinstance(cls, type) or not issubclass(cls, (OpaqueObject, EasyDict)):
        raise UnsafeCheckpoint(f"The checkpoint asks to build a {getattr(cls, '__name__', cls)!r}; refused.")
    return cls.__new__(cls)


class _RestrictedPickleModule:
    """What torch.load accepts as `pickle_module`: our Unpickler under pickle's other names."""

    Unpickler = Unpickler
    load = staticmethod(lambda file, **kw: Unpickler(file, **kw).load())
    __name__ = "bridge.eg3d.checkpoint"

    def __getattr__(self, name: str) -> Any:
        return getattr(pickle, name)


class _BoundedFile:
    """A file for the unpickler whose reads may not ask for more than the file has left, so a
    length field declaring 200 GiB is a damaged file, not a 200 GiB allocation."""

    def __init__(self, file: io.BufferedReader, size: int) -> None:
        self.file, self.left = file, size

    def _take(self, n: int) -> None:
        if n > self.left:
            raise pickle.UnpicklingError(f"a field declares {n:,} bytes where {self.left:,} are left")

    def read(self, n: int = -1) -> bytes:
        self._take(max(n, 0))
        data = self.file.read(self.left if n < 0 else n)
        self.left -= len(data)
        return data

    def readinto(self, buffer) -> int:
        self._take(len(buffer))
        count = self.file.readinto(buffer)
        self.left -= count
        return count

    def readline(self) -> bytes:
        line = self.file.readline(min(self.left, 1 << 16))
        self.left -= len(line)
        return line


def _check_archive(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    if not any(member.filename.endswith("/data.pkl") for member in members):
        raise WeightsError(
            f"{path} is a zip archive but not one torch.save wrote (it has no data.pkl); give an EG3D .pkl or a converted .pth."
        )
    inflated = sum(member.file_size for member in members)
    bomb = next(
        (m for m in members if m.compress_type != zipfile.ZIP_STORED and m.file_size > MAX_INFLATION_RATIO * max(m.compress_size, 1)), None
    )
    if inflated > MAX_INFLATED_BYTES or bomb is not None:
        raise WeightsError(
            f"{path} would inflate to {inflated / 2**30:.1f} GiB"
            + (f" ({bomb.filename} {bomb.file_size // max(bomb.compress_size, 1)}x its stored size)" if bomb else "")
            + "; that is not a checkpoint torch.save wrote, so it was not read."
        )


def _children(value: Any) -> list:
    if isinstance(value, PersistentRecord):
        return [value.state]
    if isinstance(value, OpaqueObject):
        return [value.__dict__]
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return []


def _state_problem(value: Any) -> str | None:
    state = value.state if isinstance(value, PersistentRecord) else value.__dict__ if isinstance(value, OpaqueObject) else None
    if state is None:
        return None
    for group in ("_parameters", "_buffers", "_modules", "_init_kwargs", "rendering_kwargs"):
        part = state.get(group)
        if part is not None and not (isinstance(part, dict) and all(isinstance(k, str) for k in part)):
            return f"its {group} is a {type(part).__name__}{'' if not isinstance(part, dict) else ' with keys that are not names'}"
    return None


def check_structure(data: Any, where: Path | str) -> None:
    """Refuse structures no EG3D snapshot has before anything walks them: cycles, nesting deeper than
    MAX_DEPTH, more than MAX_NODES objects once shared references are counted as often as they are
    reached (a "billion laughs" of a few hundred bytes), and network states of the wrong types."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(data, 0, False)]
    while stack:
        value, depth, done = stack.pop()
        key = id(value)
        children = _children(value)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes.get(id(child), 1) for child in children)
            if sizes[key] > MAX_NODES:
                raise WeightsError(
                    f"{where} expands to more than {MAX_NODES:,} objects through shared references; "
                    "it is not an EG3D snapshot, so it was not read further."
                )
            continue
        if not children or key in sizes:
            continue
        if key in on_path:
            raise WeightsError(f"{where} holds a structure that contains itself; it is not an EG3D snapshot.")
        if depth > MAX_DEPTH:
            raise WeightsError(f"{where} nests deeper than {MAX_DEPTH} levels; it is not an EG3D snapshot.")
        problem = _state_problem(value)
        if problem:
            raise WeightsError(f"A network in {where} is not what EG3D writes ({problem}); the file is damaged.")
        on_path.add(key)
        stack.append((value, depth, True))
        stack.extend((child, depth + 1, False) for child in children)


def read_checkpoint(path: Path) -> dict:
    """The checkpoint's top-level dict, with networks as PersistentRecords (or, for a converted
    `.pth`, its plain dict). Raises WeightsError with one sentence on any problem."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else ("is not a regular file" if path.exists() else "does not exist")
        raise WeightsError(f"No checkpoint at {path} (it {what}); give the path of an EG3D .pkl (or a converted .pth).")
    try:
        if zipfile.is_zipfile(path):  # torch.save format (converted .pth)
            _check_archive(path)
            data = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule())
        else:
            with path.open("rb") as file:
                if file.read(1) != b"\x80":  # every pickle since protocol 2 starts so; EG3D's use 4 or 5
                    raise WeightsError(
                        f"{path} is not a pickle (EG3D's training writes network-snapshot-NNNNNN.pkl) or a converted .pth; give one of those."
                    )
                file.seek(0)
                data = Unpickler(_BoundedFile(file, path.stat().st_size)).load()
    except WeightsError:
        raise
    except MemoryError:
        raise WeightsError(
            f"{path} asks for more memory than this machine has while loading; it is not a checkpoint the bridge can read."
        ) from None
    except RecursionError:
        raise WeightsError(f"{path} nests too deeply to be an EG3D snapshot.") from None
    except (
        AssertionError,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        RuntimeError,
        zipfile.BadZipFile,
        struct.error,
    ) as error:
        raise WeightsError(
            f"Cannot read {path} as an EG3D checkpoint ({type(error).__name__}: {str(error)[:200]}); the file may be damaged."
        ) from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path} holds a {type(data).__name__}, not the dict of an EG3D snapshot.")
    try:
        check_structure(data, path)
    except WeightsError:
        raise
    except Exception as error:  # noqa: BLE001 (a structure no snapshot has: one sentence)
        raise WeightsError(f"{path} holds a structure no EG3D snapshot has ({type(error).__name__}); the file is damaged.") from None
    return data


def generator_record(data: dict, path: Path | str = "the checkpoint") -> PersistentRecord | dict:
    """The generator of a snapshot: G_ema (or G) as a record, or the `.pth` layout's dict."""
    for key in GENERATOR_KEYS:
        if isinstance(data.get(key), PersistentRecord):
            return data[key]
    if "G" in data and "G_init_kwargs" in data:
        return data
    raise WeightsError(f"{path} has no generator (looked for {', '.join(GENERATOR_KEYS)}); its keys are {', '.join(map(str, data))}.")


def _names(value: Any, what: str) -> dict:
    """A dict of settings keyed by name, or one sentence about the damaged file."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise WeightsError(f"The checkpoint's {what} is a {type(value).__name__}, not the dict of names EG3D writes; the file is damaged.")
    return dict(value)


def generator_settings(source: PersistentRecord | dict) -> tuple[dict, dict, int | None]:
    """A generator's init kwargs, rendering kwargs (those nested in the init kwargs, overridden by
    the object's own) and neural rendering resolution, from a record or the `.pth` layout."""
    if isinstance(source, PersistentRecord):
        kwargs = _names(source.state.get("_init_kwargs") or source.state.get("init_kwargs"), "init kwargs")
        rendering = _names(source.state.get("rendering_kwargs"), "rendering kwargs")
        neural_resolution = source.state.get("neural_rendering_resolution")
    else:
        kwargs, rendering = (
            _names(source.get("G_init_kwargs"), "G_init_kwargs"),
            _names(source.get("G_renderinig_kwargs"), "G_renderinig_kwargs"),
        )
        neural_resolution = source.get("G_neural_rendering_resolution")
    return kwargs, {**_names(kwargs.get("rendering_kwargs"), "rendering kwargs"), **rendering}, neural_resolution


def flat_state(record: PersistentRecord | OpaqueObject | dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and buffers of a network record by their state_dict names (e.g. 'mapping.fc0.weight')."""
    if isinstance(record, dict) and "G" in record and "G_init_kwargs" in record:
        return {k: v for k, v in _names(record["G"], "G state dict").items() if isinstance(v, torch.Tensor)}
    state = record.state if isinstance(record, PersistentRecord) else (record.__dict__ if isinstance(record, OpaqueObject) else record)
    if not isinstance(state, dict):
        raise WeightsError(
            f"The checkpoint's network {prefix.rstrip('.') or 'G'} is a {type(record).__name__}, not a network; the file is damaged."
        )
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in _names(state.get(group), f"{prefix}{group}").items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value.detach()
    for name, child in _names(state.get("_modules"), f"{prefix}_modules").items():
        if child is not None:
            out.update(flat_state(child, f"{prefix}{name}."))
    return out

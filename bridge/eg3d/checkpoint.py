"""Read an EG3D checkpoint without running anything it carries.

EG3D's `.pkl` snapshots are pickles of `torch_utils.persistence` objects: each network is stored
as a record (its class name, the *source code of its module*, and its state) and normal loading
executes that source. `read_checkpoint` uses an unpickler that knows a short list of globals:

- torch's tensor and parameter rebuilders, and storages, whose bytes are read with
  `torch.load(weights_only=True)` instead of `torch.storage._load_from_bytes` (which unpickles
  with weights_only=False);
- `torch_utils.persistence._reconstruct_persistent_obj`, answered with a `PersistentRecord` that
  keeps the class name, the state and only a checksum of the module source (never executed);
- `dnnlib.util.EasyDict` (a dict), `collections.OrderedDict`, and torch.nn classes, which become
  inert `OpaqueObject`s holding their state.

Any other global (os.system, builtins.eval, subprocess.Popen, ...) stops the load with
`UnsafeCheckpoint` before it is called. The same rules read the converted `.pth` dicts some
projects redistribute (keys G_init_args, G_init_kwargs, G, G_neural_rendering_resolution,
G_renderinig_kwargs), through torch.load's `pickle_module`.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
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
        return dict(self.state.get("_init_kwargs") or self.state.get("init_kwargs") or {})


class OpaqueObject:
    """An instance of an allowed torch.nn class, kept as plain state (no torch code runs)."""

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


def _reconstruct_persistent_obj(meta: dict) -> PersistentRecord:
    source = meta.get("module_src") or ""
    return PersistentRecord(
        class_name=str(meta.get("class_name", "?")),
        module_src_sha256=hashlib.sha256(source.encode("utf-8", "replace")).hexdigest(),
        state=dict(meta.get("state") or {}),
    )


def _storage_from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


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
}
for _dtype in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"):
    _ALLOWED[("torch", _dtype)] = getattr(torch, _dtype)


class Unpickler(pickle.Unpickler):
    """pickle.Unpickler that only knows the globals above (plus inert torch.nn classes)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module.startswith("torch.nn.modules.") and name[:1].isupper():
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


def read_checkpoint(path: Path) -> dict:
    """The checkpoint's top-level dict, with networks as PersistentRecords (or, for a converted
    `.pth`, its plain dict). Raises WeightsError with one sentence on any problem."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"No checkpoint at {path}; give the path of an EG3D .pkl (or a converted .pth).")
    try:
        if zipfile.is_zipfile(path):  # torch.save format (converted .pth)
            data = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule())
        else:
            with path.open("rb") as file:
                data = Unpickler(file).load()
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, RuntimeError, zipfile.BadZipFile) as error:
        raise WeightsError(f"Cannot read {path} as an EG3D checkpoint ({type(error).__name__}: {error}); the file may be damaged.") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path} holds a {type(data).__name__}, not the dict of an EG3D snapshot.")
    return data


def generator_record(data: dict, path: Path | str = "the checkpoint") -> PersistentRecord | dict:
    """The generator of a snapshot: G_ema (or G) as a record, or the `.pth` layout's dict."""
    for key in GENERATOR_KEYS:
        if isinstance(data.get(key), PersistentRecord):
            return data[key]
    if "G" in data and "G_init_kwargs" in data:
        return data
    raise WeightsError(f"{path} has no generator (looked for {', '.join(GENERATOR_KEYS)}); its keys are {', '.join(map(str, data))}.")


def generator_settings(source: PersistentRecord | dict) -> tuple[dict, dict, int | None]:
    """A generator's init kwargs, rendering kwargs (those nested in the init kwargs, overridden by
    the object's own) and neural rendering resolution, from a record or the `.pth` layout."""
    if isinstance(source, PersistentRecord):
        kwargs, rendering = source.init_kwargs, dict(source.state.get("rendering_kwargs") or {})
        neural_resolution = source.state.get("neural_rendering_resolution")
    else:
        kwargs, rendering = dict(source.get("G_init_kwargs") or {}), dict(source.get("G_renderinig_kwargs") or {})
        neural_resolution = source.get("G_neural_rendering_resolution")
    return kwargs, {**dict(kwargs.get("rendering_kwargs") or {}), **rendering}, neural_resolution


def flat_state(record: PersistentRecord | OpaqueObject | dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and buffers of a network record by their state_dict names (e.g. 'mapping.fc0.weight')."""
    if isinstance(record, dict) and "G" in record and "G_init_kwargs" in record:
        return {k: v for k, v in record["G"].items() if isinstance(v, torch.Tensor)}
    state = record.state if isinstance(record, PersistentRecord) else (record.__dict__ if isinstance(record, OpaqueObject) else record)
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(flat_state(child, f"{prefix}{name}."))
    return out

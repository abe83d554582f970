"""Make `import torchvision` work next to a CPU-only torch.

Every Linux torchvision wheel on the package registry is a CUDA build. Next to the CPU build of
torch its compiled extension (`torchvision/_C.so`) cannot load, torchvision carries on without
its custom ops, and then its own fake-tensor registration for `torchvision::nms` fails with
"operator torchvision::nms does not exist" -- so `import torchvision`, and with it
`import open_clip`, raises. We never call torchvision's detection ops (nms, roi_align, ...);
we only need the import to succeed. So, when and only when the extension cannot load, we declare
the schemas of the ops torchvision registers unconditionally. Calling one of them then raises
torch's ordinary "no kernel" error instead of breaking the import. Where the extension loads
(CUDA torch on a user's machine), this does nothing.

Call `make_torchvision_importable()` before the first import of torchvision or open_clip.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None  # kept alive: dropping it removes the schemas


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # nothing to fix: torchvision is not installed
    candidates = sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(Path(spec.origin).parent.glob("_C*.pyd"))
    if not candidates:
        return False
    try:
        torch.ops.load_library(str(candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


def make_torchvision_importable() -> bool:
    """Declare torchvision's op schemas if its extension cannot load. Returns True if it did."""
    global _library
    if _library is not None or _extension_loads():
        return False
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _library.define(schema)
    return True

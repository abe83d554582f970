"""Stand-ins for EG3D's pickling modules, so tests build pickles that name the same globals as
the released checkpoints (torch_utils.persistence records, dnnlib EasyDicts)."""

import collections
import sys
import types

import pytest


@pytest.fixture
def eg3d_modules(monkeypatch):
    """Stand-ins for EG3D's torch_utils.persistence and dnnlib.util, so pickles name their globals."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # what EG3D runs on load: exec(meta["module_src"])
        exec(compile(meta["module_src"], "<eg3d module>", "exec"), {})
        raise AssertionError("the test's loader must never be used by the importer")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(persistence=persistence, EasyDict=EasyDict)


def persistent(modules, class_name, marker, parameters=(), buffers=(), children=(), **extra):
    """An object that pickles exactly like a torch_utils.persistence network."""
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(parameters),
        "_buffers": collections.OrderedDict(buffers),
        "_modules": collections.OrderedDict(children),
        **extra,
    }
    meta = {"type": "class", "version": 4, "class_name": class_name, "state": state,
            "module_src": f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"}

    class Record:
        def __reduce__(self):
            return modules.persistence._reconstruct_persistent_obj, (meta,)

    return Record()




def nested_records(modules, flat: dict, marker, containers: dict | None = None):
    """EG3D-named flat tensors -> the nested persistence records EG3D pickles. `containers` names
    module paths that EG3D holds in a plain torch.nn.Sequential (e.g. "decoder.net")."""
    import torch

    tree: dict = {}
    for name, tensor in flat.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node.setdefault("__tensors__", {})[leaf] = tensor

    def build(node, where):
        children = [(k, build(v, f"{where}.{k}".strip("."))) for k, v in node.items() if k != "__tensors__"]
        tensors = node.get("__tensors__", {})
        is_buffer = lambda leaf: leaf in ("noise_const", "w_avg", "resample_filter")  # noqa: E731
        parameters = [(k, torch.nn.Parameter(v)) for k, v in tensors.items() if not is_buffer(k)]
        buffers = [(k, v) for k, v in tensors.items() if is_buffer(k)]
        if where in (containers or {}):
            sequential = torch.nn.Sequential()
            for index in range(max(int(k) for k, _ in children) + 1):
                child = dict(children).get(str(index), torch.nn.Softplus())
                sequential._modules[str(index)] = child  # the records stand in for EG3D modules
            return sequential
        return persistent(modules, f"Net<{where}>", marker, parameters=parameters, buffers=buffers, children=children)

    return {k: build(v, k) for k, v in tree.items() if k != "__tensors__"}

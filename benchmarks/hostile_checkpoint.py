"""Hostile and damaged EG3D checkpoints, as an attacker or an unlucky download would make them:
what `python -m benchmarks hostile` and tests/eg3d/test_hostile.py feed to `inspect-eg3d` and
`import-eg3d`. Every file must be answered with one sentence (exit 2), within bounded memory, and
nothing in it may run.

Pickles are written with protocol 2 (no frames) so that a placeholder string in a pickled
structure can be swapped for hand-made opcodes (a 200k-deep chain, a lying length field).
"""

from __future__ import annotations

import dataclasses
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from bridge.eg3d.synthetic import (
    TINY,
    EasyDict,
    eg3d_modules,
    marker_source,
    random_generator,
    record,
    write_checkpoint,
    write_converted,
    write_planted,
)

PLACEHOLDER = "@@HOSTILE@@"
SMALL = dataclasses.replace(TINY, superresolution=None)


def _swap(data: bytes, opcodes: bytes) -> bytes:
    """Replace the protocol-2 pickling of PLACEHOLDER by `opcodes` (which leave one object)."""
    encoded = PLACEHOLDER.encode()
    pickled = b"X" + struct.pack("<I", len(encoded)) + encoded
    assert data.count(pickled) == 1
    return data.replace(pickled, opcodes)


def _snapshot_with(generator_state: dict, protocol: int = 2) -> bytes:
    """A snapshot whose G_ema is a persistence record with `generator_state`."""
    with eg3d_modules():
        network = record("TriPlaneGenerator", "", **generator_state)
        return pickle.dumps({"G_ema": network, "D": None, "augment_pipe": None}, protocol=protocol)


def _deep_dicts(depth: int) -> bytes:
    return (b"}" + b"X\x01\x00\x00\x00m") * depth + b"}" + b"s" * depth


def _deep_lists(depth: int) -> bytes:
    return b"]" * depth + b"a" * (depth - 1) if depth > 1 else b"]"


def _laughs(levels: int = 9, width: int = 10) -> list:
    value: list = ["lol"]
    for _ in range(levels):
        value = [value] * width
    return value


def _cycle() -> torch.nn.Sequential:
    loop = torch.nn.Sequential()
    loop._modules["0"] = loop
    return loop


def _lying_length(opcode: bytes, size_format: str, declared: int) -> bytes:
    return b"\x80\x04" + opcode + struct.pack(size_format, declared) + b"only a few bytes" + b"."


def _pth_rewritten(source: Path, target: Path, rewrite: Callable[[str, bytes], bytes | None], compress: int = zipfile.ZIP_STORED) -> Path:
    """A copy of a torch.save archive with members rewritten (None: dropped)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", compress) as out:
        for info in archive.infolist():
            data = rewrite(info.filename, archive.read(info))
            if data is not None:
                out.writestr(info.filename, data, compress_type=compress)
    return target


def _deflate_bomb(source: Path, target: Path, inflated: int) -> Path:
    """A torch.save archive whose first storage member is `inflated` zero bytes, deflated."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        bombed = False
        for info in archive.infolist():
            if "/data/" not in info.filename or bombed:
                out.writestr(info, archive.read(info))
                continue
            bombed, member_info = True, zipfile.ZipInfo(info.filename)
            member_info.compress_type = zipfile.ZIP_DEFLATED
            with out.open(member_info, "w", force_zip64=True) as member:
                chunk = bytes(1 << 20)
                for _ in range(inflated >> 20):
                    member.write(chunk)
    return target


def hostile_checkpoint_files(folder: Path, bomb_bytes: int = 256 << 20) -> list[tuple[str, Path]]:
    """Write the hostile checkpoints into `folder`; (case name, path) for each. `bomb_bytes`: how
    far the deflate bomb inflates (the issue's case is 4 GiB; a quarter GiB shows the same)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, Path]] = []

    def add(name: str, data: bytes) -> None:
        path = folder / f"{name}.pkl"
        path.write_bytes(data)
        cases.append((name, path))

    def snapshot(name: str, edit=None, edit_kwargs=None) -> None:
        path = write_checkpoint(random_generator(SMALL), folder / f"{name}.pkl", edit=edit, edit_kwargs=edit_kwargs, discriminator=False)
        cases.append((name, path))

    # Structure: nesting, cycles, key types, wrong types, shared-reference bombs.
    add("modules_nested_200k_deep", _swap(_snapshot_with({"children": [("backbone", PLACEHOLDER)]}), _deep_dicts(200_000)))
    add("init_kwargs_nested_200k_deep", _swap(_snapshot_with({"_init_kwargs": {"z_dim": PLACEHOLDER}}), _deep_lists(200_000)))
    add("modules_cyclic", _snapshot_with({"children": [("decoder", _cycle())]}))
    add("modules_mixed_key_types", _snapshot_with({"children": [("a", record("A")), (1, record("B"))]}))
    with eg3d_modules():
        stringy = record("TriPlaneGenerator")
        stringy.meta["state"]["_modules"] = "backbone"
        add("modules_string_not_dict", pickle.dumps({"G_ema": stringy}, protocol=2))
        parameters_list = record("TriPlaneGenerator")
        parameters_list.meta["state"]["_parameters"] = [torch.zeros(2)]
        add("parameters_list_not_dict", pickle.dumps({"G_ema": parameters_list}, protocol=2))
        kwargs_string = record("TriPlaneGenerator", _init_kwargs="z_dim=512")
        add("init_kwargs_string_not_dict", pickle.dumps({"G_ema": kwargs_string}, protocol=2))
        built = record("TriPlaneGenerator")

        class Rebuilt:  # a record whose BUILD replaces the reader's record state afterwards
            def __reduce__(self):
                return type(built).__reduce__(built) + ({"state": [1], "class_name": None},)

        add("record_state_set_by_build", pickle.dumps({"G_ema": Rebuilt()}, protocol=2))
        meta_list = record("TriPlaneGenerator")
        meta_list.meta["state"] = ["not", "a", "dict"]
        add("record_state_list", pickle.dumps({"G_ema": meta_list}, protocol=2))
    add("init_kwargs_billion_laughs", _snapshot_with({"_init_kwargs": {"z_dim": 512, "mapping_kwargs": _laughs()}}))
    add("rendering_kwargs_billion_laughs", _snapshot_with({"rendering_kwargs": {"ray_start": _laughs(12, 6)}}))
    add("generator_is_a_list", pickle.dumps({"G_ema": [1, 2, 3]}, protocol=2))
    add("top_level_not_dict", pickle.dumps([{"G_ema": None}], protocol=2))
    add("no_generator", pickle.dumps({"D": None, "augment_pipe": None}, protocol=2))

    # Lengths that lie: each declares far more bytes than the file holds.
    add("binbytes8_200_gib", _lying_length(b"\x8e", "<Q", 200 << 30))
    add("binunicode8_200_gib", _lying_length(b"\x8d", "<Q", 200 << 30))
    add("bytearray8_200_gib", b"\x80\x05" + _lying_length(b"\x96", "<Q", 200 << 30)[2:])
    add("binbytes_4_gib", _lying_length(b"B", "<I", (4 << 30) - 1))
    add("long4_2_gib", _lying_length(b"\x8b", "<i", (2 << 30) - 1))
    add("frame_200_gib", _lying_length(b"\x95", "<Q", 200 << 30))
    add("truncated", pickle.dumps({"G_ema": list(range(1000))}, protocol=2)[:-40])
    add("empty_file", b"")
    add("not_a_pickle", b"\x89PNG\r\n\x1a\n" + bytes(64))

    # Globals that run code.
    cases.append(("os_system", write_planted(folder / "os_system.pkl", f"touch {folder / 'ran.txt'}")))
    add("builtins_eval", b"\x80\x02cbuiltins\neval\nX\x0e\x00\x00\x00__import__('os')\x85R.")
    add("numpy_reconstruct", b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nK\x00\x85R.")
    add("numpy_dtype_object", b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R.")
    add("codecs_encode_other", b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with eg3d_modules():
        planted = record("TriPlaneGenerator", marker_source(folder / "source_ran.txt"))
        add("module_source_runs_if_trusted", pickle.dumps({"G_ema": planted}, protocol=2))

    # Sizes: declared sizes that would allocate gigabytes, sizes that are not numbers, missing tensors.
    snapshot("z_dim_30000", edit_kwargs=lambda kwargs: kwargs.update(z_dim=30000))
    snapshot("w_dim_4000_mismatched", edit_kwargs=lambda kwargs: kwargs.update(w_dim=4000))
    snapshot("channel_max_huge", edit_kwargs=lambda kwargs: kwargs.update(channel_max=10**9, channel_base=10**12))
    snapshot("z_dim_text", edit_kwargs=lambda kwargs: kwargs.update(z_dim="512"))
    snapshot("z_dim_fraction", edit_kwargs=lambda kwargs: kwargs.update(z_dim=15.5))
    snapshot("z_dim_nan", edit_kwargs=lambda kwargs: kwargs.update(z_dim=float("nan")))
    snapshot("z_dim_negative", edit_kwargs=lambda kwargs: kwargs.update(z_dim=-16))
    snapshot("conv_clamp_infinite", edit_kwargs=lambda kwargs: kwargs.update(conv_clamp=float("inf")))
    snapshot("box_warp_nan", edit_kwargs=lambda kwargs: kwargs["rendering_kwargs"].update(box_warp=float("nan")))
    snapshot("depth_resolution_huge", edit_kwargs=lambda kwargs: kwargs["rendering_kwargs"].update(depth_resolution=10**7))
    snapshot("camera_pivot_text", edit_kwargs=lambda kwargs: kwargs["rendering_kwargs"].update(avg_camera_pivot="origin"))
    snapshot("mapping_layers_text", edit_kwargs=lambda kwargs: kwargs.update(mapping_kwargs={"num_layers": "two"}))
    snapshot("no_torgb", edit=lambda flat: [flat.pop(n) for n in list(flat) if n.endswith("torgb.weight")])
    snapshot("no_mapping", edit=lambda flat: [flat.pop(n) for n in list(flat) if ".mapping." in n])
    snapshot("tensor_wrong_shape", edit=lambda flat: flat.update({"decoder.net.0.weight": torch.zeros(3, 3)}))
    snapshot("tensor_huge_view", edit=lambda flat: flat.update({"decoder.net.0.weight": torch.zeros(1).expand(1 << 20, 1 << 20)}))
    snapshot(
        "tensor_stride0_right_shape",
        edit=lambda flat: flat.update({"decoder.net.0.weight": torch.zeros(1).expand(*flat["decoder.net.0.weight"].shape)}),
    )
    snapshot("tensor_zero_dim", edit=lambda flat: flat.update({"backbone.mapping.fc0.weight": torch.tensor(1.0)}))

    # The converted .pth layout: zip bombs, lying storages, foreign members.
    converted = write_converted(random_generator(SMALL), folder / "valid.pth")
    bomb = _deflate_bomb(converted, folder / "pth_deflate_bomb.pth", bomb_bytes)
    cases.append(("pth_deflate_bomb", bomb))
    cases.append(
        (
            "pth_storage_missing",
            _pth_rewritten(converted, folder / "pth_storage_missing.pth", lambda name, data: None if "/data/0" in name else data),
        )
    )
    cases.append(
        (
            "pth_storage_truncated",
            _pth_rewritten(converted, folder / "pth_storage_truncated.pth", lambda name, data: data[:3] if "/data/" in name else data),
        )
    )
    cases.append(
        (
            "pth_pickle_planted",
            _pth_rewritten(
                converted,
                folder / "pth_pickle_planted.pth",
                lambda name, data: pickle.dumps(eval, protocol=2) if name.endswith("data.pkl") else data,
            ),
        )
    )
    cases.append(
        (
            "pth_no_pickle",
            _pth_rewritten(converted, folder / "pth_no_pickle.pth", lambda name, data: None if name.endswith("data.pkl") else data),
        )
    )
    with eg3d_modules():
        torch.save({"G_init_args": [], "G_init_kwargs": "z_dim=512", "G": {}}, folder / "pth_kwargs_string.pth")
        torch.save({"G_init_args": [], "G_init_kwargs": EasyDict(z_dim=512), "G": [1, 2]}, folder / "pth_state_list.pth")
    cases += [("pth_kwargs_string", folder / "pth_kwargs_string.pth"), ("pth_state_list", folder / "pth_state_list.pth")]
    return cases

"""Edit a head with Text Edit in Blender without its window, and write .glb, .blend and a render.

    blender -b --python examples/edit_head.py -- --seed 3 --module blue_eyes --out out/
    blender -b --python examples/edit_head.py -- --seed 7 --edit "green hair" --mask hair --out out/
    blender -b --python examples/edit_head.py -- --seed 3 --module red_hair --instruction "make the eyes green" --out out/

--module may be repeated to stack edits; --edit/--mask and --instruction take any prompt (the
bridge's open model edits at once where no module was trained for it) and go on top. --bridge-python starts a bridge on this computer for the
run (the Python that has it installed); otherwise one must already be running at --url (its token
is read from the bridge's token folder). The Text Edit extension must be installed and enabled.
"""

import argparse
import importlib
import sys
from pathlib import Path

import addon_utils
import bpy


def text_edit_api():
    """The add-on's scripting API, whichever extension repository it was installed into."""
    for module in addon_utils.modules():
        if module.__name__.rpartition(".")[2] == "text_edit" and addon_utils.check(module.__name__)[1]:
            return importlib.import_module(module.__name__ + ".addon.api")
    raise SystemExit("The Text Edit extension is not enabled; install it (Preferences > Get Extensions > Install from Disk) and enable it.")


def arguments() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="blender -b --python examples/edit_head.py --", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--module", action="append", default=[], help="a trained edit of the bridge's library (repeat to stack)")
    parser.add_argument("--edit", help="any edit prompt (with --mask)")
    parser.add_argument("--mask", help="where the edit applies")
    parser.add_argument("--instruction", help='a sentence such as "make the eyes green"')
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--url", help="the bridge's address (default: the add-on preference)")
    parser.add_argument("--bridge-python", help="start a bridge with this Python for the run")
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--render-size", type=int, default=512, help="0 skips the Cycles preview")
    parser.add_argument("--render-mask", action="store_true", help="also render the edit's mask on the head")
    return parser.parse_args(argv)


def main() -> int:
    args = arguments()
    bpy.ops.wm.read_homefile(use_empty=True)  # no startup cube in the way of the head
    api = text_edit_api()
    try:
        bridge = api.connect(url=args.url, bridge_python=args.bridge_python)
        print(f"bridge {bridge['version']}: trained edits {', '.join(bridge['modules']) or 'none'}")
        edits = [dict(module=m) for m in args.module]
        if args.edit:
            edits.append(dict(edit=args.edit, mask=args.mask))
        if args.instruction:
            edits.append(dict(instruction=args.instruction))
        if not edits:  # the unedited head
            head = api.edit(seed=args.seed, grid=args.grid, texture_size=args.texture_size)
        for index, edit in enumerate(edits):
            head = api.edit(
                seed=args.seed, strength=args.strength, on_top=index > 0, grid=args.grid, texture_size=args.texture_size, **edit
            )
        print(f"{head.name}: {len(head.data.vertices)} vertices, edits: {head['text_edit_edits']}")
        stem = "_".join(
            [f"edit_seed{args.seed}"] + [e.get("module") or (e.get("edit") or e["instruction"]).replace(" ", "_") for e in edits]
        )
        glb = api.export_glb(args.out / f"{stem}.glb", [head])
        blend = api.save_blend(args.out / f"{stem}.blend")
        print(f"glTF binary: {glb.resolve()}")
        print(f"Blender file: {blend}")
        if args.render_size:
            png = api.render_preview(args.out / f"{stem}_cycles.png", size=args.render_size)
            print(f"Cycles preview (EG3D camera): {png.resolve()}")
        if args.render_size and args.render_mask:
            api.show_mask(head, True)
            png = api.render_preview(args.out / f"{stem}_mask.png", size=args.render_size)
            api.show_mask(head, False)
            print(f"Cycles preview of the mask: {png.resolve()}")
    except api.TextEditError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        api.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())

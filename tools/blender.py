"""Run a script through the bpy module the way `blender -b --python script.py -- args` would, with
the Text Edit extension installed from its zip into a private Blender user folder.

    python -m tools.blender [--extension dist/text_edit-...zip] [--user-resources DIR] script.py [-- args]

There is no `blender` executable in the bpy wheel; this stands in for it in `make demo`, the tests
and the add-on benchmark. Without --extension, the zip for this platform is built first
(tools/extension.py). The script sees sys.argv as Blender would give it (its arguments after "--").
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import tempfile
from pathlib import Path


def install_extension(zip_path: Path) -> str:
    """Install and enable the extension zip in the user repository; returns its module name."""
    import addon_utils
    import bpy

    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    if "FINISHED" not in result:
        raise SystemExit(f"Blender could not install {zip_path}.")
    name = "bl_ext.user_default.text_edit"
    if name not in bpy.context.preferences.addons:
        addon_utils.enable(name, default_set=True)
    return name


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m tools.blender", description=__doc__.split("\n\n")[0])
    parser.add_argument("--extension", type=Path, help="the extension zip (default: build it for this platform)")
    parser.add_argument("--user-resources", type=Path, help="Blender's user folder (default: a temporary one)")
    parser.add_argument("script", type=Path)
    args = parser.parse_args(own)
    if args.extension is None:
        from tools.extension import build, current_platform

        args.extension = build([current_platform()])[0]
    resources = args.user_resources or Path(tempfile.mkdtemp(prefix="text-edit-blender-"))
    os.environ["BLENDER_USER_RESOURCES"] = str(resources)  # read when bpy is imported
    import bpy

    install_extension(args.extension.resolve())
    sys.argv = [bpy.app.binary_path or "blender", "-b", "--python", str(args.script), "--", *script_args]
    try:
        runpy.run_path(str(args.script), run_name="__main__")
    except SystemExit as end:
        if end.code is None or isinstance(end.code, int):
            return end.code or 0
        print(end.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

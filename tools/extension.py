"""Build the Blender extension: fetch the wheels its manifest lists, then let Blender's own
extension CLI (shipped inside the bpy wheel) validate and zip one package per platform.

    python -m tools.extension build                      # this machine's platform -> dist/
    python -m tools.extension build --platform all       # the four platforms of the manifest
    python -m tools.extension validate

blender_manifest.toml is the one list of wheels; this tool downloads exactly those files (with
pip, no dependencies resolved) into wheels/, which git ignores.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "blender_manifest.toml"
WHEELS = ROOT / "wheels"
# What the staged source holds; the manifest's [build] patterns then decide file by file.
SHIPPED = ("__init__.py", "addon", "mesh_export", "bridge")


class BuildError(Exception):
    pass


def manifest() -> dict:
    return tomllib.loads((ROOT / MANIFEST).read_text())


def blender_ext_script() -> Path:
    """Blender's extension CLI (`blender --command extension ...`) as a plain script in the bpy wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise BuildError("The bpy module is not installed; run `make venv` first.")
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError("blender_ext.py was not found inside the bpy wheel.")
    return found[-1]


def current_platform() -> str:
    machine = platform.machine().lower()
    arch = "arm64" if machine in ("arm64", "aarch64") else "x64"
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    return f"{system}-{arch}"


def wheel_platforms(filename: str) -> set[str] | None:
    """The Blender platforms a wheel file serves; None for a pure-Python wheel (all of them)."""
    tags = filename.removesuffix(".whl").split("-")[-1].split(".")
    if tags == ["any"]:
        return None
    found = set()
    for tag in tags:
        if "linux" in tag:
            found.add("linux-arm64" if tag.endswith("aarch64") else "linux-x64")
        elif tag.startswith("macosx"):
            found.add("macos-arm64" if tag.endswith("arm64") else "macos-x64")
        elif tag.startswith("win"):
            found.add("windows-arm64" if tag.endswith("arm64") else "windows-x64")
    return found


def wheels_for(target: str) -> list[str]:
    names = [Path(path).name for path in manifest().get("wheels", [])]
    return [name for name in names if (platforms := wheel_platforms(name)) is None or target in platforms]


def fetch_wheel(name: str) -> Path:
    """Download the exact wheel file `name` from the package index into wheels/ (kept as a cache)."""
    path = WHEELS / name
    if path.exists():
        return path
    WHEELS.mkdir(exist_ok=True)
    distribution, version, python_tag, abi_tag, platform_tags = name.removesuffix(".whl").split("-")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(WHEELS),
        f"{distribution.replace('_', '-')}=={version}",
    ]
    if platform_tags != "any":
        command += ["--python-version", "3.11", "--implementation", "cp", "--abi", abi_tag]
        for tag in platform_tags.split("."):
            command += ["--platform", tag]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not path.exists():
        raise BuildError(f"Could not download {name} from the package index: {result.stderr.strip()[-400:] or 'pip fetched another file'}")
    return path


def stage(target: str, into: Path) -> Path:
    """A source folder for one platform: the shipped files, its wheels, a manifest naming only them."""
    source = into / target / "text_edit"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    for entry in SHIPPED:
        origin = ROOT / entry
        if origin.is_dir():
            shutil.copytree(origin, source / entry, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / entry)
    (source / "wheels").mkdir()
    names = wheels_for(target)
    for name in names:
        shutil.copy2(fetch_wheel(name), source / "wheels" / name)
    text = (ROOT / MANIFEST).read_text()
    start, end = text.index("wheels = ["), text.index("]", text.index("wheels = [")) + 1
    listed = "wheels = [\n" + "".join(f'  "./wheels/{name}",\n' for name in names) + "]"
    text = text[:start] + listed + text[end:]
    start, end = text.index("platforms = ["), text.index("]", text.index("platforms = [")) + 1
    text = text[:start] + f'platforms = ["{target}"]' + text[end:]
    (source / MANIFEST).write_text(text)
    return source


def run_blender_ext(*arguments: str) -> str:
    result = subprocess.run([sys.executable, str(blender_ext_script()), *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"Blender's extension tool failed: {(result.stdout + result.stderr).strip()[-800:]}")
    return result.stdout


def build(targets: list[str], out: Path = ROOT / "dist") -> list[Path]:
    """One zip per platform in `out`; returns their paths."""
    known = manifest()["platforms"]
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise BuildError(f"Unknown platform {unknown[0]!r}; the manifest lists {', '.join(known)}.")
    out.mkdir(parents=True, exist_ok=True)
    zips = []
    for target in targets:
        source = stage(target, ROOT / "build" / "extension")
        run_blender_ext("build", "--source-dir", str(source), "--output-dir", str(out), "--split-platforms")
        data = tomllib.loads((source / MANIFEST).read_text())
        zips.append(out / f"{data['id']}-{data['version']}-{target.replace('-', '_')}.zip")
        if not zips[-1].exists():
            raise BuildError(f"Blender's extension tool did not write {zips[-1]}.")
    return zips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.extension", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="fetch wheels and build the extension zip(s)")
    build_command.add_argument("--platform", default=current_platform(), help="a platform of the manifest, or all")
    build_command.add_argument("--out", type=Path, default=ROOT / "dist")
    commands.add_parser("validate", help="check blender_manifest.toml with Blender's own validator")
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            print(run_blender_ext("validate", str(ROOT)).strip())
        else:
            targets = manifest()["platforms"] if args.platform == "all" else [args.platform]
            for path in build(targets, args.out):
                print(f"built {path} ({path.stat().st_size / 1e6:.1f} MB)")
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

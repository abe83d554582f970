"""`python -m bridge COMMAND ...`: the bridge's command line.

Every command reports user errors as one sentence on stderr (exit status 2) and Ctrl-C as
"cancelled" (exit status 130), never as a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from bridge.errors import BridgeError


def _add_weights_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="prior generator weights (.safetensors with its .json beside it); default: the bundled ProcHead",
    )


def _head_code(seed: int):
    from bridge.prior.model import HeadCode

    return HeadCode.from_seed(seed)


def cmd_render(args: argparse.Namespace) -> int:
    import torch

    from bridge.images import save_png
    from bridge.prior.model import PRIOR_RENDER, HeadPrior
    from bridge.prior.views import analytic_field, parts_to_colours, render

    if not 16 <= args.res <= 1024:
        raise BridgeError(f"--res must be between 16 and 1024 pixels, got {args.res}.")
    code = _head_code(args.seed)
    with torch.no_grad():
        if args.labels or args.analytic:
            field = analytic_field(code.params[None], with_parts=args.labels)
            channel = "parts" if args.labels else "rgb"
            image = render(field, PRIOR_RENDER, args.yaw, args.pitch, args.res, channels=(channel,))[channel]
            image = parts_to_colours(image) if args.labels else image
        else:
            prior = HeadPrior.load(args.weights)
            image = render(prior.field_for(code), prior.render_config, args.yaw, args.pitch, args.res)["rgb"]
    print(f"wrote {save_png(image[0], args.out)}")
    return 0


def cmd_train_prior(args: argparse.Namespace) -> int:
    import torch

    from bridge.prior.train import PriorTrainingConfig, train_prior

    if args.threads:
        torch.set_num_threads(args.threads)
    config = PriorTrainingConfig(
        seed=args.seed,
        steps=args.steps,
        batch=args.batch,
        time_limit_minutes=args.minutes,
        eval_every=args.eval_every,
        plane_resolution=args.plane_resolution,
    )
    command = "python -m bridge " + shlex.join(sys.argv[1:])

    def report(p) -> None:
        if p.step % 50 == 0 or p.eval_psnr_db is not None:
            eta = p.seconds / p.step * (p.total - p.step)
            if args.minutes:
                eta = min(eta, max(0.0, 60 * args.minutes - p.seconds))
            line = f"step {p.step}/{p.total}  loss {p.loss:.5f}  {p.seconds / 60:.1f} min  eta {eta / 60:.1f} min"
            if p.eval_psnr_db is not None:
                line += f"  held-out render PSNR {p.eval_psnr_db:.2f} dB"
            print(line, flush=True)

    metadata = train_prior(config, args.out, on_progress=report, command=command)
    print(f"wrote {Path(args.out) / 'prochead.safetensors'} (render PSNR {metadata['metrics'].get('psnr_db', float('nan')):.2f} dB)")
    return 0


def _prior_grid(prior, seed: int, resolution: int):
    from bridge import __version__
    from bridge.field.grid import sample_grid
    from bridge.prior.model import SURFACE_LEVEL, HeadCode
    from bridge.prior.params import describe

    if not 16 <= resolution <= 512:
        raise BridgeError(f"--res must be between 16 and 512 voxels, got {resolution}.")
    code = HeadCode.from_seed(seed)
    provenance = {"generator": "ProcHead prior", "seed": seed, "head": describe(code.params), "bridge_version": __version__}
    return sample_grid(prior.field_for(code), resolution, SURFACE_LEVEL, prior.generator.config.render.box_size, provenance)


def cmd_grid(args: argparse.Namespace) -> int:
    import mesh_export

    from bridge.prior.model import HeadPrior

    grid = _prior_grid(HeadPrior.load(args.weights), args.seed, args.res)
    print(f"wrote {mesh_export.write(grid, args.out)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import torch

    import mesh_export
    from bridge.images import save_gif, save_png, sheet
    from bridge.prior.model import PRIOR_RENDER, HeadPrior
    from bridge.prior.views import analytic_field, parts_to_colours, render

    out = Path(args.out)
    started = time.perf_counter()
    prior = HeadPrior.load(args.weights)
    code = _head_code(args.seed)
    yaws = [360.0 * i / args.frames for i in range(args.frames)]
    frames = []
    with torch.no_grad():
        field = prior.field_for(code)
        for yaw in yaws:
            frames.append(render(field, prior.render_config, yaw, 5.0, args.res)["rgb"][0])
            print(f"  turntable frame {len(frames)}/{len(yaws)}", flush=True)
        parts = render(analytic_field(code.params[None], with_parts=True), PRIOR_RENDER, 0.0, 0.0, args.res, channels=("parts",))
    written = [
        save_gif(frames, out / f"prior_seed{args.seed}_turntable.gif"),
        save_png(sheet(frames, columns=min(6, len(frames))), out / f"prior_seed{args.seed}_turntable.png"),
        save_png(frames[0], out / f"prior_seed{args.seed}_front.png"),
        save_png(parts_to_colours(parts["parts"])[0], out / f"prior_seed{args.seed}_parts.png"),
    ]
    grid = _prior_grid(prior, args.seed, args.grid)
    written.append(mesh_export.write(grid, out / f"prior_seed{args.seed}_field.npz"))
    mesh = mesh_export.grid_to_mesh(grid, mesh_export.ExportOptions(texture_size=1024))
    written.append(mesh_export.write_glb(mesh, out / f"prior_seed{args.seed}.glb"))
    print(f"demo finished in {time.perf_counter() - started:.1f} s; wrote:")
    for path in written:
        print(f"  {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import mesh_export
    from mesh_export.pipeline import MAX_TEXTURE_SIZE, MIN_TEXTURE_SIZE

    if args.out.suffix.lower() != ".glb":
        raise BridgeError(f"--out must name a .glb file, got {args.out}.")
    if args.texture_size and not MIN_TEXTURE_SIZE <= args.texture_size <= MAX_TEXTURE_SIZE:
        raise BridgeError(
            f"--texture-size must be 0 (vertex colours only) or between {MIN_TEXTURE_SIZE} "
            f"and {MAX_TEXTURE_SIZE}, got {args.texture_size}."
        )
    if args.max_triangles < 0:
        raise BridgeError(f"--max-triangles must be 0 (no decimation) or positive, got {args.max_triangles}.")
    started = time.perf_counter()
    try:
        grid = mesh_export.read(args.field)
        mesh = mesh_export.grid_to_mesh(
            grid, mesh_export.ExportOptions(texture_size=args.texture_size, max_triangles=args.max_triangles)
        )
    except mesh_export.FieldGridError as error:
        raise BridgeError(str(error)) from None
    try:
        path = mesh_export.write_glb(mesh, args.out)
    except OSError as error:
        raise BridgeError(f"Could not write {args.out} ({error.strerror or error}); choose a folder you can write to.") from None
    print(
        f"wrote {path} ({len(mesh.faces)} triangles, {mesh.masks.shape[1]} mask(s), "
        f"texture {args.texture_size or 'none'}) in {time.perf_counter() - started:.1f} s"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bridge", description="Text Edit inference bridge.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("render", help="render a prior head (or its ground truth / part labels) to a PNG")
    p.add_argument("--seed", type=int, default=0, help="head seed (picks parameters and noise)")
    p.add_argument("--yaw", type=float, default=0.0, help="degrees; positive moves the camera toward +x")
    p.add_argument("--pitch", type=float, default=0.0, help="degrees; positive raises the camera")
    p.add_argument("--res", type=int, default=256, help="image size in pixels")
    p.add_argument("--labels", action="store_true", help="render the ground-truth part map instead")
    p.add_argument("--analytic", action="store_true", help="render the analytic ground truth instead of the generator")
    p.add_argument("--out", type=Path, required=True)
    _add_weights_argument(p)
    p.set_defaults(run=cmd_render)

    p = commands.add_parser("train-prior", help="train the ProcHead generator (the bundled prior)")
    p.add_argument("--out", type=Path, required=True, help="folder for prochead.safetensors + .json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--plane-resolution", type=int, default=128)
    p.add_argument("--minutes", type=float, default=None, help="stop early after this many minutes")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(run=cmd_train_prior)

    p = commands.add_parser("grid", help="sample a prior head on a FieldGrid (.npz) for mesh export")
    p.add_argument("--seed", type=int, default=0, help="head seed")
    p.add_argument("--res", type=int, default=128, help="grid resolution (16..512)")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write")
    _add_weights_argument(p)
    p.set_defaults(run=cmd_grid)

    p = commands.add_parser(
        "demo", help="the main job on the embedded default (for now: prior head turntable -> field grid -> textured .glb)"
    )
    p.add_argument("--out", type=Path, default=Path("out"))
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--res", type=int, default=128, help="turntable image size")
    p.add_argument("--grid", type=int, default=128, help="field grid resolution for the mesh")
    _add_weights_argument(p)
    p.set_defaults(run=cmd_demo)

    p = commands.add_parser("export", help="turn a field grid (.npz) into a textured, masked glTF mesh (.glb)")
    p.add_argument("--field", type=Path, required=True, help="FieldGrid file written by the bridge (.npz)")
    p.add_argument("--out", type=Path, required=True, help="glTF binary to write (.glb)")
    p.add_argument("--texture-size", type=int, default=1024, help="baked texture side in texels; 0 = vertex colours only")
    p.add_argument("--max-triangles", type=int, default=200_000, help="decimate to at most this many triangles; 0 = keep all")
    p.set_defaults(run=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BridgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130

"""Commands of the picture family: `train-encoder` (once per generator) and `head-from-image`."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bridge.arguments import count, degrees, minutes, seed_number
from bridge.errors import BridgeError


def load_encoder(folder: Path | None, source):
    from bridge.invert.encoder import BUNDLED_ENCODER, ImageEncoder

    if folder is None and getattr(source, "name", "") != "ProcHead prior":
        raise BridgeError(
            "This generator has no bundled image encoder; train one with `python -m bridge train-encoder --generator ...` and pass --encoder."
        )
    return ImageEncoder.load(folder or BUNDLED_ENCODER, source.sha256, source.device)


def parse_crop(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    try:
        left, top, size = (int(v) for v in text.split(","))
    except ValueError:
        raise BridgeError(f"--crop takes LEFT,TOP,SIZE in pixels (e.g. 120,40,400), not {text!r}.") from None
    return left, top, size


def cmd_head_from_image(args: argparse.Namespace) -> int:
    import torch

    from bridge.head_file import write_head
    from bridge.images import load_picture, save_png, sheet
    from bridge.invert import head_from_picture
    from bridge.invert.refine import border_colour, render_on

    if args.threads:
        torch.set_num_threads(args.threads)
    crop = parse_crop(args.crop)
    picture = load_picture(args.image)  # a bad picture is refused before any model is loaded
    from bridge.cli import load_source

    source = load_source(args.weights, args.generator)
    encoder = load_encoder(args.encoder, source)
    if not 0 <= args.clip_weight <= 10:
        raise BridgeError(f"--clip-weight must be between 0 and 10, not {args.clip_weight}.")
    clip = None
    if args.refine and args.clip_weight > 0:
        from bridge.guidance.clip import load_clip

        clip = load_clip(args.clip)

    def report(p) -> None:
        if p.step % 5 == 0 or p.step == p.total:
            print(f"refine: step {p.step}/{p.total}  input view {p.psnr_db:.2f} dB  {p.seconds:.1f} s", flush=True)

    started = time.perf_counter()
    ws, description = head_from_picture(source, encoder, picture, crop, args.yaw, args.pitch, args.refine, clip, args.clip_weight, report)
    description["picture"] = Path(args.image).name
    write_head(args.out, ws, description, source.sha256)
    print(
        f"wrote {args.out} (view yaw {description['yaw']:+.1f}, pitch {description['pitch']:+.1f}; crop: {description['crop_from']}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    if args.preview:
        from bridge.invert.encoder import scaled_crop, square_picture

        with torch.no_grad():
            crop = tuple(description["crop"]) if description["crop"] else None
            square = square_picture(picture.pixels, 128, crop and scaled_crop(crop, picture.scale, picture.pixels.shape[-2:]))
            background = border_colour(square)
            views = [
                render_on(source, ws[None].to(source.device), yaw, 0.0, background, 128).cpu() for yaw in (description["yaw"], -30.0, 30.0)
            ]
        print(f"wrote {save_png(sheet([square, *views]), args.preview)} (picture | the head at its view, yaw -30, +30)")
    return 0


def cmd_train_encoder(args: argparse.Namespace) -> int:
    import torch

    from bridge.invert.align import measure_framing
    from bridge.invert.trainer import EncoderData, EncoderTrainer, EncoderTrainingConfig, frontal_renders, make_data, new_encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.heads < 16 or args.steps < 1 or args.batch < 1:
        raise BridgeError("--heads must be at least 16, --steps and --batch at least 1.")
    config = EncoderTrainingConfig(
        seed=args.seed,
        heads=args.heads,
        steps=args.steps,
        batch=args.batch,
        resolution=args.resolution,
        shard_heads=min(args.shard_heads, args.heads),
        time_limit_minutes=args.minutes,
    )
    from bridge.cli import load_source

    source = load_source(args.weights, args.generator)
    torch.manual_seed(config.seed)
    encoder = new_encoder(source, config)
    out = Path(args.out)
    started = time.perf_counter()

    from bridge.cli import print_training_progress as report

    if not make_data(source, config, out, on_progress=report):
        return 130
    trainer = EncoderTrainer(encoder, EncoderData.load(out, config), config)
    if trainer.resume(out):
        print(f"resuming from step {trainer.step} in {out}")
    if not trainer.fit(out, on_progress=report):
        print(f"stopped at step {trainer.step}; run the same command again to resume")
        return 130
    figures = trainer.validate()
    framing = measure_framing(frontal_renders(source, config))
    print(
        f"face framing: {framing}"
        if framing
        else "face framing: the face detector does not find this generator's faces reliably; photos take --crop or the centred square"
    )
    info = {
        "generator_sha256": source.sha256,
        "face_framing": framing.to_dict() if framing else None,
        "training": {
            "command": "python -m bridge " + shlex.join(sys.argv[1:]),
            "config": asdict(config),
            "figures": figures,
            "minutes_this_run": round((time.perf_counter() - started) / 60, 2),
            "history": trainer.history[-10:],
        },
    }
    encoder.save(out / "encoder", source.sha256, info)
    print(f"wrote the image encoder {out / 'encoder'} ({figures})")
    return 0


def register(commands, add_weights_argument, add_clip_argument) -> None:
    p = commands.add_parser(
        "head-from-image", help="a head from one picture (the image encoder, then --refine N steps); writes a head file"
    )
    p.add_argument("image", type=Path, help="a PNG or JPEG picture of a head, face to the camera")
    p.add_argument("--out", type=Path, required=True, help="the head file to write (.json); edit it with `edit --head`")
    p.add_argument("--refine", type=int, default=0, help="refinement steps against the picture (0-200; about 0.5 s each on 2 CPU cores)")
    p.add_argument(
        "--crop",
        default=None,
        help="LEFT,TOP,SIZE: the square of the picture that holds the head (default: around the face the detector finds, "
        "when the encoder knows its generator's face framing; else the centred square)",
    )
    p.add_argument("--yaw", type=degrees, default=None, help="the camera's yaw in degrees, if known (default: the encoder's estimate)")
    p.add_argument("--pitch", type=degrees, default=None, help="the camera's pitch in degrees, if known")
    p.add_argument("--preview", type=Path, default=None, help="PNG: the picture beside the head at three views")
    p.add_argument(
        "--clip-weight",
        type=float,
        default=0.0,
        help="weight of the CLIP feature loss in the refinement (default 0: pixels only, see docs/picture.md)",
    )
    p.add_argument("--encoder", type=Path, default=None, help="image encoder folder (default: the bundled prior's)")
    p.add_argument("--generator", type=Path, default=None, help="an imported EG3D generator instead of the bundled prior")
    p.add_argument("--threads", type=int, default=0)
    add_clip_argument(p)
    add_weights_argument(p)
    p.set_defaults(run=cmd_head_from_image)

    p = commands.add_parser("train-encoder", help="train the image encoder of a generator on its own renders (resumable)")
    p.add_argument("--out", type=Path, required=True, help="run folder: data shards, checkpoint, and the encoder in OUT/encoder")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--heads", type=count(2, 1_000_000), default=4096, help="random heads rendered for training (two random views each)")
    p.add_argument("--steps", type=count(), default=6000)
    p.add_argument("--batch", type=count(1, 65536), default=64)
    p.add_argument("--resolution", type=count(16, 256), default=64, help="the encoder's input size (a multiple of 16)")
    p.add_argument("--shard-heads", type=count(1, 4096), default=64)
    p.add_argument("--minutes", type=minutes, default=None, help="stop fitting after this many minutes (resumable)")
    p.add_argument("--generator", type=Path, default=None, help="an imported EG3D generator instead of the bundled prior")
    p.add_argument("--threads", type=int, default=0)
    add_weights_argument(p)
    p.set_defaults(run=cmd_train_encoder)

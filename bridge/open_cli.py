"""The command-line family of open-vocabulary edits: `train-open-edit`, and the prompt options of
`edit` (--edit/--mask without a module, --instruction, --image-prompt)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bridge.arguments import count, minutes, seed_number
from bridge.errors import BridgeError


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--edit", default=None, help='an edit prompt without a trained module, e.g. "green eyes" (with --mask)')
    p.add_argument("--mask", default=None, help='where the prompt edit applies, e.g. "eyes"')
    p.add_argument("--instruction", default=None, help='a sentence such as "make the eyes green" (parsed into --edit and --mask)')
    p.add_argument("--image-prompt", type=Path, default=None, help="a reference picture as the edit prompt (with --mask)")
    p.add_argument(
        "--texture-only",
        action="store_true",
        help="a prompt edit keeps the head's shape (default: prompts of colours only do, others may change it)",
    )
    p.add_argument("--open-model", type=Path, default=None, help="open edit model folder (default: the bundled one)")
    p.add_argument("--clip", default="bundled", help="the CLIP the open model was trained with (default: bundled)")


def wants_prompt(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) for name in ("edit", "instruction", "image_prompt"))


def prompt_pair(args: argparse.Namespace, clip) -> tuple[str, str]:
    """(edit, mask) from --instruction or from --edit/--image-prompt and --mask; says what it parsed."""
    if args.instruction:
        if args.edit or args.mask:
            raise BridgeError("Give either --instruction or --edit/--mask, not both.")
        from bridge.guidance.instructions import parse_instruction

        parsed = parse_instruction(args.instruction, clip)
        print(f"instruction {parsed.sentence!r} -> edit {parsed.edit!r} on {parsed.mask!r}")
        return parsed.edit, parsed.mask
    if not args.mask:
        raise BridgeError("A prompt edit needs --mask (where it applies), e.g. --mask eyes.")
    return args.edit or "", args.mask


def prompt_step(args: argparse.Namespace, source, strength: float):
    """The EditStep of the command's prompt edit, with the open model of `source`'s generator, and the CLIP."""
    from bridge.guidance.clip import load_clip
    from bridge.images import PICTURE_SIDE, load_image
    from bridge.lenerf.apply import EditStep
    from bridge.lenerf.open_model import BUNDLED_OPEN_MODEL, OpenEditModel

    if args.image_prompt and (args.edit or args.instruction):
        raise BridgeError("--image-prompt is itself the edit prompt: give it with --mask alone, without --edit or --instruction.")
    image = image_sha = None
    if args.image_prompt:  # a bad picture is refused before any model is loaded
        from bridge.field.weights import file_sha256

        image, image_sha = load_image(args.image_prompt, PICTURE_SIDE), file_sha256(args.image_prompt)
    clip = load_clip(args.clip)
    model = OpenEditModel.load(args.open_model or BUNDLED_OPEN_MODEL, source.sha256)
    model.check_clip(clip)
    edit, mask = prompt_pair(args, clip)
    if image is not None:
        edit = edit or f"like {args.image_prompt.name}"
    prompt_edit = model.edit(clip, edit, mask, geometry=False if args.texture_only else None, image=image, image_sha256=image_sha)
    if prompt_edit.note:
        print(prompt_edit.note, flush=True)
    return EditStep(prompt_edit, strength), clip


def cmd_train_open_edit(args: argparse.Namespace) -> int:
    import torch

    from bridge.field.weights import file_sha256
    from bridge.guidance.clip import load_clip
    from bridge.lenerf.open_trainer import OpenData, OpenTrainer, OpenTrainingConfig, make_data, validation_heads

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.heads < 8 or args.steps < 1:
        raise BridgeError("--heads must be at least 8 and --steps at least 1.")
    if not 16 <= args.resolution <= 256 or not 1 <= args.shard_heads <= 64:
        raise BridgeError("--resolution must be 16 to 256 pixels and --shard-heads 1 to 64.")
    config = OpenTrainingConfig(
        seed=args.seed,
        heads=args.heads,
        steps=args.steps,
        time_limit_minutes=args.minutes,
        pair_batch=args.pair_batch,
        mask_batch=args.mask_batch,
        resolution=args.resolution,
        shard_heads=args.shard_heads,
    )
    from bridge.cli import load_source

    source = load_source(args.weights, args.generator)
    clip = load_clip(args.clip)
    out = Path(args.out)
    started = time.perf_counter()

    from bridge.cli import print_training_progress as report

    if not make_data(source, clip, config, out, on_progress=report):
        return 130
    data = OpenData.load(out, config, source.generator)
    from bridge.lenerf.open_model import OpenEditModel

    torch.manual_seed(config.seed)
    heads = data.ws.shape[0]
    model = OpenEditModel.for_generator(
        source.generator, int(data.embeddings.shape[1]), source.sha256, retrieval_heads=heads - validation_heads(heads)
    )
    trainer = OpenTrainer(model, data, clip, config)
    if trainer.resume(out):
        print(f"resuming from step {trainer.step} in {out}")
    if not trainer.fit(out, on_progress=report):
        print(f"stopped at step {trainer.step}; run the same command again to resume")
        return 130
    figures = trainer.calibrate()
    if trainer.rank == 0:
        model.clip_identity = {"source": clip.source, **({"sha256": file_sha256(clip.weights_path)} if clip.weights_path else {})}
        model.info = {
            "training": {
                "command": "python -m bridge " + shlex.join(sys.argv[1:]),
                "config": asdict(trainer.config),
                "figures": figures,
                "minutes_this_run": round((time.perf_counter() - started) / 60, 2),
                "history": trainer.history[-20:],
            }
        }
        model.save(out / "model")
        print(f"wrote the open edit model {out / 'model'} ({figures})")
    if trainer.world > 1:
        torch.distributed.destroy_process_group()
    return 0


def register(commands, add_weights_argument, add_clip_argument) -> None:
    p = commands.add_parser(
        "train-open-edit",
        help="train the open-vocabulary edit model of a generator (any prompt edits at once afterwards); resumable, runs under torchrun",
    )
    p.add_argument("--out", type=Path, required=True, help="run folder: data shards, checkpoint, and the model in OUT/model")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--heads", type=count(2, 1_000_000), default=960, help="random heads rendered for training (a third get mask labels)")
    p.add_argument("--steps", type=count(), default=4000)
    p.add_argument("--pair-batch", type=count(1, 65536), default=256, help="head pairs per step (the global batch under torchrun)")
    p.add_argument("--mask-batch", type=count(1, 1 << 20), default=8192, help="labelled pixels per step (the global batch under torchrun)")
    p.add_argument("--minutes", type=minutes, default=None, help="stop fitting after this many minutes (resumable)")
    p.add_argument("--resolution", type=count(16, 256), default=64, help="training renders are this many pixels across")
    p.add_argument(
        "--shard-heads",
        type=count(1, 4096),
        default=8,
        help="heads per data shard (a shard is the unit of resuming and of sharing across processes)",
    )
    p.add_argument("--generator", type=Path, default=None, help="an imported EG3D generator instead of the bundled prior")
    p.add_argument("--threads", type=int, default=0)
    add_clip_argument(p)
    add_weights_argument(p)
    p.set_defaults(run=cmd_train_open_edit)

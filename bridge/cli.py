"""`python -m bridge COMMAND ...`: the bridge's command line.

Every command reports user errors as one sentence on stderr (exit status 2) and Ctrl-C as
"cancelled" (exit status 130), never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from bridge.arguments import count, degrees, minutes, positive, seed_number
from bridge.errors import BridgeError

MAX_THREADS = 256
MAX_RELEVANCE_PROMPT_CHARS = 100
"""As a mask prompt anywhere else."""
MAX_RELEVANCE_REFINE = 200
"""Sharpening rounds of `relevance --refine` (the edit engine uses 12; 200 take about 7 s)."""


def _add_weights_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="prior generator weights (.safetensors with its .json beside it); default: the bundled ProcHead",
    )


def _add_clip_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clip",
        default="bundled",
        help="CLIP model: 'bundled', 'local-dir:FOLDER', 'ARCH=WEIGHTS_FILE' or 'ARCH@TAG' (from open_clip's cache)",
    )


def _head_code(seed: int):
    from bridge.prior.model import HeadCode

    return HeadCode.from_seed(seed)


def cmd_render(args: argparse.Namespace) -> int:
    import torch

    from bridge.field.renderer import render_orbit
    from bridge.images import save_png
    from bridge.prior.model import PRIOR_RENDER, HeadPrior
    from bridge.prior.views import analytic_field, parts_to_colours

    if not 16 <= args.res <= 1024:
        raise BridgeError(f"--res must be between 16 and 1024 pixels, got {args.res}.")
    if (args.labels or args.analytic) and args.weights is not None:
        which = "--labels" if args.labels else "--analytic"
        raise BridgeError(f"{which} renders the procedural ground truth, which no weights change; leave --weights out.")
    code = _head_code(args.seed)
    with torch.no_grad():
        if args.labels or args.analytic:
            field = analytic_field(code.params[None], with_parts=args.labels)
            channel = "parts" if args.labels else "rgb"
            image = render_orbit(field, PRIOR_RENDER, args.yaw, args.pitch, args.res, channels=(channel,))[channel]
            image = parts_to_colours(image) if args.labels else image
        else:
            prior = HeadPrior.load(args.weights)
            image = render_orbit(prior.field_for(code), prior.render_config, args.yaw, args.pitch, args.res)["rgb"]
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
        eye_points=args.eye_points,
        init_weights=str(args.init) if args.init else None,
        **({"learning_rate": args.lr} if args.lr else {}),
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


def _demo_guidance(front, opacity, path: Path, params) -> Path:
    """What the bundled head CLIP sees in the front view: where each part is, and what it reads."""
    import torch

    from bridge.guidance.captions import mask_prompt_ensemble, zero_shot_prompts
    from bridge.guidance.clip import load_clip
    from bridge.guidance.relevance import PSEUDO_LABEL_OPTIONS, relevance_maps
    from bridge.images import overlay, save_png, sheet
    from bridge.prior.params import describe

    clip = load_clip("bundled")
    panels = [front]
    for part in ("eyes", "hair", "mouth", "nose"):
        relevance = relevance_maps(clip, front[None], mask_prompt_ensemble(part), foreground=opacity, **PSEUDO_LABEL_OPTIONS)[0]
        panels.append(overlay(front, relevance))
    truth = describe(params)
    with torch.no_grad():
        embedding = clip.encode_image(front[None])
        for attribute in ("eye_colour", "hair_colour", "mouth"):
            prompts = zero_shot_prompts(attribute)
            best = list(prompts)[int((embedding @ clip.encode_text(list(prompts.values())).T).argmax())]
            print(f"  head CLIP reads {attribute.replace('_', ' ')}: {best} (ground truth: {truth[attribute]})")
    return save_png(sheet(panels), path)


def cmd_demo(args: argparse.Namespace) -> int:
    import torch

    import mesh_export
    from bridge.field.renderer import render_orbit
    from bridge.images import save_gif, save_png, sheet
    from bridge.prior.model import PRIOR_RENDER, HeadPrior
    from bridge.prior.views import analytic_field, parts_to_colours

    out = Path(args.out)
    started = time.perf_counter()
    prior = HeadPrior.load(args.weights)
    code = _head_code(args.seed)
    yaws = [360.0 * i / args.frames for i in range(args.frames)]
    frames = []
    with torch.no_grad():
        field = prior.field_for(code)
        front_opacity = None
        for yaw in yaws:
            view = render_orbit(field, prior.render_config, yaw, 5.0, args.res)
            frames.append(view["rgb"][0])
            front_opacity = view["opacity"][:, 0] if front_opacity is None else front_opacity
            print(f"  turntable frame {len(frames)}/{len(yaws)}", flush=True)
        parts = render_orbit(analytic_field(code.params[None], with_parts=True), PRIOR_RENDER, 0.0, 0.0, args.res, channels=("parts",))
    written = [
        save_gif(frames, out / f"prior_seed{args.seed}_turntable.gif"),
        save_png(sheet(frames, columns=min(6, len(frames))), out / f"prior_seed{args.seed}_turntable.png"),
        save_png(frames[0], out / f"prior_seed{args.seed}_front.png"),
        save_png(parts_to_colours(parts["parts"])[0], out / f"prior_seed{args.seed}_parts.png"),
    ]
    written.append(_demo_guidance(frames[0], front_opacity, out / f"prior_seed{args.seed}_relevance.png", code.params))
    grid = _prior_grid(prior, args.seed, args.grid)
    written.append(mesh_export.write(grid, out / f"prior_seed{args.seed}_field.npz"))
    mesh = mesh_export.grid_to_mesh(grid, mesh_export.ExportOptions(texture_size=1024))
    written.append(mesh_export.write_glb(mesh, out / f"prior_seed{args.seed}.glb"))
    written += _demo_bridge(out, args.seed, args.grid)
    print(f"demo finished in {time.perf_counter() - started:.1f} s; wrote:")
    for path in written:
        print(f"  {path}")
    return 0


def _demo_bridge(out: Path, seed: int, grid: int) -> list[Path]:
    """The main job through the bridge: start it (with its token and cache under out/bridge, so the
    demo leaves the user's folders alone), edit a head with each shipped module and with all of
    them stacked, fetch the field grids and previews, export the stacked edit as .glb, stop it."""
    import mesh_export
    from bridge.service.client import BridgeClient
    from bridge.service.launcher import LocalBridge
    from bridge.service.security import read_token

    folder = out / "bridge"
    folder.mkdir(parents=True, exist_ok=True)
    print("starting the bridge ...", flush=True)
    with LocalBridge(folder / "config", folder / "cache", log=folder / "bridge.log") as bridge:
        client = BridgeClient(bridge.url, read_token(bridge.config))
        shipped = [m["name"] for m in client.modules() if m["bundled"] and m["usable"]]
        if not shipped:
            print("  the edit library has no shipped modules for this generator: skipping the edits")
            return []
        head = client.create_head(seed=seed)
        written = []
        for name, steps in [(n, [n]) for n in shipped] + [("stack", shipped)]:
            job = client.submit_edit(head["id"], [{"module": n} for n in steps], grid)
            print(f"  bridge job {job['id']}: {' + '.join(steps)}", flush=True)
            client.wait(job["id"], _ProgressPrinter())
            for result in ("field.npz", "preview.png"):
                written.append(client.download(job["id"], result, out / f"edit_seed{seed}_{name}_{result}"))
        stacked_field = written[-2]
        # the newest ability: prompts no module was trained for, edited at once by the open model
        # (a colour word the head CLIP was never taught is read as its caption word, and said so)
        prompts = (("green_eyes", {"edit": "green eyes", "mask": "eyes"}), ("instruction", {"instruction": "give her golden hair"}))
        for name, step in prompts:
            if "instruction" in step:
                pair = client.parse_instruction(step["instruction"])
                print(f"  '{step['instruction']}' reads as '{pair['edit']}' on '{pair['mask']}'", flush=True)
            job = client.submit_edit(head["id"], [step], grid)
            print(f"  bridge job {job['id']}: {step} (open model)", flush=True)
            done = client.wait(job["id"], _ProgressPrinter())
            print(f"  {done.get('info', {}).get('message', '')}", flush=True)
            written.append(client.download(job["id"], "preview.png", out / f"edit_seed{seed}_open_{name}_preview.png"))
        written += _demo_picture_head(client, out, grid)
        edited = mesh_export.read(stacked_field)
        mesh = mesh_export.grid_to_mesh(edited, mesh_export.ExportOptions(texture_size=1024))
        written.append(mesh_export.write_glb(mesh, out / f"edit_seed{seed}_stack.glb"))
    return written


def _demo_picture_head(client, out: Path, grid: int) -> list[Path]:
    """The newest ability: a head from a photo no one here made (scikit-image's astronaut, cropped
    to her head), refined against it, then edited by prompt."""
    import io

    from PIL import Image
    from skimage import data

    picture = io.BytesIO()
    Image.fromarray(data.astronaut()).crop((140, 0, 400, 260)).save(picture, "PNG")
    job = client.submit_head(picture.getvalue(), refine=20)
    print(f"  bridge job {job['id']}: a head from the astronaut photo (20 refinement steps)", flush=True)
    done = client.wait(job["id"], _ProgressPrinter())
    head = done["info"]["head"]
    print(f"  head {head['id']}: input view {head['input_view_psnr_db_encoded']} -> {head['input_view_psnr_db']} dB", flush=True)
    written = [client.download(job["id"], "preview.png", out / "picture_head_preview.png")]
    job = client.submit_edit(head["id"], [{"edit": "blue eyes", "mask": "eyes"}], grid)
    client.wait(job["id"], _ProgressPrinter())
    written.append(client.download(job["id"], "preview.png", out / "picture_head_blue_eyes_preview.png"))
    return written


def cmd_export(args: argparse.Namespace) -> int:
    import mesh_export
    from mesh_export.gltf import GltfError
    from mesh_export.pipeline import MAX_TEXTURE_SIZE, MIN_TEXTURE_SIZE, MIN_TRIANGLES

    if args.out.suffix.lower() != ".glb":
        raise BridgeError(f"--out must name a .glb file, got {args.out}.")
    if args.texture_size and not MIN_TEXTURE_SIZE <= args.texture_size <= MAX_TEXTURE_SIZE:
        raise BridgeError(
            f"--texture-size must be 0 (vertex colours only) or between {MIN_TEXTURE_SIZE} and {MAX_TEXTURE_SIZE}, got {args.texture_size}."
        )
    if args.max_triangles < 0 or 0 < args.max_triangles < MIN_TRIANGLES:
        raise BridgeError(f"--max-triangles must be 0 (no decimation) or at least {MIN_TRIANGLES}, got {args.max_triangles}.")
    started = time.perf_counter()
    try:
        grid = mesh_export.read(args.field)
        mesh = mesh_export.grid_to_mesh(grid, mesh_export.ExportOptions(texture_size=args.texture_size, max_triangles=args.max_triangles))
    except mesh_export.FieldGridError as error:
        raise BridgeError(str(error)) from None
    except MemoryError:
        raise BridgeError(
            "There is not enough free memory to mesh this field grid; close other programs or lower --texture-size."
        ) from None
    try:
        path = mesh_export.write_glb(mesh, args.out)
    except GltfError as error:
        raise BridgeError(str(error)) from None
    except OSError as error:
        raise BridgeError(f"Could not write {args.out} ({error.strerror or error}); choose a folder you can write to.") from None
    print(
        f"wrote {path} ({len(mesh.faces)} triangles, {mesh.masks.shape[1]} mask(s), "
        f"texture {args.texture_size or 'none'}) in {time.perf_counter() - started:.1f} s"
    )
    return 0


def cmd_train_clip(args: argparse.Namespace) -> int:
    import torch

    from bridge.guidance.headclip import HeadClipTrainingConfig, train_headclip

    if args.threads:
        torch.set_num_threads(args.threads)
    config = HeadClipTrainingConfig(
        seed=args.seed,
        heads=args.heads,
        steps=args.steps,
        batch=args.batch,
        time_limit_minutes=args.minutes,
        eval_every=args.eval_every,
    )
    command = "python -m bridge " + shlex.join(sys.argv[1:])

    def report(p) -> None:
        if p.stage == "render":
            if p.done % 200 < 8 or p.done == p.total:
                print(f"rendering training views {p.done}/{p.total}  {p.seconds / 60:.1f} min", flush=True)
            return
        if p.done % 25 == 0 or p.eval:
            line = f"step {p.done}/{p.total}  loss {p.loss:.4f}  {p.seconds / 60:.1f} min"
            if p.eval:
                line += f"  held-out attr_top1 {p.eval['attr_top1']:.3f}"
            print(line, flush=True)

    metadata = train_headclip(config, args.out, cache=args.cache, on_progress=report, command=command)
    print(f"wrote {args.out} (held-out attr_top1 {metadata['metrics']['attr_top1']:.3f})")
    return 0


def cmd_fetch_clip(args: argparse.Namespace) -> int:
    import os

    os.environ["HF_HUB_OFFLINE"] = "0"  # the one command that may download; must precede huggingface_hub
    from bridge.guidance.clip import import_open_clip, save_clip_folder

    open_clip = import_open_clip()
    if args.architecture not in open_clip.list_models():
        raise BridgeError(f"open_clip has no architecture {args.architecture!r}; e.g. ViT-B-32 or ViT-B-16.")
    if not open_clip.get_pretrained_cfg(args.architecture, args.tag):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(args.architecture)[:8])
        raise BridgeError(f"open_clip knows no pretrained tag {args.tag!r} for {args.architecture} (e.g. {tags}).")
    try:
        model = open_clip.create_model(args.architecture, pretrained=args.tag)
    except Exception as error:  # noqa: BLE001 -- network and registry errors of every kind
        raise BridgeError(
            f"Could not download {args.architecture}@{args.tag} ({str(error).splitlines()[0][:160]}); "
            "check the internet connection and the names in open_clip.list_pretrained()."
        ) from None
    config = open_clip.get_model_config(args.architecture)
    folder = save_clip_folder(model, config, dict(model.visual.preprocess_cfg), args.out, {"source": f"{args.architecture}@{args.tag}"})
    print(f"wrote {folder}; use it with --clip local-dir:{folder}")
    return 0


def cmd_relevance(args: argparse.Namespace) -> int:
    from bridge.guidance.clip import load_clip
    from bridge.guidance.relevance import relevance_maps
    from bridge.images import PICTURE_SIDE, load_image, overlay, save_png

    if not 0 <= args.refine <= MAX_RELEVANCE_REFINE:
        raise BridgeError(f"--refine takes 0 to {MAX_RELEVANCE_REFINE} rounds, not {args.refine}.")
    if not all(prompt.strip() for prompt in args.prompt):
        raise BridgeError("A --prompt is empty; name the part to find, e.g. --prompt eyes.")
    if any(len(prompt) > MAX_RELEVANCE_PROMPT_CHARS for prompt in args.prompt):
        raise BridgeError(f"A --prompt names a part in at most {MAX_RELEVANCE_PROMPT_CHARS} characters.")
    image = load_image(args.image, PICTURE_SIDE)  # the cheap check first
    clip = load_clip(args.clip)
    maps = relevance_maps(clip, image[None], args.prompt, args.negative or None, last_blocks=args.last_blocks, refine=args.refine)
    print(f"wrote {save_png(overlay(image, maps[0]), args.out)}")
    return 0


def _edit_module(name_or_folder: str, prior):
    """A module folder or library name; refused unless trained for `prior` (None: any generator)."""
    from bridge.lenerf.edit_module import EditLibrary, EditModule

    generator_sha256 = prior.sha256 if prior is not None else None
    folder = Path(name_or_folder).expanduser()
    if folder.is_dir():
        return EditModule.load(folder, generator_sha256)
    return EditLibrary(generator_sha256=generator_sha256).load(name_or_folder)


def cmd_train_edit(args: argparse.Namespace) -> int:
    import torch

    from bridge.guidance.clip import load_clip
    from bridge.guidance.losses import ClipLossConfig
    from bridge.images import PICTURE_SIDE, load_image, save_png, sheet
    from bridge.lenerf.edit_module import EditSpec
    from bridge.lenerf.recipes import LENERF_DEFAULTS, recipe_for
    from bridge.lenerf.trainer import EditTrainer, EditTrainingConfig
    from bridge.prior.model import HeadPrior

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.edit.strip() and not args.edit_image:
        raise BridgeError('Give an edit prompt (--edit "blue eyes") or a reference picture (--edit-image).')
    from bridge.service.settings import LIMITS

    if len(args.edit) > LIMITS.edit_prompt_chars or max(len(args.mask), len(args.label_baseline or "")) > LIMITS.mask_prompt_chars:
        raise BridgeError(
            f"Prompts are limited to {LIMITS.edit_prompt_chars} characters (edit) and {LIMITS.mask_prompt_chars} (mask, label baseline); shorten them."
        )
    if args.yaw_range is not None and not 0 < args.yaw_range <= 180:
        raise BridgeError("--yaw-range is in degrees either side of the front: give a value above 0 and up to 180.")
    if args.resolution is not None and not 16 <= args.resolution <= 256:
        raise BridgeError("--resolution must be between 16 and 256 pixels (64 is the default).")
    for option, weight in (("--residual-weight", args.residual_weight), ("--preservation-weight", args.preservation_weight)):
        if weight is not None and not 0 <= weight <= 1000:
            raise BridgeError(f"{option} must be between 0 and 1000; leave it out for the default.")
    target = None
    image_sha = None
    if args.edit_image:
        from bridge.field.weights import file_sha256

        target = load_image(args.edit_image, PICTURE_SIDE)
        image_sha = file_sha256(args.edit_image)
    prior = HeadPrior.load(args.weights)
    clip = load_clip(args.clip)
    edit = args.edit.strip()
    if edit:
        from bridge.guidance.colours import edit_prompt_for

        edit, note = edit_prompt_for(clip, edit, args.mask.strip())
        if note:
            print(note, flush=True)
    spec = EditSpec(edit or f"like {args.edit_image.name}", args.mask.strip(), args.geometry, image_sha)
    given = {
        "yaw_range": None if args.yaw_range is None else (-args.yaw_range, args.yaw_range),
        "resolution": args.resolution,
        "residual_weight": args.residual_weight,
        "preservation_weight": args.preservation_weight,
        "geometry_labels": args.geometry_labels,
        "label_baseline": args.label_baseline.strip() if args.label_baseline else None,
    }
    recipe = recipe_for(spec) if args.recipe == "auto" else LENERF_DEFAULTS
    chosen = {**recipe.options, **{name: value for name, value in given.items() if value is not None}}
    clip_loss = args.clip_loss or recipe.clip_loss
    if args.from_open_model and args.from_module:
        raise BridgeError("Start from the open model or from an edit module, not both.")
    if args.from_open_model or args.from_module:
        chosen["mapper_warmup"] = 0.0  # the starting mask already lets CLIP reach the mapper
    config = EditTrainingConfig(seed=args.seed, steps=args.steps, time_limit_minutes=args.minutes, alternate=not args.joint, **chosen)
    print(f"recipe: {recipe.name}; " + ", ".join([f"{name}={value}" for name, value in chosen.items()] + [f"clip_loss={clip_loss}"]))
    trainer = EditTrainer(
        prior.generator, prior.sample_ws, clip, spec, config, clip_loss=ClipLossConfig(kind=clip_loss), edit_target=target
    )
    out = Path(args.out)
    command = "python -m bridge " + shlex.join(sys.argv[1:])

    def report(p) -> None:
        if p.step % 10 == 0 or p.step == p.total:
            eta = p.seconds / max(p.step - first_step, 1) * (p.total - p.step)
            terms = "  ".join(f"{k} {v:.4f}" for k, v in p.losses.items() if k in ("total", "clip", "mask"))
            print(f"step {p.step}/{p.total}  {terms}  {p.seconds / 60:.1f} min  eta {eta / 60:.1f} min", flush=True)
        if p.images and (p.step % 100 == 0 or p.step == p.total):
            images = p.images
            panels = [images["source"], images["edited"], images["mask"].expand(3, -1, -1), images["pseudo_label"].expand(3, -1, -1)]
            save_png(sheet([x.clamp(0, 1) for x in panels]), out / "training_preview.png")

    first_step = 0
    if trainer.resume(out):
        first_step = trainer.step
        print(f"resuming from step {trainer.step} in {out}")
    elif args.from_module:
        started_from = _edit_module(args.from_module, None)
        if started_from.spec != spec:
            raise BridgeError(
                f"--from-module {args.from_module} edits {started_from.spec.edit!r} on {started_from.spec.mask!r}; "
                "give the same --edit, --mask and --geometry, or leave --from-module out."
            )
        trainer.modules.load_state_dict(started_from.modules.state_dict())
        print(f"starting from the edit module {args.from_module} (trained for generator {started_from.generator_sha256[:12]})", flush=True)
    elif args.from_open_model:
        from bridge.lenerf.open_model import BUNDLED_OPEN_MODEL, OpenEditModel
        from bridge.lenerf.open_trainer import distil_prompt_edit

        open_model = OpenEditModel.load(
            BUNDLED_OPEN_MODEL if args.from_open_model == "bundled" else Path(args.from_open_model), prior.sha256
        )
        open_model.check_clip(clip)
        prompt = open_model.edit(clip, spec.edit, spec.mask, geometry=spec.geometry, image=target, image_sha256=image_sha)
        started = time.perf_counter()
        figures = distil_prompt_edit(trainer.modules, prompt, prior.generator, prior.sample_ws, seed=args.seed)
        print(f"started from the open model's edit in {time.perf_counter() - started:.0f} s ({figures})", flush=True)
    module = trainer.train(out, prior.sha256, on_progress=report, command=command)
    if module is None:
        print(f"stopped at step {trainer.step}; run the same command again to resume")
        return 130
    print(f"wrote the edit module {out}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    import torch

    import mesh_export
    from bridge import __version__
    from bridge.field.grid import sample_grid
    from bridge.images import save_png
    from bridge.lenerf.apply import EditStep, apply_edits
    from bridge.prior.model import SURFACE_LEVEL, HeadPrior
    from bridge.prior.params import describe
    from bridge.service.settings import LIMITS

    if not LIMITS.grid_min <= args.grid <= LIMITS.grid_max:
        raise BridgeError(f"--grid must be between {LIMITS.grid_min} and {LIMITS.grid_max} voxels, got {args.grid}.")
    from bridge.open_cli import prompt_step, wants_prompt

    if not args.module and not wants_prompt(args):
        raise BridgeError(
            'Say what to edit: --module NAME, --edit "green eyes" --mask eyes, --instruction "make the eyes green" or --image-prompt PICTURE --mask hair.'
        )
    if len(args.mask_module or []) > len(args.module or []):
        raise BridgeError("Each --mask-module goes with the --module before it (its attention field masks that module's edit).")
    if args.head is not None and args.seed is not None:
        raise BridgeError("Give either --seed or --head (a head file), not both.")
    stacked = len(args.module or []) + wants_prompt(args)
    if stacked > LIMITS.stack_steps:
        raise BridgeError(f"An edit stacks at most {LIMITS.stack_steps} steps (--module and a prompt), not {stacked}.")
    prior = HeadPrior.load(args.weights)
    modules = [_edit_module(m, prior) for m in args.module or []]
    masks = [_edit_module(m, prior) if m else None for m in (args.mask_module or [])]
    steps = [EditStep(m, args.strength, masks[i] if i < len(masks) else None) for i, m in enumerate(modules)]
    clip = None
    if wants_prompt(args):
        step, clip = prompt_step(args, prior, args.strength)
        steps.append(step)
    if args.head is not None:
        from bridge.head_file import read_head

        head_ws, head = read_head(args.head, prior.generator.num_ws, prior.generator.config.w_dim, prior.sha256)
        ws, head_provenance = head_ws[None], {"head_file": args.head.name, "head": head}
    else:
        seed = args.seed or 0
        code = _head_code(seed)
        with torch.no_grad():
            ws = prior.ws(code.params[None], code.noise[None])
        head_provenance = {"seed": seed, "head": describe(code.params)}
    started = time.perf_counter()
    with torch.no_grad():
        field, edited_ws = apply_edits(prior.generator, ws, steps)
        if clip is not None:
            from bridge.lenerf.open_model import clip_gain, describe_gain

            before = prior.view(prior.generator.field(ws), ws, args.yaw, 128)["rgb"][0]
            after = prior.view(field, edited_ws, args.yaw, 128)["rgb"][0]
            print(describe_gain(clip_gain(clip, before, after, steps[-1].module.spec.edit), steps[-1].module.spec.edit))
        if args.preview:
            picture, *_ = prior.before_after(prior.generator.field(ws), field, ws, edited_ws, args.yaw, 256)
            print(f"wrote {save_png(picture, args.preview)}")
        provenance = {
            "generator": "ProcHead prior",
            **head_provenance,
            "bridge_version": __version__,
            "edits": [
                {
                    "edit": s.module.spec.edit,
                    "mask": s.module.spec.mask,
                    "strength": s.strength,
                    "model": getattr(s.module, "source", "module"),
                }
                for s in steps
            ],
        }
        grid = sample_grid(field, args.grid, SURFACE_LEVEL, prior.render_config.box_size, provenance)
    print(f"wrote {mesh_export.write(grid, args.out)} ({grid.edit_steps} mask(s)) in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bridge.service.server import serve

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return serve(
        args.host, args.port, args.device, args.allow_remote, args.clip, args.generator, args.open_model, args.noise_mode, args.encoder
    )


def load_source(weights: Path | None, generator: Path | None):
    """The heads a command works on: an imported EG3D generator (`--generator`), else the prior (`--weights`)."""
    if generator is not None:
        from bridge.eg3d.heads import EG3DHeads

        return EG3DHeads.load(generator)
    from bridge.prior.model import HeadPrior

    return HeadPrior.load(weights)


def print_training_progress(p) -> None:
    """A training command's progress (phase "data" by shard, "fit" by step), every 5 shards and 100 steps."""
    if p.phase == "data" and (p.done % 5 == 0 or p.done == p.total):
        print(f"data: shard {p.done}/{p.total}  {p.seconds / 60:.1f} min", flush=True)
    if p.phase == "fit" and (p.done % 100 == 0 or p.done == p.total):
        terms = "  ".join(f"{k} {v:.4f}" for k, v in p.losses.items())
        print(f"fit: step {p.done}/{p.total}  {terms}  {p.seconds / 60:.1f} min", flush=True)


class _ProgressPrinter:
    """Prints a job's state when its stage or whole percent changes."""

    def __init__(self):
        self.last = None

    def __call__(self, job: dict) -> None:
        line = f"  {job['state']:9s} {100 * job['progress']:3.0f}%  {job['stage']}"
        if line != self.last:
            eta = f"  (about {job['eta_s']:.0f} s left)" if job.get("eta_s") is not None else ""
            print(line + eta, flush=True)
            self.last = line


def cmd_client(args: argparse.Namespace) -> int:
    import json

    from bridge.service.client import BridgeClient

    client = BridgeClient(args.url, args.token)
    if args.action == "info":
        print(json.dumps(client.info(), indent=2))
    elif args.action == "modules":
        for m in client.modules():
            state = "ok" if m["usable"] else f"unusable: {m['problem']}"
            print(f"{m['name']:28s} {m['edit']!r} on {m['mask']!r}{' (geometry)' if m['geometry'] else ''}  {state}")
    elif args.action == "jobs":
        for job in client.jobs():
            print(f"{job['id']}  {job['kind']:5s} {job['state']:9s} {100 * job['progress']:5.1f}%  {job['error'] or job['stage']}")
    elif args.action == "cancel":
        print(client.cancel(args.job)["state"])
    elif args.action == "train":
        job = client.submit_training(args.edit, args.mask, geometry=args.geometry, steps=args.steps, minutes=args.minutes)
        print(f"training job {job['id']}")
        job = client.wait(job["id"], _ProgressPrinter(), poll_s=5.0)
        print(f"trained the edit module {job['info'].get('module')}")
    elif args.action == "edit":
        steps = [{"module": name, "strength": args.strength} for name in args.module or []]
        if args.instruction:
            pair = client.parse_instruction(args.instruction)
            print(f"instruction {args.instruction!r} -> edit {pair['edit']!r} on {pair['mask']!r}")
            steps.append({"edit": pair["edit"], "mask": pair["mask"], "strength": args.strength})
        elif args.edit or args.mask:
            if not (args.edit and args.mask and args.edit.strip() and args.mask.strip()):
                raise BridgeError(
                    'A prompt edit needs both --edit (what to change) and --mask (where), e.g. --edit "green eyes" --mask eyes.'
                )
            steps.append({"edit": args.edit, "mask": args.mask, "strength": args.strength})
        if not steps:
            raise BridgeError('Say what to edit: --module NAME, --edit "green eyes" --mask eyes, or --instruction "make the eyes green".')
        head = client.create_head(seed=args.seed)
        job = client.submit_edit(head["id"], steps, args.grid, args.yaw)
        print(f"edit job {job['id']} on head {head['id']} (seed {args.seed})")
        done = client.wait(job["id"], _ProgressPrinter())
        if done.get("info", {}).get("message"):
            print(done["info"]["message"])
        for name in ("field.npz", "preview.png", "mask.png"):
            print(f"wrote {client.download(job['id'], name, args.out / name)}")
    return 0


def cmd_inspect_eg3d(args: argparse.Namespace) -> int:
    """What an EG3D checkpoint holds, read without running any code from it."""
    import json

    from bridge.eg3d.checkpoint import PersistentRecord, flat_state, generator_record, generator_settings, read_checkpoint

    record = generator_record(read_checkpoint(args.checkpoint), args.checkpoint)
    tensors = flat_state(record)
    if isinstance(record, PersistentRecord):
        print(f"generator: {record.class_name} (module source sha256 {record.module_src_sha256[:16]}..., not run)")
    else:
        print("generator: converted .pth state dict")
    kwargs, rendering, _ = generator_settings(record)
    print(f"tensors: {len(tensors)}, parameters and buffers: {sum(t.numel() for t in tensors.values()):,}")
    print("init kwargs: " + json.dumps(kwargs, default=str, sort_keys=True))
    print("rendering kwargs: " + json.dumps(rendering, default=str, sort_keys=True))
    if args.tensors:
        for name, tensor in sorted(tensors.items()):
            print(f"  {name:64s} {str(tuple(tensor.shape)):20s} {str(tensor.dtype).removeprefix('torch.')}")
    return 0


def cmd_import_eg3d(args: argparse.Namespace) -> int:
    from bridge.eg3d.convert import import_checkpoint
    from bridge.field.weights import read_metadata

    weights = import_checkpoint(args.checkpoint, args.out)
    metadata = read_metadata(weights, "import the checkpoint again")
    config = metadata["config"]
    superresolution = config.get("superresolution")
    pictures = "no super-resolution" if superresolution is None else f"super-resolution {superresolution['kind']}"
    filters = sum(1 for name in metadata["skipped_tensors"] if name.endswith(".resample_filter"))
    others = len(metadata["skipped_tensors"]) - filters
    print(
        f"wrote {weights} (+ .json): planes {config['plane_channels']} x {config['plane_resolution']}^2, "
        f"w {config['w_dim']}, {pictures}; left out {filters} FIR filter buffers (fixed filters)"
        + (f" and {others} other tensors" if others else "")
    )
    for note in metadata.get("notes", []):
        print(f"note: {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bridge", description="Text Edit inference bridge.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("render", help="render a prior head (or its ground truth / part labels) to a PNG")
    p.add_argument("--seed", type=seed_number, default=0, help="head seed (picks parameters and noise)")
    p.add_argument("--yaw", type=degrees, default=0.0, help="degrees; positive moves the camera toward +x")
    p.add_argument("--pitch", type=degrees, default=0.0, help="degrees; positive raises the camera")
    p.add_argument("--res", type=int, default=256, help="image size in pixels")
    p.add_argument("--labels", action="store_true", help="render the ground-truth part map instead")
    p.add_argument("--analytic", action="store_true", help="render the analytic ground truth instead of the generator")
    p.add_argument("--out", type=Path, required=True)
    _add_weights_argument(p)
    p.set_defaults(run=cmd_render)

    p = commands.add_parser("train-prior", help="train the ProcHead generator (the bundled prior)")
    p.add_argument("--out", type=Path, required=True, help="folder for prochead.safetensors + .json")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--steps", type=count(), default=8000)
    p.add_argument("--batch", type=count(1, 4096), default=4)
    p.add_argument("--plane-resolution", type=count(8, 1024), default=128)
    p.add_argument("--minutes", type=minutes, default=None, help="stop early after this many minutes")
    p.add_argument("--eval-every", type=count(), default=1000)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--init", type=Path, default=None, help="fine-tune these prior weights instead of starting empty")
    p.add_argument("--eye-points", type=count(0, 1_000_000), default=0, help="extra surface points per head on the eyeballs' fronts")
    p.add_argument("--lr", type=positive(1.0), default=None, help="peak learning rate (default 3e-3; ~1e-3 to fine-tune)")
    p.set_defaults(run=cmd_train_prior)

    p = commands.add_parser("grid", help="sample a prior head on a FieldGrid (.npz) for mesh export")
    p.add_argument("--seed", type=seed_number, default=0, help="head seed")
    p.add_argument("--res", type=int, default=128, help="grid resolution (16..512)")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write")
    _add_weights_argument(p)
    p.set_defaults(run=cmd_grid)

    p = commands.add_parser(
        "demo",
        help="the main job on the embedded default: a prior head (turntable, relevance maps, textured .glb), then the shipped edits through the bridge",
    )
    p.add_argument("--out", type=Path, default=Path("out"))
    p.add_argument("--seed", type=seed_number, default=3)
    p.add_argument("--frames", type=count(1, 360), default=12)
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

    p = commands.add_parser("train-clip", help="train the bundled head CLIP on ProcHead renders")
    p.add_argument("--out", type=Path, required=True, help="open_clip folder to write (config + safetensors)")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--heads", type=count(1, 1_000_000), default=3000, help="training heads (one random view each)")
    p.add_argument("--steps", type=count(), default=3000)
    p.add_argument("--batch", type=count(1, 65536), default=128)
    p.add_argument("--minutes", type=minutes, default=None, help="stop training after this many minutes (rendering the data comes on top)")
    p.add_argument("--eval-every", type=count(), default=250)
    p.add_argument("--cache", type=Path, default=None, help="keep the rendered training views in this .npz")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(run=cmd_train_clip)

    p = commands.add_parser("fetch-clip", help="download open_clip weights once (needs internet) into a local folder")
    p.add_argument("architecture", help="open_clip architecture, e.g. ViT-B-32 or ViT-B-16")
    p.add_argument("tag", help="pretrained tag, e.g. laion2b_s34b_b79k (see open_clip.list_pretrained())")
    p.add_argument("--out", type=Path, required=True, help="folder to write (then: --clip local-dir:FOLDER)")
    p.set_defaults(run=cmd_fetch_clip)

    p = commands.add_parser("relevance", help="a CLIP relevance map of a mask prompt over an image (PNG)")
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--prompt", action="append", required=True, help="mask prompt; repeat for an ensemble")
    p.add_argument("--negative", action="append", default=[], help="negative mask prompt; repeatable")
    p.add_argument("--last-blocks", type=count(1, 1000), default=None, help="aggregate only the last N attention blocks")
    p.add_argument("--refine", type=int, default=0, help="rounds of sharpening with the picture's colour edges (the edit engine uses 12)")
    p.add_argument("--out", type=Path, required=True)
    _add_clip_argument(p)
    p.set_defaults(run=cmd_relevance)

    p = commands.add_parser("train-edit", help="train an edit (LENeRF modules) on the bundled prior")
    p.add_argument("--edit", default="", help='what to change, e.g. "blue eyes"')
    p.add_argument("--edit-image", type=Path, default=None, help="a reference picture instead of (or with) --edit")
    p.add_argument("--mask", required=True, help='where, e.g. "eyes"')
    p.add_argument("--geometry", action="store_true", help="allow shape changes (deformation network), e.g. open mouth")
    p.add_argument("--out", type=Path, required=True, help="folder of the edit module (also its checkpoint: resumable)")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--steps", type=count(), default=1200)
    p.add_argument("--minutes", type=minutes, default=None, help="stop training after this many minutes")
    p.add_argument(
        "--yaw-range",
        type=float,
        default=None,
        help="training cameras turn up to this many degrees either side of the front (default 35; a part seen all round, like hair, wants 90)",
    )
    p.add_argument(
        "--joint",
        action="store_true",
        help="update the mapper and the attention field every step (default: on alternate steps, as LENeRF's code does)",
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="training renders are this many pixels across (default 64; time per step grows with its square)",
    )
    p.add_argument(
        "--residual-weight",
        type=float,
        default=None,
        help="weight of the latent residual's length (LENeRF: 0.02; the recipes of edits that must move w far, like a hair colour, 0.002)",
    )
    p.add_argument(
        "--preservation-weight",
        type=float,
        default=None,
        help="weight of keeping the render unchanged outside the mask (default 0.3; the identity term LENeRF fills with ArcFace)",
    )
    p.add_argument(
        "--geometry-labels",
        choices=("both", "target"),
        default=None,
        help="a geometry edit's mask labels from the source and the edited render (both, LENeRF, default) or the edited "
        "render alone (target: for a part the CLIP finds only once it is edited, like an open mouth); default: the recipe's",
    )
    p.add_argument(
        "--label-baseline",
        default=None,
        metavar="PROMPT",
        help="take this prompt's relevance off the mask prompt's before labelling, e.g. \"a face\": removes the eyes, "
        "which a small CLIP finds relevant whatever it is asked (the recipes use it for every part but the eyes)",
    )
    p.add_argument(
        "--clip-loss",
        choices=("contrastive", "directional", "global"),
        default=None,
        help="contrastive (LENeRF), directional, or global (StyleCLIP: the picture must match the prompt; "
        "for changes the direction losses cannot reach step by step, like black hair to red); default: the recipe's",
    )
    p.add_argument(
        "--recipe",
        choices=("auto", "lenerf"),
        default="auto",
        help="auto (default): start from the settings the shipped edit of the same part and kind was trained with "
        "(bridge/lenerf/recipes.py); lenerf: LENeRF's defaults. Options given here win either way",
    )
    p.add_argument(
        "--from-open-model",
        nargs="?",
        const="bundled",
        default=None,
        metavar="FOLDER",
        help="start from the open model's edit of the same prompts (the bundled model, or FOLDER) instead of the identity edit",
    )
    p.add_argument(
        "--from-module",
        default=None,
        metavar="MODULE",
        help="start from this edit module's weights (a folder or library name with the same prompts), e.g. to carry "
        "a shipped edit over to a retrained prior in fewer steps",
    )
    p.add_argument("--threads", type=int, default=0)
    _add_clip_argument(p)
    _add_weights_argument(p)
    p.set_defaults(run=cmd_train_edit)

    p = commands.add_parser("edit", help="apply edit modules to a prior head; write its field grid (.npz) and a preview")
    p.add_argument("--seed", type=seed_number, default=None, help="head seed (default 0)")
    p.add_argument("--head", type=Path, default=None, help="a head file (from head-from-image) instead of a seed")
    p.add_argument("--module", action="append", default=None, help="edit module folder or library name; repeat to stack")
    p.add_argument("--mask-module", action="append", default=None, help="take the mask of this module instead (partial edit)")
    p.add_argument("--strength", type=float, default=1.0, help="0 .. 1.5")
    p.add_argument("--grid", type=int, default=128, help="field grid resolution (64..512)")
    p.add_argument("--yaw", type=degrees, default=20.0, help="preview camera yaw (degrees)")
    p.add_argument("--out", type=Path, required=True, help="the field grid to write (.npz)")
    p.add_argument("--preview", type=Path, default=None, help="PNG: source | edited | mask overlay")
    from bridge import open_cli

    open_cli.add_prompt_arguments(p)
    _add_weights_argument(p)
    p.set_defaults(run=cmd_edit)
    open_cli.register(commands, _add_weights_argument, _add_clip_argument)
    from bridge import picture_cli

    picture_cli.register(commands, _add_weights_argument, _add_clip_argument)

    from bridge.service.settings import DEFAULT_HOST, DEFAULT_PORT

    p = commands.add_parser("serve", help="run the bridge as a local HTTP service (for Blender and scripts)")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (loopback by default)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--allow-remote", action="store_true", help="allow a --host other than loopback")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--generator",
        type=Path,
        help="an imported EG3D generator (DIR/generator.safetensors from import-eg3d) instead of the bundled prior",
    )
    p.add_argument(
        "--noise-mode",
        default="const",
        choices=("const", "random", "none"),
        help="an EG3D generator's plane noise, as EG3D's noise_mode: const (the stored noise: a seed is "
        "always the same head), random (fresh each evaluation), none",
    )
    p.add_argument(
        "--open-model",
        type=Path,
        default=None,
        help="the open edit model for the generator (default: the bundled prior's; train-open-edit writes OUT/model)",
    )
    p.add_argument(
        "--encoder",
        type=Path,
        default=None,
        help="the image encoder for the generator, for heads from pictures (default: the bundled prior's; train-encoder writes OUT/encoder)",
    )
    _add_clip_argument(p)
    p.set_defaults(run=cmd_serve)

    p = commands.add_parser("client", help="talk to a running bridge: info, modules, jobs, edit, train, cancel")
    p.add_argument("--url", default=None, help=f"bridge address (default http://{DEFAULT_HOST}:{DEFAULT_PORT})")
    p.add_argument("--token", default=None, help="default: the token in the bridge's config folder")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("info", help="the bridge's version, device, models and limits")
    actions.add_parser("modules", help="the edit library")
    actions.add_parser("jobs", help="jobs and their states")
    a = actions.add_parser("cancel", help="cancel a job")
    a.add_argument("job")
    a = actions.add_parser("edit", help="edit a prior head with library modules and/or any prompt; download the field grid and previews")
    a.add_argument("--seed", type=seed_number, default=0)
    a.add_argument("--module", action="append", default=None, help="library module name; repeat to stack")
    a.add_argument("--edit", default=None, help="any edit prompt (with --mask): the open model edits it at once")
    a.add_argument("--mask", default=None, help="where the prompt edit applies")
    a.add_argument("--instruction", default=None, help='a sentence such as "make the eyes green"')
    a.add_argument("--strength", type=float, default=1.0)
    a.add_argument("--grid", type=int, default=128)
    a.add_argument("--yaw", type=degrees, default=20.0)
    a.add_argument("--out", type=Path, default=Path("out"), help="folder for field.npz, preview.png, mask.png")
    a = actions.add_parser("train", help="train a new edit on the bridge (resumes if the same prompts were started)")
    a.add_argument("--edit", required=True)
    a.add_argument("--mask", required=True)
    a.add_argument("--geometry", action="store_true")
    a.add_argument("--steps", type=count(), default=800)
    a.add_argument("--minutes", type=minutes, default=None)
    p.set_defaults(run=cmd_client)
    p = commands.add_parser("inspect-eg3d", help="list what an EG3D .pkl (or converted .pth) holds, without running code from it")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--tensors", action="store_true", help="also list every tensor's name, shape and dtype")
    p.set_defaults(run=cmd_inspect_eg3d)

    p = commands.add_parser(
        "import-eg3d", help="convert an EG3D .pkl (or .pth) generator to the bridge's format, without running code from it"
    )
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for generator.safetensors + generator.json")
    p.set_defaults(run=cmd_import_eg3d)
    return parser


PICTURE_OUTPUTS = {"render": ("out",), "relevance": ("out",), "edit": ("preview",), "head-from-image": ("preview",)}
"""Per command, the options that name a picture to write (its format from the file's extension)."""
FILE_OUTPUTS = {
    "render": ("out",),
    "relevance": ("out",),
    "grid": ("out",),
    "edit": ("out", "preview"),
    "head-from-image": ("out", "preview"),
}
"""Per command, the options that name one file to write (other commands' --out is a folder)."""
FOLDER_OUTPUTS = (
    "demo",
    "client",
    "train-prior",
    "train-clip",
    "fetch-clip",
    "train-edit",
    "train-open-edit",
    "train-encoder",
    "import-eg3d",
)
"""Commands whose --out is a folder to write into."""


def _check_output_paths(args: argparse.Namespace) -> None:
    """Before any work: a file to write must not be a folder, a folder to write into must not be a
    file, and a picture's extension must be one PIL writes (render --out r.xyz failed only after
    the render; edit --preview after the edit; client edit --out FILE after the edit)."""
    from PIL import Image

    pictures = PICTURE_OUTPUTS.get(getattr(args, "command", None), ())
    for name in FILE_OUTPUTS.get(getattr(args, "command", None), ()):
        path = getattr(args, name, None)
        if not isinstance(path, Path):
            continue
        if path.is_dir():
            raise BridgeError(f"--{name} {path} is a folder; name the file to write.")
        if name in pictures and path.suffix.lower() not in Image.registered_extensions():
            raise BridgeError(f"--{name} {path} needs a picture extension (.png or .jpg).")
        _check_writable(name, path)
    folder = getattr(args, "out", None) if getattr(args, "command", None) in FOLDER_OUTPUTS else None
    if isinstance(folder, Path) and folder.exists() and not folder.is_dir():
        raise BridgeError(f"--out {folder} is a file; name a folder to write into.")
    if isinstance(folder, Path):
        _check_writable("out", folder)


def _check_writable(name: str, path: Path) -> None:
    """The path, if it exists, or else the nearest folder above it that does (the rest is made) takes writing."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path.absolute() and not existing.is_dir():
        raise BridgeError(f"--{name} {path}: {existing} is a file, not a folder; choose another path.")
    if not os.access(existing, os.W_OK):
        raise BridgeError(f"--{name} {path}: {existing} cannot be written to; choose another path.")


def main(argv: list[str] | None = None) -> int:
    logging.getLogger().addHandler(logging.NullHandler())  # libraries' log lines are not for users
    args = build_parser().parse_args(argv)
    try:
        _check_output_paths(args)
        threads = getattr(args, "threads", 0)
        if threads is not None and not 0 <= threads <= MAX_THREADS:
            raise BridgeError(f"--threads must be 0 (torch's choice) or 1 to {MAX_THREADS}, not {threads}.")
        return args.run(args)
    except BridgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: not enough memory for this; try a smaller resolution, grid or texture, or close other programs.", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            print(f"error: the disk is full ({error.filename or 'writing the output'}); free some space and run it again.", file=sys.stderr)
        elif error.filename:
            print(f"error: cannot use {error.filename} ({error.strerror or error}); choose another path.", file=sys.stderr)
        else:
            print(f"error: {error.strerror or error}; check the paths given and run it again.", file=sys.stderr)
        return 2

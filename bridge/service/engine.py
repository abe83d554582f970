"""What the server's jobs do, on the models it holds: heads, the edit library, edits, training.

The engine loads its head source once (the bundled prior, or an imported EG3D generator); CLIP is loaded on the first training job. Heads are
kept as their latents in `<cache>/heads/<id>.safetensors` (+ .json), so they survive restarts.
Modules trained through the bridge go to `<cache>/modules/<name>/`, which the library lists after
the bundled ones.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save

import mesh_export
from bridge import __version__
from bridge.errors import BridgeError
from bridge.field.grid import sample_grid
from bridge.field.occupancy import Occupancy, skipping_samples
from bridge.head_file import MAX_LATENT_ABS
from bridge.images import Picture, decode_picture, save_png, sheet
from bridge.lenerf.apply import EditStep, apply_edits
from bridge.lenerf.edit_module import BUNDLED_LIBRARY, EditLibrary, EditModule, EditModuleError, EditSpec, read_metadata
from bridge.prior.model import HeadPrior
from bridge.service.jobs import JobContext
from bridge.service.security import private_folder, write_private
from bridge.service.settings import LIMITS

PREVIEW_SIZE = 64
"""Side of each preview picture (before | after | mask) of a generator without super-resolution:
the panel shows them small, and the mesh in the viewport is the real preview."""
GRID_CHUNK = 1 << 16
"""Points per grid chunk: progress and cancel are checked between chunks."""
MODULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class NotFound(BridgeError):
    pass


def picture_from_base64(text: str) -> Picture:
    """A request's base64 picture (PNG or JPEG bytes) -> Picture, or one sentence."""
    import base64
    import binascii

    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BridgeError("The picture must be a PNG or JPEG file in base64.") from None
    return decode_picture(data)


def module_name_for(edit: str, mask: str) -> str:
    """A folder name for a trained edit: "blue eyes" / "eyes" -> blue_eyes__eyes."""
    slug = lambda text: re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:30] or "edit"  # noqa: E731
    return f"{slug(edit)}__{slug(mask)}"


@dataclass
class Head:
    id: str
    description: dict
    ws: torch.Tensor

    def public(self) -> dict:
        return {"id": self.id, **self.description}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BridgeError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto.")
    if name not in ("cpu", "cuda"):
        raise BridgeError(f"Unknown device {name!r}; use auto, cpu or cuda.")
    return torch.device(name)


class Engine:
    def __init__(
        self,
        cache: Path,
        device: str = "auto",
        clip_source: str = "bundled",
        weights: Path | None = None,
        generator: Path | None = None,
        open_model: Path | None = None,
        noise_mode: str = "const",
        encoder: Path | None = None,
    ):
        """`generator`: an imported EG3D generator (python -m bridge import-eg3d) instead of the
        bundled prior, its planes' noise drawn in EG3D's `noise_mode`."""
        self.device = resolve_device(device)
        if generator is not None:
            from bridge.eg3d.heads import EG3DHeads

            self.source = EG3DHeads.load(generator, device=self.device, noise_mode=noise_mode)
        else:
            self.source = HeadPrior.load(weights, device=self.device)
        self.clip_source = clip_source
        self._clip = None
        self.heads_dir = private_folder(Path(cache) / "heads")
        self.modules_dir = private_folder(Path(cache) / "modules")
        _forget_older_than(self.heads_dir, LIMITS.result_days)
        shutil.rmtree(Path(cache) / "pictures", ignore_errors=True)  # head jobs' pictures, before they went in the job's folder
        self.library = EditLibrary(BUNDLED_LIBRARY, self.modules_dir, generator_sha256=self.source.sha256)
        self._modules: dict[str, EditModule] = {}
        self.open_model_dir = open_model
        self._open_model = None
        self.encoder_dir = encoder
        self._encoder = None
        self._prompt_edits: dict[tuple, object] = {}

    # --- description -------------------------------------------------------------------------

    def info(self) -> dict:
        memory = {}
        if self.device.type == "cuda":
            memory = {
                "allocated_mb": round(torch.cuda.memory_allocated(self.device) / 2**20, 1),
                "total_mb": round(torch.cuda.get_device_properties(self.device).total_memory / 2**20, 1),
            }
        else:
            try:
                import resource

                memory = {"process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
            except ImportError:
                pass
        return {
            "version": __version__,
            "device": str(self.device),
            "torch": torch.__version__,
            "generator": {
                "name": self.source.name,
                "sha256": self.source.sha256,
                "num_ws": self.source.generator.num_ws,
                "w_dim": self.source.generator.config.w_dim,
            },
            "guidance": {"clip": self.clip_source, "loaded": self._clip is not None},
            "memory": memory,
        }

    # --- heads -------------------------------------------------------------------------------

    def create_head(self, seed: int | None, params: dict | None, latent: list | None) -> Head:
        generator = self.source.generator
        if latent is not None:
            try:
                ws = torch.tensor(latent, dtype=torch.float32)
            except (ValueError, TypeError):  # ragged rows
                ws = torch.empty(0)
            if ws.dim() == 1 and ws.numel():
                ws = ws[None].expand(generator.num_ws, -1)
            if tuple(ws.shape) != (generator.num_ws, generator.config.w_dim) or not bool((ws.abs() <= MAX_LATENT_ABS).all()):
                raise BridgeError(
                    f"latent must be {generator.config.w_dim} numbers within +-{MAX_LATENT_ABS:g} (one w) or {generator.num_ws} rows of them (ws)."
                )
            description = {"source": "latent"}
        else:
            ws, description = self.source.head_ws(seed or 0, params or None)
        return self._store_head(ws, description)

    def _store_head(self, ws: torch.Tensor, description: dict) -> Head:
        """A head named by what it is: the same seed, parameters or latent again (the add-on asks for
        its head before every edit, the live slider at every step) is the same two files, not new ones."""
        import hashlib

        ws = ws.detach().float().cpu().contiguous()
        text = json.dumps(description, sort_keys=True).encode()
        head = Head(hashlib.sha256(text + ws.numpy().tobytes()).hexdigest()[:16], description, ws)
        write_private(self.heads_dir / f"{head.id}.safetensors", save({"ws": head.ws}))
        write_private(self.heads_dir / f"{head.id}.json", json.dumps(head.description).encode())
        return head

    def encoder(self):
        """The image encoder of this generator (a head from a picture), loaded on first use."""
        if self._encoder is None:
            from bridge.invert.encoder import BUNDLED_ENCODER, EncoderError, ImageEncoder

            if self.encoder_dir is None and not isinstance(self.source, HeadPrior):
                raise NotFound(
                    "This generator has no image encoder; train one with `python -m bridge train-encoder --generator ...` "
                    "and start the bridge with --encoder."
                )
            try:
                self._encoder = ImageEncoder.load(self.encoder_dir or BUNDLED_ENCODER, self.source.sha256, self.device)
            except EncoderError as error:
                raise NotFound(str(error)) from None
        return self._encoder

    @staticmethod
    def checked_picture(text: str) -> tuple[str, bytes]:
        """A request's base64 picture, checked now (a bad one is refused before it is queued) ->
        (the key its job lists instead, its bytes to keep with the job)."""
        import base64
        import hashlib

        picture_from_base64(text)
        data = base64.b64decode(text)
        return f"sha256:{hashlib.sha256(data).hexdigest()}", data

    def head_from_picture(self, request: dict, ctx: JobContext | None = None) -> Head:
        """A head from the picture of a request (base64 `picture`, optional `crop`, `yaw`, `pitch`,
        `refine` steps; progress and cancel through `ctx`)."""
        from bridge.invert import head_from_picture

        if ctx is not None and re.fullmatch(r"sha256:[0-9a-f]{64}", request["picture"]):  # kept with its job
            picture = decode_picture(ctx.input("picture"))
        else:
            picture = picture_from_base64(request["picture"])
        refine = int(request.get("refine") or 0)

        def report(p) -> None:
            ctx.progress(0.05 + 0.9 * p.step / p.total, f"refining step {p.step}/{p.total} ({p.psnr_db:.1f} dB)")

        ws, description = head_from_picture(
            self.source,
            self.encoder(),
            picture,
            tuple(request["crop"]) if request.get("crop") else None,
            request.get("yaw"),
            request.get("pitch"),
            refine,
            None,
            0.0,
            report if ctx else None,
            ctx.cancelled if ctx else (lambda: False),
        )
        if ctx is not None:
            ctx.check()
        return self._store_head(ws, {**description, "generator": self.source.name})

    def head(self, head_id: str) -> Head:
        if not re.fullmatch(r"[0-9a-f]{16}", head_id or ""):
            raise NotFound(f"No head {head_id!r}; create one with POST /v1/heads.")
        meta = self.heads_dir / f"{head_id}.json"
        if not meta.is_file():
            raise NotFound(f"No head {head_id!r}; create one with POST /v1/heads.")
        damaged = BridgeError(f"The stored head {head_id} is damaged; create it again.")
        try:
            description, ws = json.loads(meta.read_text()), load_file(str(self.heads_dir / f"{head_id}.safetensors"))["ws"]
        except Exception:  # noqa: BLE001 -- a cut or foreign file of either kind
            raise damaged from None
        generator = self.source.generator
        if (
            not isinstance(description, dict)
            or tuple(ws.shape) != (generator.num_ws, generator.config.w_dim)
            or not bool(torch.isfinite(ws).all() and (ws.abs() <= MAX_LATENT_ABS).all())
        ):
            raise damaged  # a record changed by hand: a list, ws of another shape, NaN
        return Head(head_id, description, ws.float())

    # --- the library -------------------------------------------------------------------------

    def modules(self) -> list[dict]:
        out = []
        for entry in self.library.entries():
            figures = {}
            if entry.problem is None:
                try:
                    training = read_metadata(entry.folder).get("training")
                except EditModuleError:  # changed since it was listed
                    training = None
                if isinstance(training, dict):
                    figures = {k: training.get(k) for k in ("steps_done", "minutes_this_run", "seconds_per_step")}
            out.append(
                {
                    "name": entry.name,
                    "edit": entry.edit,
                    "mask": entry.mask,
                    "geometry": entry.geometry,
                    "bundled": entry.folder.parent == BUNDLED_LIBRARY,
                    "usable": entry.problem is None,
                    "problem": entry.problem,
                    "training": figures,
                }
            )
        return out

    def module(self, name: str) -> EditModule:
        if name not in self._modules:
            try:
                self._modules[name] = self.library.load(name, self.device)
            except BridgeError as error:
                raise NotFound(str(error)) from None
        return self._modules[name]

    def module_for_prompts(self, edit: str, mask: str) -> str | None:
        """The library module trained for exactly these prompts, or None (the open model answers them)."""
        for entry in self.library.entries():
            if entry.problem is None and entry.edit.lower() == edit.strip().lower() and entry.mask.lower() == mask.strip().lower():
                return entry.name
        return None

    # --- the open-vocabulary model -----------------------------------------------------------

    def open_model(self):
        """The open edit model of this generator (any prompt, no training), loaded on first use."""
        if self._open_model is None:
            from bridge.lenerf.open_model import BUNDLED_OPEN_MODEL, OpenEditModel, OpenModelError

            folder = self.open_model_dir or BUNDLED_OPEN_MODEL
            try:
                model = OpenEditModel.load(folder, self.source.sha256, self.device)
                model.check_clip(self.clip())
            except OpenModelError as error:
                raise NotFound(f"{error} Until then, edit with a trained module or train one (POST /v1/jobs/train).") from None
            self._open_model = model
        return self._open_model

    def prompt_edit(self, edit: str, mask: str, geometry: bool | None = None):
        key = (edit.strip().lower(), mask.strip().lower(), geometry)
        if key not in self._prompt_edits:
            if len(self._prompt_edits) >= 64:
                self._prompt_edits.pop(next(iter(self._prompt_edits)))
            self._prompt_edits[key] = self.open_model().edit(self.clip(), edit, mask, geometry)
        return self._prompt_edits[key]

    def parse_instruction(self, sentence: str) -> dict:
        """The sentence's (edit, mask) pair; with `clip_reads`, the edit as the bridge's CLIP will
        read it, when that is not as parsed (a colour word its captions never used)."""
        from bridge.guidance.colours import edit_prompt_for
        from bridge.guidance.instructions import parse_instruction

        pair = parse_instruction(sentence, self.clip()).as_dict()
        read, note = edit_prompt_for(self.clip(), pair["edit"], pair["mask"])
        return {**pair, **({"clip_reads": read, "note": note} if note else {})}

    # --- jobs --------------------------------------------------------------------------------

    def run_edit(self, ctx: JobContext) -> None:
        request = ctx.job.request
        head = self.head(request["head"])
        steps, prompted = [], []
        for step in request["steps"]:
            name = step.get("module") or self.module_for_prompts(step["edit"], step["mask"])
            mask_module = self.module(step["mask_module"]) if step.get("mask_module") else None
            if name is None:  # no trained module: the open model
                module = self.prompt_edit(step["edit"], step["mask"], geometry=False if step.get("texture_only") else None)
                prompted.append(len(steps))
            else:
                module = self.module(name)
            steps.append(EditStep(module, step.get("strength", 1.0), mask_module, step.get("texture_only")))
        ctx.progress(0.02, "applying edits")
        started = time.perf_counter()
        render_config = self.source.render_config
        pictures_only = not request.get("field", True)
        with torch.no_grad(), _leaving_a_core(pictures_only and self.device.type == "cpu"):
            ws = head.ws[None].to(self.device)
            field, edited_ws = apply_edits(self.source.generator, ws, steps)
            ctx.check()
            provenance = {
                "generator": self.source.name,
                "generator_sha256": self.source.sha256,
                "head": head.public(),
                "bridge_version": __version__,
                "job": ctx.job.id,
                "camera": {"radius": render_config.camera_radius, "pivot": list(render_config.camera_pivot), "focal": render_config.focal},
                "edits": [
                    {
                        "module": s.get("module"),
                        "edit": st.module.spec.edit,
                        "mask": st.module.spec.mask,
                        "strength": st.strength,
                        "model": "open model" if i in prompted else "module",
                    }
                    for i, (s, st) in enumerate(zip(request["steps"], steps))
                ],
            }

            def grid_progress(fraction: float) -> None:
                ctx.check()
                ctx.progress(0.05 + 0.8 * fraction, "sampling the field grid")

            seconds: dict[str, float] = {}

            def lap(stage: str) -> None:
                seconds[stage] = round(time.perf_counter() - started - sum(seconds.values()), 3)

            lap("apply")
            if request.get("field", True):
                grid = sample_grid(
                    field,
                    request["grid"],
                    self.source.surface_level,
                    render_config.box_size,
                    provenance,
                    chunk=GRID_CHUNK,
                    device=self.device,
                    on_progress=grid_progress,
                    sparse=request.get("sampling", "sparse") == "sparse",
                )
                lap("grid")
                mesh_export.write(grid, ctx.add_result("field.npz", "application/octet-stream"))
                lap("write")
            info = {}
            if request.get("previews", True):
                info = self._previews(ctx, field, ws, edited_ws, steps, prompted)
                lap("previews")
        total = round(time.perf_counter() - started, 2)
        ctx.job.info = {"seconds": total, "stage_seconds": seconds, "edit_steps": len(steps), **info}

    def _previews(self, ctx: JobContext, field, ws, edited_ws, steps, prompted) -> dict:
        """preview.png (before | after | mask) and mask.png, with empty-space skipping; for prompt
        edits, how far CLIP says the edit moved the head ("clip_gain" and a sentence)."""
        render_config = self.source.render_config
        ctx.progress(0.88, "rendering previews")
        yaw = ctx.job.request.get("preview_yaw", 20.0)
        box = render_config.box_size
        clamped = render_config.clamp_to_box
        edited_view = Occupancy.probe(field, box, device=self.device, outside_empty=clamped).skipping(field)
        source_field = self.source.generator.field(ws)
        source_view = Occupancy.probe(source_field, box, device=self.device, outside_empty=clamped).skipping(source_field)
        ctx.check()
        size = PREVIEW_SIZE if self.source.generator.config.superresolution is None else None
        config = skipping_samples(render_config)
        if steps:
            picture, mask, before, after = self.source.before_after(source_view, edited_view, ws, edited_ws, yaw, size, config)
        else:  # the unedited head: its picture, and an empty mask
            picture = self.source.view(edited_view, ws, yaw, size, render_config=config)["rgb"][0]
            mask = torch.zeros(picture.shape[-2:])
        save_png(picture, ctx.add_result("preview.png", "image/png"))
        save_png(mask.expand(3, -1, -1).cpu(), ctx.add_result("mask.png", "image/png"))
        info = {}
        if prompted:  # how far CLIP says the prompt edits moved the head, in one sentence
            from bridge.lenerf.open_model import clip_gain, describe_gain

            text = steps[prompted[-1]].module.spec.edit
            gain = clip_gain(self.clip(), before, after, text)
            notes = [steps[i].module.note for i in prompted if steps[i].module.note]
            info = {"clip_gain": round(gain, 4), "message": " ".join([*notes, describe_gain(gain, text)])}
        return info

    def clip(self):
        if self._clip is None:
            from bridge.guidance.clip import load_clip

            self._clip = load_clip(self.clip_source, self.device)
        return self._clip

    def run_head(self, ctx: JobContext) -> None:
        ctx.progress(0.01, "encoding the picture")
        head = self.head_from_picture(ctx.job.request, ctx)
        ctx.progress(0.97, "rendering the head")
        with torch.no_grad():
            ws = head.ws[None].to(self.device)
            field = self.source.generator.field(ws)
            size = PREVIEW_SIZE * 2 if self.source.generator.config.superresolution is None else None
            views = [self.source.view(field, ws, yaw, size)["rgb"][0] for yaw in (-30.0, 0.0, 30.0)]
        save_png(sheet(views), ctx.add_result("preview.png", "image/png"))
        ctx.job.info = {"head": head.public(), "latent": [[round(float(v), 6) for v in row] for row in head.ws.tolist()]}

    def is_bundled_module(self, name: str) -> bool:
        """A trained module of this name would stand beside the bundled one and be shadowed by it."""
        return any(entry.name == name and entry.folder.parent == BUNDLED_LIBRARY for entry in self.library.entries())

    def run_training(self, ctx: JobContext) -> None:
        from bridge.guidance.colours import edit_prompt_for
        from bridge.guidance.losses import ClipLossConfig
        from bridge.lenerf.recipes import recipe_for
        from bridge.lenerf.trainer import EditTrainer, EditTrainingConfig

        request = ctx.job.request
        ctx.progress(0.0, "loading CLIP")
        edit, note = edit_prompt_for(self.clip(), request["edit"], request["mask"])
        name = request.get("name") or module_name_for(request["edit"], request["mask"])  # as the API checked it
        out = self.modules_dir / name
        spec = EditSpec(edit, request["mask"], request.get("geometry", False))
        recipe = recipe_for(spec)
        config = EditTrainingConfig(
            seed=request.get("seed", 0), steps=request["steps"], time_limit_minutes=request.get("minutes"), **recipe.options
        )
        trainer = EditTrainer(
            self.source.generator, self.source.sample_ws, self.clip(), spec, config, clip_loss=ClipLossConfig(kind=recipe.clip_loss)
        )
        if trainer.resume(out):
            ctx.progress(trainer.step / config.steps, f"resumed at step {trainer.step}")

        def report(p) -> None:
            ctx.progress(p.step / p.total, f"training step {p.step}/{p.total}")

        module = trainer.train(out, self.source.sha256, on_progress=report, should_stop=ctx.cancelled, command=f"bridge job {ctx.job.id}")
        if module is None:
            ctx.check()
        self._modules.pop(name, None)
        ctx.job.info = {"module": name, "steps_done": trainer.step, "recipe": recipe.name, **({"message": note} if note else {})}


def _forget_older_than(folder: Path, days: float) -> None:
    """Delete the files of `folder` not written for `days` (heads and pictures kept for jobs)."""
    cutoff = time.time() - days * 86400
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


@contextmanager
def _leaving_a_core(enabled: bool):
    """Run with one torch thread fewer: a pictures-only job runs while the add-on downloads and
    meshes the same edit's field on the same machine, and the mesh is what the artist waits for."""
    threads = torch.get_num_threads()
    if not enabled or threads < 2:
        yield
        return
    torch.set_num_threads(threads - 1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

"""Training one edit (an edit prompt and a mask prompt) on a frozen generator.

Every step draws heads and cameras, renders the source, the edited (fused) head and its mask,
and takes one optimiser step on

    clip_weight * L_CLIP(edited, source)                 LENeRF Eq. 8 (bridge.guidance.losses), or the
                                                         directional or global loss (ClipLossConfig.kind);
                                                         the mapper's edit everywhere during warm-up
  + residual_weight * ||dw||  + preservation_weight * L_id-substitute
  + mask_weight * MSE(mask, relevance pseudo-label)      (geometry: max of source and target maps,
                                                         or the target's alone)
  + tv_weight * TV(mask) + sparsity_weight * L_sparsity + binarisation_weight * L_bin
  + deformation_weight * mean |T(x)|^2 / max_offset^2    geometry edits: at random points of the
                                                         source head's matter, where the mask is off

The mapper (with the deformation network) and the attention field have their own Adam optimisers
and update on alternate steps, as LENeRF's code does; `alternate=False` updates both every step.
Progress is reported every step, a checkpoint is written every `checkpoint_every` steps, a run
resumes from its checkpoint, and `should_stop` is checked before every step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from bridge.errors import BridgeError
from bridge.field.generator import TriPlaneGenerator
from bridge.field.renderer import RenderConfig, VolumeRenderer
from bridge.guidance.captions import mask_prompt_ensemble
from bridge.guidance.clip import ClipModel
from bridge.guidance.losses import ClipEditLoss, ClipLossConfig
from bridge.guidance.relevance import PSEUDO_LABEL_LEVEL, PSEUDO_LABEL_OPTIONS, pseudo_label, relevance_above, relevance_maps
from bridge.lenerf import losses
from bridge.lenerf.edit_module import EditModule, EditSpec
from bridge.lenerf.fusion import ACTIVE_SIGMA, EditedField, PlaneFeatures
from bridge.lenerf.modules import EditModules, ModuleConfig
from bridge.model_files import write_atomically
from mesh_export.files import write_whole

GEOMETRY_LABELS = ("both", "target")
LatentSampler = Callable[[int, torch.Generator], Tensor]
"""(batch, rng) -> ws (batch, num_ws, w_dim) of source heads."""


@dataclass(frozen=True)
class EditTrainingConfig:
    seed: int = 0
    steps: int = 1200
    heads: int = 2
    resolution: int = 64
    samples: int = 16
    """Stratified and importance samples per ray, each (the renders of training are small)."""
    yaw_range: tuple[float, float] = (-35.0, 35.0)
    pitch_range: tuple[float, float] = (-10.0, 10.0)
    learning_rate: float = 3e-3
    betas: tuple[float, float] = (0.95, 0.999)
    alternate: bool = True
    clip_weight: float = 1.0
    residual_weight: float = 0.02
    preservation_weight: float = 0.3
    mask_weight: float = 10.0
    tv_weight: float = 0.05
    sparsity_weight: float = 0.02
    binarisation_weight: float = 0.05
    geometry_labels: str = "both"
    """Geometry edits' pseudo-labels: "both" (the max of the source's and the target's relevance,
    LENeRF) or "target" (the target's alone, for a part the CLIP finds only after the edit: the
    head CLIP's "mouth" map of a closed mouth covers the face, precision 0.01; of an open one 0.79)."""
    label_baseline: str | None = None
    """A prompt whose relevance is taken off the mask prompt's before labelling (`relevance_above`),
    e.g. "a face": removes the eyes a small CLIP finds relevant for any prompt (not for eye edits)."""
    deformation_weight: float = 10.0
    deformation_points: int = 2048
    """Random box points per head at which the deformation's drift outside the mask is measured."""
    mapper_warmup: float = 0.3
    """The first fraction of the steps shows CLIP the mapper's edit everywhere (m = 1) while the
    attention field learns where the mask prompt is: the mapper cannot learn through a mask that
    is still near zero on the part."""
    time_limit_minutes: float | None = None
    checkpoint_every: int = 100


@dataclass
class EditProgress:
    step: int
    total: int
    seconds: float
    losses: dict[str, float]
    images: dict[str, Tensor] | None = None
    """The latest source / edited / mask / pseudo-label renders (first head), for previews."""


class EditTrainer:
    def __init__(
        self,
        generator: TriPlaneGenerator,
        sample_ws: LatentSampler,
        clip: ClipModel,
        spec: EditSpec,
        config: EditTrainingConfig = EditTrainingConfig(),
        module_config: ModuleConfig | None = None,
        render_config: RenderConfig | None = None,
        clip_loss: ClipLossConfig = ClipLossConfig(),
        edit_target: str | Tensor | None = None,
    ):
        self.generator = generator.eval().requires_grad_(False)
        self.sample_ws = sample_ws
        if config.geometry_labels not in GEOMETRY_LABELS:
            raise ValueError(f"Unknown geometry_labels {config.geometry_labels!r}; use one of {', '.join(GEOMETRY_LABELS)}.")
        self.clip, self.spec, self.config = clip, spec, config
        self.module_config = module_config or ModuleConfig.for_generator(generator, deformation=spec.geometry)
        torch.manual_seed(config.seed)
        self.modules = EditModules(self.module_config)
        base = render_config or generator.config.render
        self.renderer = VolumeRenderer(replace(base, depth_samples=config.samples, importance_samples=config.samples))
        self.clip_loss = ClipEditLoss(clip, spec.edit if edit_target is None else edit_target, clip_loss)
        self.settings = json.loads(json.dumps({"spec": asdict(spec), "config": asdict(config), "clip_loss": asdict(clip_loss)}))
        """What a checkpoint must have been made with to be resumed."""
        self.mask_prompts = mask_prompt_ensemble(spec.mask)
        mapper_params = list(self.modules.mapper.parameters())
        if self.modules.deformation is not None:
            mapper_params += list(self.modules.deformation.parameters())
        self.optimisers = {
            "mapper": torch.optim.Adam(mapper_params, lr=config.learning_rate, betas=config.betas),
            "attention": torch.optim.Adam(self.modules.attention.parameters(), lr=config.learning_rate, betas=config.betas),
        }
        self.rng = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history: list[dict] = []

    def _views(self, batch: int) -> Tensor:
        low, high = self.config.yaw_range
        yaw = low + (high - low) * torch.rand(batch, generator=self.rng)
        low, high = self.config.pitch_range
        pitch = low + (high - low) * torch.rand(batch, generator=self.rng)
        return self.renderer.config.orbit(yaw, pitch)

    def _render(self, field, poses: Tensor, channels: tuple[str, ...]) -> dict[str, Tensor]:
        return self.renderer.render(field, poses, self.renderer.config.intrinsics(), self.config.resolution, channels=channels)

    def pseudo_labels(self, source: dict[str, Tensor], target: dict[str, Tensor] | None) -> Tensor:
        """Relevance of the mask prompt in the source renders and/or the target's (geometry edits),
        limited to where each render has something (its opacity), as a label 0.5 at the
        relevance level that best separates the part (`pseudo_label`)."""

        def relevance(render: dict[str, Tensor]) -> Tensor:
            def of(prompts: list[str]) -> Tensor:
                return relevance_maps(
                    self.clip,
                    render["rgb"],
                    prompts,
                    size=tuple(render["rgb"].shape[-2:]),
                    foreground=render["opacity"][:, 0],
                    **PSEUDO_LABEL_OPTIONS,
                )

            maps = of(self.mask_prompts)
            return maps if self.config.label_baseline is None else relevance_above(maps, of([self.config.label_baseline]))

        if target is None:
            maps = relevance(source)
        elif self.config.geometry_labels == "target":
            maps = relevance(target)
        else:
            maps = torch.maximum(relevance(source), relevance(target))
        return pseudo_label(maps)[:, None]

    def batch_losses(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One batch: the loss terms and the renders they came from."""
        c = self.config
        ws_source = self.sample_ws(c.heads, self.rng)
        poses = self._views(c.heads)
        box = self.generator.config.render.box_size
        with torch.no_grad():
            planes_source = self.generator.planes(ws_source)
        dw = self.modules.mapper(ws_source)
        ws_target = ws_source + self.modules.mapper.residual_scale * dw
        planes_target = self.generator.planes(ws_target)
        field = EditedField(
            self.generator.decoder,
            PlaneFeatures(planes_source, box),
            PlaneFeatures(planes_target, box),
            ws_source,
            ws_target,
            self.modules.attention,
            self.modules.deformation,
            texture_only=self.spec.texture_only,
        )
        edited = self._render(field, poses, ("rgb", "mask"))
        if self.step < c.mapper_warmup * c.steps:
            everywhere = EditedField(
                self.generator.decoder,
                field.source,
                field.target,
                ws_source,
                ws_target,
                self.modules.attention,
                self.modules.deformation,
                texture_only=self.spec.texture_only,
                mask_override=1.0,
            )
            clip_view = self._render(everywhere, poses, ("rgb",))["rgb"]
        else:
            clip_view = edited["rgb"]
        mask = edited["mask"] if self.spec.texture_only else self._render(field.mask_field, poses, ("mask",))["mask"]
        with torch.no_grad():
            source_render = self._render(field.source_field, poses, ("rgb",))
            target_render = None if self.spec.texture_only else self._render(field.target_field, poses, ("rgb",))
        pseudo = self.pseudo_labels(source_render, target_render)
        source = source_render["rgb"]
        terms = {
            "clip": c.clip_weight * self.clip_loss(clip_view, source, self.rng),
            "residual": c.residual_weight * losses.residual_l2(dw),
            "preservation": c.preservation_weight * losses.preservation(edited["rgb"], source, mask),
            "mask": c.mask_weight * losses.mask_loss(mask, pseudo),
            "tv": c.tv_weight * losses.total_variation(mask),
            "sparsity": c.sparsity_weight * losses.sparsity(mask),
            "binarisation": c.binarisation_weight * losses.binarisation(mask),
        }
        if self.modules.deformation is not None:
            terms["deformation"] = c.deformation_weight * self.deformation_drift(field)
        images = {"source": source[0], "edited": edited["rgb"][0].detach(), "mask": mask[0].detach(), "pseudo_label": pseudo[0]}
        return terms, images

    def deformation_drift(self, field: EditedField) -> Tensor:
        """The deformation's offsets (in units of the largest allowed) where the source head has
        matter and the mask is off, at random points of the box."""
        heads = field.ws_source.shape[0]
        box = self.generator.config.render.box_size
        points = ((torch.rand(heads, self.config.deformation_points, 3, generator=self.rng) - 0.5) * box).to(field.ws_source.device)
        offsets = self.modules.deformation.offsets(points, field.ws_source, field.ws_target) / self.module_config.max_offset
        with torch.no_grad():
            at = field.mask_field(points)
            keep = (at["sigma"] > ACTIVE_SIGMA).float() * (1 - at["mask"])
        return losses.deformation_outside_mask(offsets, keep)

    def train_step(self) -> tuple[dict[str, float], dict[str, Tensor]]:
        terms, images = self.batch_losses()
        total = sum(terms.values())
        if self.config.alternate:
            names = ["mapper"] if self.step % 2 == 0 else ["attention"]
        else:
            names = ["mapper", "attention"]
        for optimiser in self.optimisers.values():
            optimiser.zero_grad(set_to_none=True)
        total.backward()
        for name in names:
            self.optimisers[name].step()
        self.step += 1
        figures = {name: float(value.detach()) for name, value in terms.items()}
        figures["total"] = float(total.detach())
        return figures, images

    # --- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / "checkpoint.safetensors", self.modules.state_dict())
        optimisers = {name: o.state_dict() for name, o in self.optimisers.items()}
        write_whole(folder / "checkpoint_optimisers.pt", lambda file: torch.save(optimisers, file))
        state = {"step": self.step, **self.settings, "rng": self.rng.get_state().tolist(), "history": self.history}
        write_whole(folder / "checkpoint.json", lambda file: file.write((json.dumps(state) + "\n").encode()))

    def resume(self, folder: Path) -> bool:
        """Continue from `folder`'s checkpoint if it was made with the same config; True if it did."""
        meta = folder / "checkpoint.json"
        if not meta.is_file():
            return False
        damaged = f"The checkpoint in {folder} is damaged or incomplete; delete its checkpoint files (or use a new --out folder) to train from the start."
        try:
            state = json.loads(meta.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise BridgeError(damaged) from None
        if not isinstance(state, dict):
            raise BridgeError(damaged)
        started = state.get("spec")
        if started != self.settings["spec"]:
            was = f" for {started.get('edit')!r} on {started.get('mask')!r}" if isinstance(started, dict) else ""
            raise BridgeError(
                f"The checkpoint in {folder} is the training of another edit{was}; use a new --out folder (or name) for this one."
            )
        if any(state.get(name) != value for name, value in self.settings.items()):
            raise BridgeError(
                f"The checkpoint in {folder} was made with other training settings; use a new --out folder or the same settings to resume."
            )
        try:
            self.modules.load_state_dict(load_file(str(folder / "checkpoint.safetensors")))
            optimisers = torch.load(folder / "checkpoint_optimisers.pt", weights_only=True)
            for name, optimiser in self.optimisers.items():
                optimiser.load_state_dict(optimisers[name])
            self.rng.set_state(torch.tensor(state["rng"], dtype=torch.uint8))
            self.step, self.history = int(state["step"]), list(state["history"])
        except Exception:  # noqa: BLE001 -- a missing file, a cut safetensors, another module's tensors, a broken record
            raise BridgeError(damaged) from None
        return True

    # --- the whole run -----------------------------------------------------------------------

    def train(
        self,
        out_dir: Path,
        generator_sha256: str,
        on_progress: Callable[[EditProgress], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        command: str = "",
    ) -> EditModule | None:
        """Train to the end (or the time limit), write the EditModule to `out_dir` and return it.
        Returns None when stopped early; the checkpoint keeps the work for a resume."""
        out_dir = Path(out_dir)
        resumed = self.resume(out_dir)
        started = time.perf_counter()
        first_step = self.step
        c = self.config
        while self.step < c.steps:
            if should_stop():
                self.save_checkpoint(out_dir)
                return None
            if c.time_limit_minutes and time.perf_counter() - started > 60 * c.time_limit_minutes:
                self.save_checkpoint(out_dir)  # the same command again goes on from this step, not the last hundredth
                break
            figures, images = self.train_step()
            if self.step % 10 == 0 or self.step == c.steps:
                self.history.append({"step": self.step, **{k: round(v, 5) for k, v in figures.items()}})
            if self.step % c.checkpoint_every == 0:
                self.save_checkpoint(out_dir)
            if on_progress:
                on_progress(EditProgress(self.step, c.steps, time.perf_counter() - started, figures, images))
        minutes = (time.perf_counter() - started) / 60
        info = {
            "training": {
                "command": command,
                "config": asdict(c),
                "clip_loss": self.settings["clip_loss"],
                "pseudo_labels": {**PSEUDO_LABEL_OPTIONS, "level": PSEUDO_LABEL_LEVEL, "baseline": c.label_baseline},
                "steps_done": self.step,
                "resumed_from_step": first_step if resumed else None,
                "minutes_this_run": round(minutes, 2),
                "seconds_per_step": round(60 * minutes / max(self.step - first_step, 1), 3),
                "history": self.history,
            }
        }
        clip_identity = {"source": self.clip.source}
        if self.clip.weights_path is not None:
            from bridge.field.weights import file_sha256

            clip_identity["sha256"] = file_sha256(self.clip.weights_path)
        module = EditModule(self.spec, self.modules.eval(), generator_sha256, clip_identity, info)
        module.save(out_dir)
        return module

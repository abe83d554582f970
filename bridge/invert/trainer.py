"""Training the image encoder of one generator: one command, two phases, resumable.

1. **Data** (`make_shard`): random heads of the generator rendered from random views (yaw and
   pitch within the encoder's ranges) in front of random background colours, with their w and
   the view. Shards are files, so an interrupted run keeps what it made.
2. **Fit** (`EncoderTrainer`): the encoder regresses w (in units of its spread over heads) and the
   view from pictures jittered in brightness, contrast and framing (a user's crop is never exact).
   Every step's batch comes from a generator seeded by (seed, step): a resumed run sees the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.errors import BridgeError
from bridge.field.renderer import render_orbit
from bridge.invert.encoder import EncoderConfig, ImageEncoder
from bridge.model_files import ResumableTrainer, TrainingProgress, check_data_settings, read_shard, shard_path, write_atomically


@dataclass(frozen=True)
class EncoderTrainingConfig:
    seed: int = 0
    heads: int = 4096
    views: int = 2
    shard_heads: int = 64
    resolution: int = 64
    samples: int = 24
    yaw_range: float = 40.0
    pitch_range: float = 12.0
    steps: int = 6000
    batch: int = 64
    learning_rate: float = 1e-3
    pose_weight: float = 0.5
    checkpoint_every: int = 500
    time_limit_minutes: float | None = None


DATA_SETTINGS = ("seed", "heads", "views", "shard_heads", "resolution", "samples", "yaw_range", "pitch_range")


def composite(rgb: Tensor, opacity: Tensor, background: Tensor) -> Tensor:
    """A render on black (B, 3, H, W) with its opacity (B, 1, H, W) over background colours (B, 3)."""
    return rgb + (1 - opacity) * background[:, :, None, None]


@torch.no_grad()
def make_shard(source, config: EncoderTrainingConfig, index: int) -> dict[str, Tensor]:
    """Shard `index`: w (B, w_dim) of its heads and, per view, the picture (uint8), yaw, pitch."""
    rng = torch.Generator().manual_seed(config.seed * 1_000_003 + index)
    ws = source.sample_ws(config.shard_heads, rng).to(source.device)
    render = replace(source.render_config, depth_samples=config.samples, importance_samples=config.samples, background=None)
    field = source.generator.field(ws.repeat_interleave(config.views, dim=0))
    count = len(ws) * config.views
    yaw = (torch.rand(count, generator=rng) * 2 - 1) * config.yaw_range
    pitch = (torch.rand(count, generator=rng) * 2 - 1) * config.pitch_range
    background = torch.rand(count, 3, generator=rng)
    plain = torch.rand(count, generator=rng) < 0.25  # a quarter on white, as the prior shows its heads
    background[plain] = 1.0
    out = render_orbit(field, render, yaw, pitch, config.resolution, ("rgb",), batch=count)
    pictures = composite(out["rgb"].clamp(0, 1), out["opacity"].clamp(0, 1), background.to(out["rgb"])).clamp(0, 1)
    return {
        "w": ws[:, 0].cpu(),
        "pictures": (pictures * 255).round().to(torch.uint8).cpu(),
        "yaw": yaw,
        "pitch": pitch,
    }


FRAMING_RENDERS = 32


@torch.no_grad()
def frontal_renders(source, config: EncoderTrainingConfig, count: int = FRAMING_RENDERS) -> Tensor:
    """Random heads of the generator from the front on white (count, 3, R, R): where its face
    framing is measured (`bridge.invert.align.measure_framing`)."""
    rng = torch.Generator().manual_seed(config.seed * 1_000_003 - 1)
    render = replace(source.render_config, depth_samples=config.samples, importance_samples=config.samples, background=None)
    out = render_orbit(
        source.generator.field(source.sample_ws(count, rng).to(source.device)), render, 0.0, 0.0, config.resolution, ("rgb",), batch=count
    )
    white = torch.ones(count, 3, device=out["rgb"].device)
    return composite(out["rgb"].clamp(0, 1), out["opacity"].clamp(0, 1), white).clamp(0, 1).cpu()


def make_data(source, config: EncoderTrainingConfig, folder: Path, on_progress=None, should_stop=lambda: False) -> bool:
    """Every shard not on disk yet; False when stopped early."""
    folder = Path(folder)
    check_data_settings(folder, {name: getattr(config, name) for name in DATA_SETTINGS})
    shards = -(-config.heads // config.shard_heads)
    started = time.perf_counter()
    for index in range(shards):
        path = shard_path(folder, index)
        if path.is_file():
            continue
        if should_stop():
            return False
        write_atomically(path, make_shard(source, config, index))
        if on_progress:
            on_progress(TrainingProgress("data", index + 1, shards, time.perf_counter() - started, {}))
    return True


@dataclass
class EncoderData:
    w: Tensor  # (N, w_dim): one per head
    pictures: Tensor  # (N * views, 3, R, R) uint8
    yaw: Tensor  # (N * views,)
    pitch: Tensor
    views: int

    @classmethod
    def load(cls, folder: Path, config: EncoderTrainingConfig) -> "EncoderData":
        shards = [read_shard(shard_path(folder, i)) for i in range(-(-config.heads // config.shard_heads))]
        return cls(*(torch.cat([s[k] for s in shards]) for k in ("w", "pictures", "yaw", "pitch")), config.views)


def validation_heads(heads: int) -> int:
    """Heads kept out of the fit (the last ones), for its held-out figures."""
    return min(256, heads // 8)


def jitter(pictures: Tensor, rng: torch.Generator) -> Tensor:
    """Brightness, contrast and framing (shift and scale by a few percent) changed at random (B, 3, R, R)."""
    count = len(pictures)
    gain = 1 + (torch.rand(count, 1, 1, 1, generator=rng) * 2 - 1) * 0.15
    offset = (torch.rand(count, 1, 1, 1, generator=rng) * 2 - 1) * 0.06
    mean = pictures.mean(dim=(1, 2, 3), keepdim=True)
    pictures = ((pictures - mean) * gain + mean + offset).clamp(0, 1)
    scale = 1 + (torch.rand(count, generator=rng) * 2 - 1) * 0.06
    shift = (torch.rand(count, 2, generator=rng) * 2 - 1) * 0.05
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = scale, scale, shift
    grid = F.affine_grid(theta.to(pictures), list(pictures.shape), align_corners=False)
    return F.grid_sample(pictures, grid, padding_mode="border", align_corners=False)


class EncoderTrainer(ResumableTrainer):
    def __init__(self, encoder: ImageEncoder, data: EncoderData, config: EncoderTrainingConfig):
        self.encoder, self.data, self.config = encoder, data, config
        self.module = encoder
        heads = len(data.w)
        self.train_heads = heads - validation_heads(heads)
        with torch.no_grad():
            encoder.w_mean.copy_(data.w[: self.train_heads].mean(dim=0))
            encoder.w_std.copy_(data.w[: self.train_heads].std(dim=0).clamp_min(1e-4))
        self.device = encoder.w_mean.device
        self.optimiser = torch.optim.Adam(encoder.parameters(), lr=config.learning_rate)
        self.step = 0
        self.history: list[dict] = []

    def _batch(self, pictures: Tensor, heads: Tensor, index: Tensor) -> dict[str, Tensor]:
        w, pose = self.encoder(pictures.to(self.device))
        scale = torch.tensor([self.config.yaw_range, self.config.pitch_range], device=self.device)
        wanted_pose = torch.stack([self.data.yaw[index], self.data.pitch[index]], dim=1).to(self.device)
        return {
            "w": (self.encoder.normalised_w(w) - self.encoder.normalised_w(self.data.w[heads].to(self.device))).square().mean(),
            "pose": self.config.pose_weight * ((pose - wanted_pose) / scale).square().mean(),
        }

    def train_step(self) -> dict[str, float]:
        rng = torch.Generator().manual_seed(self.config.seed * 7919 + self.step)
        index = torch.randint(0, self.train_heads * self.data.views, (self.config.batch,), generator=rng)
        pictures = jitter(self.data.pictures[index].float() / 255, rng)
        terms = self._batch(pictures, index // self.data.views, index)
        self.optimiser.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        self.set_learning_rate()
        self.optimiser.step()
        self.step += 1
        return {name: float(value.detach()) for name, value in terms.items()}

    @torch.no_grad()
    def validate(self) -> dict:
        """On the held-out heads' pictures (no jitter): w error in spread units, yaw and pitch error in degrees."""
        self.encoder.eval()
        index = torch.arange(self.train_heads * self.data.views, len(self.data.pictures))
        w, pose = [], []
        for chunk in index.split(256):
            a, b = self.encoder(self.data.pictures[chunk].float().to(self.device) / 255)
            w.append(a.cpu())
            pose.append(b.cpu())
        self.encoder.train()
        w, pose = torch.cat(w), torch.cat(pose)
        wanted = self.data.w[index // self.data.views]
        return {
            "heldout_w_rmse": round(
                float(
                    (self.encoder.normalised_w(w.to(self.device)) - self.encoder.normalised_w(wanted.to(self.device)))
                    .square()
                    .mean()
                    .sqrt()
                ),
                4,
            ),
            "heldout_yaw_error_deg": round(float((pose[:, 0] - self.data.yaw[index]).abs().mean()), 2),
            "heldout_pitch_error_deg": round(float((pose[:, 1] - self.data.pitch[index]).abs().mean()), 2),
        }


def new_encoder(source, config: EncoderTrainingConfig) -> ImageEncoder:
    generator = source.generator
    encoder_config = EncoderConfig(
        generator.config.w_dim, generator.num_ws, config.resolution, yaw_range=config.yaw_range, pitch_range=config.pitch_range
    )
    if config.resolution % 16:
        raise BridgeError(f"--resolution must be a multiple of 16 (it is {config.resolution}).")
    return ImageEncoder(encoder_config).to(source.device)

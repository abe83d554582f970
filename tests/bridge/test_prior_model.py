"""The bundled prior: its weights, its training command, and its fidelity to ProcHead."""

import json

import pytest
import torch

from bridge.errors import WeightsError
from bridge.field.generator import TriPlaneGenerator
from bridge.field.weights import metadata_path
from bridge.prior.model import BUNDLED_WEIGHTS, NOISE_DIM, HeadCode, HeadPrior, prochead_generator_config
from bridge.prior.params import PARAM_DIM
from bridge.prior.train import PriorTrainingConfig, ema_beta, evaluate, field_loss, train_prior, update_average


def test_head_code_is_deterministic_per_seed():
    a, b, c = HeadCode.from_seed(4), HeadCode.from_seed(4), HeadCode.from_seed(5)
    assert torch.equal(a.params, b.params) and torch.equal(a.noise, b.noise)
    assert not torch.equal(a.params, c.params)
    assert a.params.shape == (PARAM_DIM,) and a.noise.shape == (NOISE_DIM,)


def test_prior_refuses_a_generator_of_another_family():
    other = TriPlaneGenerator(prochead_generator_config(c_dim=PARAM_DIM + 1, plane_resolution=8))
    with pytest.raises(WeightsError, match="ProcHead heads have"):
        HeadPrior(other)


def test_bundled_weights_are_small_and_describe_their_training():
    assert BUNDLED_WEIGHTS.stat().st_size <= 20 * 2**20
    metadata = json.loads(metadata_path(BUNDLED_WEIGHTS).read_text())
    assert metadata["training"]["command"].startswith("python -m bridge train-prior")
    assert metadata["metrics"]["psnr_db"] > 0


def test_bundled_prior_reproduces_held_out_heads():
    prior = HeadPrior.load()
    figures = evaluate(prior, heads=1, resolution=32, views=((0.0, 0.0),), seed_base=2_000_000)
    # The full benchmark measures 128^2 renders of many heads; this guards against broken weights.
    assert figures["psnr_db"] > 20.0


def test_missing_prior_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(WeightsError, match="train-prior"):
        HeadPrior.load(tmp_path / "prochead.safetensors")


def test_field_loss_ignores_saturated_values_beyond_what_renders_see():
    target = {"sigma": torch.tensor([[[50.0], [-50.0]]]), "sdf": torch.tensor([[[-0.1], [0.1]]]), "rgb": torch.zeros(1, 2, 3)}
    beyond = {"sigma": torch.tensor([[[80.0], [-30.0]]]), "rgb": torch.zeros(1, 2, 3)}
    short = {"sigma": torch.tensor([[[10.0], [5.0]]]), "rgb": torch.zeros(1, 2, 3)}
    assert field_loss(beyond, target, 1.0) == 0
    assert field_loss(short, target, 1.0) > 0.1


def test_training_command_writes_loadable_weights_and_can_be_cancelled(tmp_path):
    config = PriorTrainingConfig(
        steps=50, batch=1, uniform_points=64, surface_points=128, eval_every=1000, eval_heads=1, eval_resolution=16, plane_resolution=16
    )
    seen = []
    metadata = train_prior(
        config,
        tmp_path,
        on_progress=lambda p: seen.append(p.step),
        should_stop=lambda: len(seen) >= 2,
        command="python -m bridge train-prior --test",
    )
    assert seen == [1, 2]
    assert metadata["training"]["steps_done"] == 2 and metadata["training"]["finished"] is False
    prior = HeadPrior.load(tmp_path / "prochead.safetensors")
    assert prior.generator.config.plane_resolution == 16
    assert "psnr_db" in metadata["metrics"]


def test_weight_average_ramps_up_and_follows_the_model():
    assert ema_beta(0, 300.0) == pytest.approx(0.1)
    assert ema_beta(10_000, 300.0) == pytest.approx(0.5 ** (1 / 300))
    model = TriPlaneGenerator(prochead_generator_config(plane_resolution=8))
    average = TriPlaneGenerator(prochead_generator_config(plane_resolution=8))
    before = [a.clone() for a in average.parameters()]
    update_average(average, model, 0.75)
    for a, old, p in zip(average.parameters(), before, model.parameters()):
        assert torch.allclose(a, 0.75 * old + 0.25 * p, atol=1e-6)


def test_training_writes_the_better_of_the_raw_and_averaged_weights(tmp_path):
    config = PriorTrainingConfig(
        steps=3,
        batch=1,
        uniform_points=64,
        surface_points=128,
        eval_every=1000,
        eval_heads=1,
        eval_resolution=16,
        plane_resolution=16,
        ema_half_life=2.0,
    )
    metrics = train_prior(config, tmp_path, command="python -m bridge train-prior --test")["metrics"]
    assert metrics["weights"] in ("averaged", "raw")
    best = max(metrics["raw_weights_psnr_db"], metrics["averaged_weights_psnr_db"])
    assert metrics["psnr_db"] == best
    shipped = HeadPrior.load(tmp_path / "prochead.safetensors")
    assert evaluate(shipped, 1, 16)["psnr_db"] == pytest.approx(best, abs=1e-4)


def test_part_weights_put_more_training_points_on_small_parts():
    from bridge.prior import analytic
    from bridge.prior.train import sample_points

    params = HeadCode.from_seed(3).params[None]
    eyes = analytic.PART_NAMES.index("eyes")

    def eye_share(weights):
        points, _ = sample_points(params, 64, 2048, 0.02, torch.Generator().manual_seed(0), weights)
        return float((analytic.query(points, params)["label"] == eyes).float().mean())

    uniform = eye_share(None)
    emphasised = eye_share(tuple(8.0 if i == eyes else 1.0 for i in range(len(analytic.PART_NAMES))))
    assert emphasised > 3 * max(uniform, 1e-3)


def test_eye_points_lie_on_the_fronts_of_the_eyeballs():
    from bridge.prior import analytic
    from bridge.prior.train import sample_points

    params = HeadCode.from_seed(3).params[None]
    points, target = sample_points(params, 64, 256, 0.02, torch.Generator().manual_seed(0), None, count_eye=512)
    assert points.shape == (1, 64 + 256 + 512, 3) and target["rgb"].shape[1] == points.shape[1]
    eye_points = points[:, -512:]
    values = analytic.query(eye_points, params)
    assert float((values["label"] == analytic.PART_IDS["eyes"]).float().mean()) > 0.6
    assert float(values["sdf"].abs().max()) < 0.05
    layout = analytic.layout(params)
    centres = torch.stack([torch.cat(layout[name], dim=-1)[0] for name in ("eye_left_c", "eye_right_c")])
    assert bool((eye_points[0, :, 2:] >= centres[:, 2].min() - 1e-6).all()), "only the front halves are drawn"


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    small = dict(batch=1, uniform_points=64, surface_points=128, eval_every=1000, eval_heads=1, eval_resolution=16, plane_resolution=16)
    train_prior(PriorTrainingConfig(steps=2, **small), tmp_path / "first")
    first = HeadPrior.load(tmp_path / "first" / "prochead.safetensors").generator.state_dict()
    tuned = train_prior(
        PriorTrainingConfig(
            steps=1, learning_rate=1e-9, eye_points=32, init_weights=str(tmp_path / "first" / "prochead.safetensors"), **small
        ),
        tmp_path / "tuned",
    )
    assert tuned["training"]["config"]["init_weights"].endswith("prochead.safetensors")
    after = HeadPrior.load(tmp_path / "tuned" / "prochead.safetensors").generator.state_dict()
    assert all(torch.allclose(first[name], after[name], atol=1e-5) for name in first)

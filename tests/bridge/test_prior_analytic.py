"""ProcHead: parameter schema and the analytic head field."""

from __future__ import annotations

import pytest
import torch

from bridge.prior import analytic
from bridge.prior.analytic import PART_NAMES, SIGMA_SCALE, head_sdf_parts, layout, query
from bridge.prior.params import (
    EYE_COLOURS,
    HAIR_COLOURS,
    PARAM_DIM,
    PARAM_INDEX,
    PARAM_NAMES,
    PARAM_SPECS,
    denormalize,
    describe,
    normalize,
    params_from_seed,
    sample_params,
    with_overrides,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """The field is many small elementwise ops: one thread avoids OpenMP stalls on busy machines."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


LOW = torch.tensor([s.low for s in PARAM_SPECS])
HIGH = torch.tensor([s.high for s in PARAM_SPECS])


def _head(seed: int = 0, **named) -> torch.Tensor:
    """One head as a batch of one (1, P)."""
    return with_overrides(params_from_seed(seed), **named).unsqueeze(0)


def _at(params: torch.Tensor, *xyz) -> dict[str, torch.Tensor]:
    points = torch.tensor([[list(map(float, p)) for p in xyz]], dtype=torch.float32)
    return query(points, params)


def _scalar(value) -> float:
    return float(value.reshape(-1)[0])


# ---------------------------------------------------------------- params


def test_schema_is_consistent():
    assert PARAM_DIM == len(PARAM_NAMES) == len(PARAM_SPECS)
    assert 18 <= PARAM_DIM <= 26
    assert len(set(PARAM_NAMES)) == PARAM_DIM
    assert all(s.low < s.high and s.doc for s in PARAM_SPECS)
    assert {"brown", "blue", "green", "grey", "hazel"} <= set(EYE_COLOURS)
    assert {"black", "brown", "blonde", "red", "grey", "blue", "pink", "green"} <= set(HAIR_COLOURS)


def test_params_from_seed_is_deterministic():
    a, b = params_from_seed(7), params_from_seed(7)
    assert a.shape == (PARAM_DIM,) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, params_from_seed(8))


def test_sample_params_within_bounds_and_mouth_bimodal():
    params = sample_params(512, torch.Generator().manual_seed(1))
    assert params.shape == (512, PARAM_DIM) and params.dtype == torch.float32
    assert (params >= LOW).all() and (params <= HIGH).all()
    mouth = params[:, PARAM_INDEX["mouth_open"]]
    closed = mouth == 0
    assert 0.35 < closed.float().mean() < 0.65
    assert (mouth[~closed] >= 0.3).all()


def test_normalize_round_trip():
    params = sample_params(64, torch.Generator().manual_seed(2))
    x = normalize(params)
    assert x.min() >= -1.0 - 1e-6 and x.max() <= 1.0 + 1e-6
    torch.testing.assert_close(denormalize(x), params, atol=1e-5, rtol=0)
    torch.testing.assert_close(normalize(LOW), -torch.ones(PARAM_DIM))


def test_describe_and_overrides():
    head = with_overrides(params_from_seed(3), eye_colour="blue", hair_colour="red", mouth_open=1.0, nose_size=1.6)
    words = describe(head)
    assert words["eye_colour"] == "blue" and words["hair_colour"] == "red"
    assert words["mouth"] == "open" and words["nose"] == "big"
    assert describe(with_overrides(head, mouth_open=0.0))["mouth"] == "closed"
    assert describe(with_overrides(head, hair_length=1.0))["hair_length"] == "long"
    with pytest.raises(ValueError, match="Unknown head parameter"):
        with_overrides(head, nose_colour=0.5)
    with pytest.raises(ValueError, match="must lie in"):
        with_overrides(head, mouth_open=2.0)
    with pytest.raises(ValueError, match="eye_colour"):
        with_overrides(head, eye_colour="purple")


# ---------------------------------------------------------------- field


def test_query_shapes_and_dtypes():
    params = torch.stack([params_from_seed(0), params_from_seed(1)])
    points = torch.rand(2, 500, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    out = query(points, params)
    assert out["sdf"].shape == (2, 500, 1) and out["sdf"].dtype == torch.float32
    assert out["sigma"].shape == (2, 500, 1) and out["sigma"].dtype == torch.float32
    assert out["rgb"].shape == (2, 500, 3) and out["rgb"].dtype == torch.float32
    assert out["label"].shape == (2, 500) and out["label"].dtype == torch.int64
    assert out["rgb"].min() >= 0 and out["rgb"].max() <= 1
    assert out["sigma"].abs().max() <= SIGMA_SCALE
    assert out["label"].min() >= 0 and out["label"].max() < len(PART_NAMES)
    parts = head_sdf_parts(points, params)
    assert parts.shape == (2, 500, len(analytic.COMPONENT_NAMES))


def test_batch_matches_single_heads():
    params = torch.stack([params_from_seed(4), params_from_seed(5)])
    points = torch.rand(2, 2000, 3, generator=torch.Generator().manual_seed(3)) * 0.6 - 0.3
    both = query(points, params)
    for b in range(2):
        one = query(points[b : b + 1], params[b : b + 1])
        for key in ("sdf", "sigma", "rgb", "label"):
            torch.testing.assert_close(both[key][b : b + 1], one[key])


def test_local_evaluation_matches_exact_evaluation(monkeypatch):
    """Culling small parts far from their boxes changes nothing near the surface."""
    params = torch.stack([params_from_seed(10), _head(11, mouth_open=0.9)[0]])
    points = torch.rand(2, 20000, 3, generator=torch.Generator().manual_seed(4)) * 0.7 - 0.35
    fast = query(points, params)
    monkeypatch.setattr(analytic, "LOCAL_MARGIN", 10.0)
    exact = query(points, params)
    near = exact["sdf"][..., 0].abs() <= analytic.LABEL_DISTANCE
    assert near.float().mean() > 0.02
    torch.testing.assert_close(fast["sdf"][near], exact["sdf"][near])
    torch.testing.assert_close(fast["sigma"], exact["sigma"], atol=0.1, rtol=0)
    assert torch.equal(fast["label"][near], exact["label"][near])
    torch.testing.assert_close(fast["rgb"][near], exact["rgb"][near], atol=2e-3, rtol=0)


def test_iris_point_is_eyes_in_the_eye_colour():
    params = _head(0, eye_colour="blue")
    lay = layout(params)
    cx, cy, cz = (_scalar(v) for v in lay["eye_right_c"])
    r = _scalar(lay["eye_radius"])
    # on the iris (between pupil and iris edge), just under the eyeball's front surface
    offset = 0.45 * r
    iris_point = (cx + offset, cy, cz + (r * r - offset * offset) ** 0.5 - 0.002)
    front_point = (cx, cy, cz + r - 0.002)
    out = _at(params, iris_point, front_point)
    assert out["label"][0].tolist() == [PART_NAMES.index("eyes")] * 2
    rgb = out["rgb"][0, 0]
    eye = torch.tensor(EYE_COLOURS["blue"])
    assert torch.nn.functional.cosine_similarity(rgb, eye, dim=0) > 0.98
    assert rgb[2] > rgb[0] + 0.2
    brown = _at(_head(0, eye_colour="brown"), iris_point)["rgb"][0, 0]
    assert brown[0] > brown[2]


def test_far_point_is_background_and_skull_centre_is_inside():
    params = _head(1)
    out = _at(params, (0.45, 0.45, 0.45), (0.0, 0.03, 0.0))
    assert out["label"][0, 0] == 0
    assert _scalar(out["sigma"][0, 0]) == pytest.approx(-SIGMA_SCALE, abs=1e-4)
    assert _scalar(out["sdf"][0, 1]) < 0 and _scalar(out["sigma"][0, 1]) > 0


def test_points_outside_the_box_are_empty():
    params = _head(2)
    out = _at(params, (0.6, 0.0, 0.0), (0.0, -0.51, 0.0), (0.0, 0.0, -0.7), (0.52, 0.52, 0.52))
    assert (out["sigma"] == -SIGMA_SCALE).all()
    assert (out["label"] == 0).all()


def test_open_mouth_carves_between_the_lips():
    closed, opened = _head(3, mouth_open=0.0), _head(3, mouth_open=1.0)
    mx, my, mz = (_scalar(v) for v in layout(closed)["mouth_c"])
    point = (mx, my - 0.01, mz)
    assert _scalar(_at(closed, point)["sdf"]) < 0
    opened_out = _at(opened, point)
    assert _scalar(opened_out["sdf"]) > 0
    assert opened_out["label"][0, 0] == PART_NAMES.index("mouth")


def _front_of_nose(params: torch.Tensor) -> float:
    tip_y = _scalar(layout(params)["nose_tip"][1])
    z = torch.linspace(0.0, 0.45, 901)
    points = torch.stack([torch.zeros_like(z), torch.full_like(z, tip_y), z], dim=-1)
    inside = query(points.unsqueeze(0), params)["sdf"][0, :, 0] < 0
    return float(z[inside].max())


def test_bigger_nose_sticks_out_further():
    small, big = _head(4, nose_size=0.7), _head(4, nose_size=1.6)
    assert _scalar(layout(big)["nose_tip"][2]) > _scalar(layout(small)["nose_tip"][2]) + 0.01
    assert _front_of_nose(big) > _front_of_nose(small) + 0.01


def test_every_part_appears_in_a_label_grid():
    params = _head(0, hair_length=0.0, mouth_open=0.8)
    axis = (torch.arange(64) + 0.5) / 64 - 0.5
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(1, -1, 3)
    labels = set(query(grid, params)["label"].unique().tolist())
    assert labels == set(range(len(PART_NAMES)))


def test_heads_stay_inside_the_box_with_margin():
    heads = torch.cat([LOW[None], HIGH[None], sample_params(4, torch.Generator().manual_seed(5))])
    heads[0, PARAM_INDEX["hair_length"]] = 1.0
    shell = torch.rand(len(heads), 6000, 3, generator=torch.Generator().manual_seed(6)) - 0.5
    face = torch.randint(0, 3, (len(heads), 6000), generator=torch.Generator().manual_seed(7))
    outer = 0.47 + 0.03 * torch.rand(len(heads), 6000, generator=torch.Generator().manual_seed(8))
    sign = torch.where(shell.gather(-1, face[..., None])[..., 0] < 0, -1.0, 1.0)
    shell = shell.scatter(-1, face[..., None], (sign * outer)[..., None])
    assert (query(shell, heads)["sdf"] >= 0).all()


def test_field_is_differentiable_in_points():
    points = torch.rand(1, 300, 3, generator=torch.Generator().manual_seed(9)) * 0.5 - 0.25
    points.requires_grad_(True)
    out = query(points, _head(6))
    (out["sigma"].sum() + out["rgb"].sum()).backward()
    assert points.grad is not None and torch.isfinite(points.grad).all()

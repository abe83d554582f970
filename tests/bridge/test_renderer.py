import torch

from bridge.field import cameras
from bridge.field.renderer import RenderConfig, VolumeRenderer

RADIUS = 0.3
COLOUR = torch.tensor([0.2, 0.6, 0.9])


def sphere_field(points: torch.Tensor) -> dict[str, torch.Tensor]:
    inside = points.norm(dim=-1, keepdim=True) < RADIUS
    sigma = torch.where(inside, torch.full_like(inside, 400.0, dtype=torch.float32), torch.full_like(inside, -400.0, dtype=torch.float32))
    return {"sigma": sigma, "rgb": COLOUR.expand(*points.shape[:-1], 3)}


def _render(resolution=32, **config):
    renderer = VolumeRenderer(RenderConfig(**config))
    pose = cameras.orbit_pose(0.0, 0.0, pivot=(0.0, 0.0, 0.0))
    return renderer.render(sphere_field, pose, cameras.intrinsics_matrix(), resolution), pose


def _analytic_hits(pose, resolution):
    origins, directions = cameras.ray_bundle(pose, cameras.intrinsics_matrix(), resolution)
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - RADIUS**2
    disc = b * b - c
    hit = disc > 0
    depth = -b - torch.sqrt(disc.clamp_min(0))
    return hit.reshape(resolution, resolution), depth.reshape(resolution, resolution)


def test_sphere_opacity_and_depth_match_ray_intersection():
    out, pose = _render()
    hit, depth = _analytic_hits(pose, 32)
    opacity = out["opacity"][0, 0]
    # Away from the silhouette the sphere is opaque and the background empty.
    origins, directions = cameras.ray_bundle(pose, cameras.intrinsics_matrix(), 32)
    miss_distance = ((origins + directions * (-(origins * directions).sum(-1, keepdim=True))).norm(dim=-1)).reshape(32, 32)
    core = miss_distance < RADIUS * 0.9
    empty = miss_distance > RADIUS * 1.1
    assert core.sum() > 100 and empty.sum() > 100
    assert torch.all(opacity[core] > 0.99)
    assert torch.all(opacity[empty] < 1e-3)
    assert torch.allclose(out["depth"][0, 0][core], depth[core], atol=0.01)
    assert torch.allclose(out["rgb"][0, :, core.nonzero()[0, 0], core.nonzero()[0, 1]], COLOUR, atol=1e-3)


def test_background_colour_fills_empty_pixels():
    out, _ = _render(resolution=16, background=(1.0, 1.0, 1.0))
    corner = out["rgb"][0, :, 0, 0]
    assert torch.allclose(corner, torch.ones(3), atol=1e-3)


def test_importance_samples_sharpen_depth():
    coarse, pose = _render(importance_samples=0, depth_samples=24)
    fine, _ = _render(importance_samples=48, depth_samples=24)
    hit, depth = _analytic_hits(pose, 32)
    core = hit & (coarse["opacity"][0, 0] > 0.99)
    coarse_error = (coarse["depth"][0, 0][core] - depth[core]).abs().mean()
    fine_error = (fine["depth"][0, 0][core] - depth[core]).abs().mean()
    assert fine_error < coarse_error


def test_clamp_to_box_removes_density_outside():
    def fog(points):
        return {"sigma": torch.full_like(points[..., :1], 50.0), "rgb": torch.zeros_like(points)}

    renderer = VolumeRenderer(RenderConfig(clamp_to_box=True, box_size=0.2))
    pose = cameras.orbit_pose(0.0, 0.0, pivot=(0.0, 0.0, 0.0))
    out = renderer.render(fog, pose, cameras.intrinsics_matrix(), 16)
    # rays through the middle cross the small box; rays near the border of the view miss it.
    assert out["opacity"][0, 0, 8, 8] > 0.99
    assert out["opacity"][0, 0, 0, 0] < 1e-6


def test_box_limits_are_where_rays_cross_the_box():
    from bridge.field.renderer import box_ray_limits

    origins = torch.tensor([[[0.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.3, 0.0, 3.0], [5.0, 5.0, 3.0]]])
    directions = torch.nn.functional.normalize(
        torch.tensor([[[0.0, 0.0, -1.0], [0.0, 0.1, -1.0], [0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]]), dim=-1
    )
    start, end = box_ray_limits(origins, directions, box_size=1.6)
    assert torch.allclose(start[0, 0], torch.tensor(2.2)) and torch.allclose(end[0, 0], torch.tensor(3.8))
    slant = directions[0, 1, 2].abs()
    assert torch.allclose(start[0, 1], 2.2 / slant) and torch.allclose(end[0, 1], 3.8 / slant)
    assert torch.allclose(start[0, 2], torch.tensor(2.2)) and torch.allclose(end[0, 2], torch.tensor(3.8))
    # The ray past the box gets EG3D's stand-in range: from the nearest to the farthest entry of the others.
    assert torch.allclose(start[0, 3], start[0, :3].min()) and torch.allclose(end[0, 3], start[0, :3].max())


def test_box_limited_rays_render_the_sphere_like_a_fixed_range():
    fixed, _ = _render(ray_start=2.25, ray_end=3.3, box_size=1.0)
    boxed, _ = _render(ray_start=None, ray_end=None, box_size=1.0)
    assert torch.allclose(boxed["opacity"], fixed["opacity"], atol=0.02)
    hit = fixed["opacity"][0, 0] > 0.99
    assert torch.allclose(boxed["depth"][0, 0][hit], fixed["depth"][0, 0][hit], atol=0.01)


def test_rays_stop_once_no_light_is_left():
    """Without gradients a ray is not sampled behind where its light ran out: the same picture
    from fewer field evaluations."""
    evaluated = {}

    def counted(key):
        def field(points):
            evaluated[key] = evaluated.get(key, 0) + points.shape[1]
            return sphere_field(points)

        return field

    pose = cameras.orbit_pose(0.0, 0.0, pivot=(0.0, 0.0, 0.0))
    with torch.no_grad():
        full = VolumeRenderer(RenderConfig(stop_transmittance=0.0)).render(counted("full"), pose, cameras.intrinsics_matrix(), 32)
        stopped = VolumeRenderer(RenderConfig()).render(counted("stopped"), pose, cameras.intrinsics_matrix(), 32)
    with_gradients = VolumeRenderer(RenderConfig()).render(counted("gradients"), pose, cameras.intrinsics_matrix(), 32)
    assert evaluated["stopped"] < 0.85 * evaluated["full"] and evaluated["gradients"] == evaluated["full"]
    for name in ("rgb", "opacity"):
        assert (full[name] - stopped[name]).abs().max() < 1e-4, name
        assert torch.equal(full[name], with_gradients[name]), name
    hit, depth = _analytic_hits(pose, 32)
    assert (full["depth"] - stopped["depth"])[0, 0][hit].abs().max() < 1e-4

"""Stage II lights: exit points on the unit sphere, exponent caps, and the miss / hit / self-hit rule."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from nero_nerfstudio.fields.light_fields import (
    InnerLightField,
    OuterLightField,
    PhotographerLightField,
    StageTwoLights,
    sphere_exit_points,
)
from nero_nerfstudio.raycasting.factory import make_ray_caster


def unit(vectors: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(vectors, dim=-1)


def test_sphere_exit_points_lie_on_the_unit_sphere_ahead_of_the_point():
    torch.manual_seed(0)
    points = unit(torch.randn(200, 3)) * torch.rand(200, 1) * 0.99
    directions = unit(torch.randn(200, 3))
    exits = sphere_exit_points(points, directions)
    assert torch.allclose(exits.norm(dim=-1), torch.ones(200), atol=1e-5)
    travel = exits - points
    distance = travel.norm(dim=-1, keepdim=True)
    assert (distance > 0).all()
    assert torch.allclose(travel, distance * directions, atol=1e-5)


def test_points_outside_radius_0_999_are_pulled_in_by_multiplying():
    point = torch.tensor([[0.0, 0.0, 1.0]])
    direction = torch.tensor([[0.0, 0.0, -1.0]])
    # Scaled to 0.999, the ray crosses the whole sphere to z = -1.
    assert torch.allclose(sphere_exit_points(point, direction), torch.tensor([[0.0, 0.0, -1.0]]), atol=1e-6)
    tangent = sphere_exit_points(torch.tensor([[0.0, 0.0, 1.2]]), torch.tensor([[1.0, 0.0, 0.0]]))
    # x * 0.999 = (0, 0, 1.1988) is outside the sphere: not re-normalised, the exit is the point itself.
    assert torch.allclose(tangent, torch.tensor([[0.0, 0.0, 1.2 * 0.999]]), atol=1e-6)


def test_outer_light_input_sizes_and_position_dependence():
    torch.manual_seed(0)
    direction_light = OuterLightField("direction", hidden_dim=16)
    sphere_light = OuterLightField("sphere_direction", hidden_dim=16)
    assert direction_light.mlp.in_dim == 72 and sphere_light.mlp.in_dim == 144
    directions = unit(torch.randn(5, 3))
    near, far = torch.zeros(5, 3), torch.full((5, 3), 0.3)
    assert torch.allclose(direction_light(near, directions), direction_light(far, directions))
    assert not torch.allclose(sphere_light(near, directions), sphere_light(far, directions))
    with pytest.raises(ValueError, match="outer light type"):
        OuterLightField("cubemap", hidden_dim=16)  # type: ignore[arg-type]


def test_outer_and_inner_lights_start_near_0_5_and_are_capped_at_e5():
    torch.manual_seed(0)
    outer = OuterLightField("direction", hidden_dim=32)
    inner = InnerLightField(hidden_dim=32)
    directions = unit(torch.randn(50, 3))
    points = torch.rand(50, 3) * 0.5
    # Bias log(0.5): the initial radiance is around 0.5 (within the spread of a fresh MLP).
    initial = outer(points, directions)
    assert (initial > 0).all() and 0.2 < initial.median().item() < 1.2
    for light, args in ((outer, (points, directions)), (inner, (points, unit(torch.randn(50, 3)), directions))):
        with torch.no_grad():
            light.mlp.layers[-1].bias.fill_(100.0)
        assert torch.allclose(light(*args), torch.full((50, 3), math.exp(5.0)))


def test_photographer_light_is_at_most_one_and_zero_off_the_plane():
    torch.manual_seed(0)
    light = PhotographerLightField(hidden_dim=16)
    with torch.no_grad():
        light.mlp.layers[-1].bias.fill_(100.0)
    # Photographer frame = world frame: its plane is z = 0.
    w2p = torch.eye(4)[:3].expand(2, 3, 4)
    points = torch.tensor([[0.1, 0.0, -1.0], [0.1, 0.0, -1.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])  # towards the plane, away from it
    radiance, weight = light(points, directions, w2p)
    assert torch.allclose(radiance[0], torch.ones(3)) and torch.allclose(weight[0], torch.ones(1))
    assert torch.all(radiance[1] == 0) and torch.all(weight[1] == 0)


def test_stage_two_photographer_light_starts_at_0_02():
    # NeRO initialises Stage II's photographer light higher than Stage I's (0.01, see the split-sum shader tests).
    light = PhotographerLightField(hidden_dim=16)
    torch.testing.assert_close(light.mlp.layers[-1].bias, torch.full((4,), math.log(0.02)))


@pytest.fixture(scope="module")
def box_caster():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    return make_ray_caster(box.vertices, box.faces, backend="open3d")


def test_incident_radiance_picks_outer_inner_or_nothing(box_caster):
    torch.manual_seed(0)
    lights = StageTwoLights("direction", photographer_light=False, hidden_dim=16)
    # Point on the top face (z = 0.5): up misses the box, down crosses it to the bottom face (z = -0.5).
    # A point just below the top face looking up hits that face within 1e-5: a self hit, no light.
    points = torch.tensor([[0.1, 0.2, 0.5], [0.0, 0.0, 0.5 - 1.2e-5]])
    directions = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    radiance = lights.incident_radiance(points, directions, box_caster)
    assert radiance.shape == (2, 2, 3)
    up = torch.tensor([[0.0, 0.0, 1.0]])
    assert torch.allclose(radiance[0, 0], lights.outer_light(points[:1], up)[0])
    expected_inner = lights.inner_light(
        torch.tensor([[0.1, 0.2, -0.5]]), torch.tensor([[0.0, 0.0, -1.0]]), torch.tensor([[0.0, 0.0, -1.0]])
    )
    assert torch.allclose(radiance[0, 1], expected_inner[0], atol=1e-5)
    assert torch.all(radiance[1] == 0)


def test_incident_radiance_blends_the_photographer_light_on_misses(box_caster):
    torch.manual_seed(0)
    lights = StageTwoLights("direction", photographer_light=True, hidden_dim=16)
    with torch.no_grad():
        lights.photographer_light.mlp.layers[-1].bias.fill_(100.0)  # light 1, weight 1
    w2p = torch.eye(4)[:3].clone()
    w2p[2, 3] = -3.0  # the photographer's plane is z = 3
    points = torch.tensor([[0.0, 0.0, 0.5]])
    directions = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]])
    radiance = lights.incident_radiance(points, directions, box_caster, w2p[None])
    assert torch.allclose(radiance[0, 0], torch.ones(3))  # all photographer
    assert not torch.allclose(radiance[0, 1], torch.ones(3))  # a hit: inner light only
    with pytest.raises(ValueError, match="photographer_w2p"):
        lights.incident_radiance(points, directions, box_caster)

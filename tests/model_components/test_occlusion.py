"""Occlusion target along reflected rays and the choice of surface samples that get one."""

from __future__ import annotations

import torch

from nero_nerfstudio.model_components.occlusion import occlusion_target, select_occlusion_points

ROOF_HEIGHT = 0.5


def roof_sdf(points: torch.Tensor) -> torch.Tensor:
    """A solid slab above y = 0.5 (negative inside the slab)."""
    return ROOF_HEIGHT - points[:, 1:2]


def test_roof_occludes_and_open_sky_does_not():
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.1, 0.0], [0.0, 0.0, 0.0]])
    directions = torch.nn.functional.normalize(
        torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.3, 1.0, 0.1], [1.0, 0.0, 0.0]]), dim=-1
    )
    target = occlusion_target(roof_sdf, points, directions, inv_s=200.0)
    assert target.shape == (4, 1)
    up, down, slanted_up, sideways = target[:, 0].tolist()
    assert up > 0.95 and slanted_up > 0.95
    assert down < 0.05 and sideways < 0.05


def test_soft_sdf_gives_partial_occlusion_and_no_gradients():
    points = torch.zeros(1, 3, requires_grad=True)
    direction = torch.tensor([[0.0, 1.0, 0.0]])
    blunt = occlusion_target(roof_sdf, points, direction, inv_s=2.0)
    sharp = occlusion_target(roof_sdf, points, direction, inv_s=200.0)
    assert 0.0 < blunt.item() < sharp.item()
    assert not blunt.requires_grad


def test_empty_input():
    assert occlusion_target(roof_sdf, torch.zeros(0, 3), torch.zeros(0, 3), inv_s=20.0).shape == (0, 1)


def test_selection_keeps_front_facing_surface_samples_inside_the_sphere():
    points = torch.tensor([[0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.9995, 0.0, 0.0], [0.3, 0.0, 0.0]])
    sdf = torch.tensor([[0.005], [0.005], [0.02], [0.0], [-0.009]])
    gradients = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    directions = torch.tensor([[-1.0, 0.0, 0.0]] * 5)
    # Kept: 0 (front-facing surface sample) and 4; dropped: 1 (back-facing), 2 (off the surface), 3 (|p| >= 0.999).
    selected = select_occlusion_points(points, sdf, gradients, directions, max_points=10)
    assert sorted(selected.tolist()) == [0, 4]


def test_selection_keeps_a_random_subset_of_at_most_max_points():
    num = 100
    points = torch.zeros(num, 3)
    sdf = torch.zeros(num, 1)
    gradients = torch.tensor([[0.0, 0.0, 1.0]]).expand(num, 3)
    directions = torch.tensor([[0.0, 0.0, -1.0]]).expand(num, 3)
    generator = torch.Generator().manual_seed(0)
    selected = select_occlusion_points(points, sdf, gradients, directions, max_points=16, generator=generator)
    assert selected.shape == (16,) and len(set(selected.tolist())) == 16
    assert selected.max().item() < num and sorted(selected.tolist()) != list(range(16))

"""Tests of the photographer-plane intersection on hand-built geometry."""

from __future__ import annotations

import numpy as np
import torch

from nero_nerfstudio.core.photographer import photographer_w2p
from nero_nerfstudio.model_components.photographer_light import intersect_photographer_plane

# Photographer at world (0, -3, 0), looking along +y (towards the object); frame rows X, Y, Z with Z = +y.
# World -> photographer: x_p = R (x - c), R rows: X = (1, 0, 0), Y = (0, 0, -1), Z = (0, 1, 0).
ROTATION = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
CENTRE = torch.tensor([0.0, -3.0, 0.0])
W2P = torch.cat([ROTATION, -(ROTATION @ CENTRE)[:, None]], dim=-1)  # [3, 4]


def _intersect(points, directions, roughness=None):
    points = torch.tensor(points, dtype=torch.float32)
    directions = torch.nn.functional.normalize(torch.tensor(directions, dtype=torch.float32), dim=-1)
    return intersect_photographer_plane(points, directions, W2P.expand(len(points), 3, 4), roughness)


def test_hits_in_front_give_scaled_plane_coordinates() -> None:
    # From the origin straight back at the photographer: hits the plane at the camera centre, t = 3.
    # From (1, 0, 0.5) towards -y: hits (1, -3, 0.5) -> plane (x, y) = (1, -0.5) (Y axis points down).
    mean, variance, valid = _intersect([[0, 0, 0], [1.0, 0.0, 0.5]], [[0, -1, 0], [0, -1, 0]])
    assert valid.tolist() == [[True], [True]]
    torch.testing.assert_close(mean, torch.tensor([[0.0, 0.0], [0.3, -0.15]]))
    torch.testing.assert_close(variance, torch.zeros(2, 1))  # no roughness (Stage II)


def test_oblique_hit_and_stage_one_variance() -> None:
    # From (0, 0, 0) along (1, -1, 0)/sqrt(2): plane y = -3 reached at world (3, -3, 0), t = 3 sqrt(2).
    roughness = torch.tensor([[0.5]])
    mean, variance, valid = _intersect([[0.0, 0.0, 0.0]], [[1.0, -1.0, 0.0]], roughness)
    assert valid.item()
    torch.testing.assert_close(mean, torch.tensor([[0.9, 0.0]]))
    torch.testing.assert_close(variance, torch.tensor([[0.5 * (0.3 * 3 * 2**0.5) ** 2]]))


def test_invalid_cases() -> None:
    points = [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    directions = [
        [0, 1, 0],  # away from the photographer: t < 0
        [1, 0, 0],  # parallel to the plane
        [1, -0.2, 0],  # hits at x = 15 -> |mean| = 4.5 >= 1.5
        [0.4, -1, 0],  # hits at x = 1.2 -> |mean| = 0.36: valid
    ]
    roughness = torch.full((4, 1), 0.3)
    mean, variance, valid = _intersect(points, directions, roughness)
    assert valid[:, 0].tolist() == [False, False, False, True]
    assert torch.all(mean[:3] == 0) and torch.all(variance[:3] == 0)
    assert torch.isfinite(mean).all() and torch.isfinite(variance).all()
    torch.testing.assert_close(mean[3], torch.tensor([0.36, 0.0]))


def test_gradients_are_finite_for_grazing_rays() -> None:
    points = torch.zeros(2, 3, requires_grad=True)
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], requires_grad=True)
    roughness = torch.full((2, 1), 0.2, requires_grad=True)
    mean, variance, _ = intersect_photographer_plane(points, directions, W2P.expand(2, 3, 4), roughness)
    (mean.sum() + variance.sum()).backward()
    for tensor in (points, directions, roughness):
        assert torch.isfinite(tensor.grad).all()


def test_consistent_with_the_dataparser_photographer_frame() -> None:
    """With the frame from ``core.photographer``, a ray from the object towards the (dropped) camera centre hits
    the plane at the centre: mean 0, t = distance."""
    centre = np.array([2.0, -3.0, 0.5])
    forward = -centre / np.linalg.norm(centre)  # looking at the origin
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # OpenCV rows x, y, z
    w2c = np.concatenate([rotation, -(rotation @ centre)[:, None]], axis=-1)[None]
    w2p = torch.from_numpy(photographer_w2p(w2c)).float()

    dropped_centre = torch.tensor([[2.0, -3.0, 0.0]])
    distance = dropped_centre.norm()
    roughness = torch.tensor([[0.1]])
    mean, variance, valid = intersect_photographer_plane(torch.zeros(1, 3), dropped_centre / distance, w2p, roughness)
    assert valid.item()
    torch.testing.assert_close(mean, torch.zeros(1, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(variance, 0.1 * (0.3 * distance) ** 2 * torch.ones(1, 1))

"""Cameras of a rendered scene: positions on a sphere, all looking at the origin (pure numpy, Blender frame)."""

from __future__ import annotations

import math

import numpy as np


def fibonacci_sphere_directions(num_views: int, seed: int) -> np.ndarray:
    """Unit directions ``[num_views, 3]`` spread evenly over the whole sphere (upper and lower hemisphere).

    Heights are evenly spaced in ``(-1, 1)`` (never exactly a pole, so a z-up look-at is well defined) and
    azimuths advance by the golden angle; the seed turns the whole spiral about z.
    """
    index = np.arange(num_views) + 0.5
    height = 1.0 - 2.0 * index / num_views
    ring_radius = np.sqrt(1.0 - height**2)
    golden_angle = math.pi * (3.0 - math.sqrt(5.0))
    azimuth = index * golden_angle + np.random.default_rng(seed).uniform(0.0, 2.0 * math.pi)
    return np.stack([ring_radius * np.cos(azimuth), ring_radius * np.sin(azimuth), height], axis=-1)


def look_at_w2c(centers: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """OpenCV world-to-camera poses ``[N, 3, 4]`` of cameras at ``centers`` ``[N, 3]`` looking at the origin.

    Camera axes: x right, y down (image rows), z forward; the image's "up" is the projection of ``up``.
    """
    forward = -centers / np.linalg.norm(centers, axis=-1, keepdims=True)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward], axis=1)
    translation = -(rotation @ centers[:, :, None])
    return np.concatenate([rotation, translation], axis=-1)


def pinhole_intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """``K`` ``[3, 3]`` with square pixels, principal point at the image centre, ``fov_deg`` across the width."""
    focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])

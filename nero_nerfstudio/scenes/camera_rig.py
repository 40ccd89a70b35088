"""Cameras of a rendered scene: positions around the object, all looking at the origin (pure numpy, Blender frame)."""

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


def tabletop_ring_centers(
    num_views: int,
    distance: float,
    seed: int,
    min_elevation_deg: float = 10.0,
    max_elevation_deg: float = 60.0,
    distance_jitter: float = 0.1,
    height_cycles: int = 3,
) -> np.ndarray:
    """Camera centres ``[num_views, 3]`` of a handheld walk around an object on a table (z up, object at the origin).

    Azimuths go once around in order, each jittered within its ``360 / num_views`` degree step. Elevations above
    the horizontal plane through the origin are stratified over ``[min_elevation_deg, max_elevation_deg]`` and go
    down and up ``height_cycles`` times along the walk, as a hand lowers and raises the camera, so that every view
    has neighbours at similar heights (views at grazing angles match only those). Distances are uniform in
    ``distance * [1 - distance_jitter, 1 + distance_jitter]``. The seed draws the jitters and the wave's phase.
    """
    rng = np.random.default_rng(seed)
    step = 2.0 * math.pi / num_views
    azimuth = (np.arange(num_views) + rng.uniform(0.2, 0.8, num_views)) * step + rng.uniform(0.0, 2.0 * math.pi)
    phase = (np.arange(num_views) + 0.5) * height_cycles / num_views + rng.uniform()
    wave = np.abs(2.0 * (phase % 1.0) - 1.0)
    # The k-th lowest point of the wave gets the k-th stratum: exactly one view per stratum.
    rank = np.argsort(np.argsort(wave, kind="stable"))
    strata = (rank + rng.uniform(0.0, 1.0, num_views)) / num_views
    elevation = np.radians(min_elevation_deg + strata * (max_elevation_deg - min_elevation_deg))
    radius = distance * rng.uniform(1.0 - distance_jitter, 1.0 + distance_jitter, num_views)
    ring_radius = radius * np.cos(elevation)
    return np.stack([ring_radius * np.cos(azimuth), ring_radius * np.sin(azimuth), radius * np.sin(elevation)], -1)


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

"""The learned environment light as an equirectangular HDR image that Blender reads as a World texture.

Stage II learns the outer light as a function of the direction (method.md §4.3). Sampled over Blender's
equirectangular layout in the frame ``nero-relight`` renders in (the normalised frame stood upright by
:func:`~nero_nerfstudio.relight.cameras.object_rotation`), it relights the exported materials under the light they
were learned with (``nero-relight --hdr environment.hdr``), and shows how sharp an environment the light field holds.

``nero-export materials`` writes the map (:func:`~nero_nerfstudio.export.materials.export_environment`).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from jaxtyping import Float

from nero_nerfstudio.relight.cameras import object_rotation

EnvironmentFn = Callable[[Float[torch.Tensor, "num_dirs 3"]], Float[torch.Tensor, "num_dirs 3"]]
"""Unit directions of the normalised frame -> linear radiance arriving from them."""

DEFAULT_ENVIRONMENT_HEIGHT = 256
"""Rows of the exported map (twice as many columns): 0.7 degrees per pixel."""


def equirect_directions(height: int) -> Float[np.ndarray, "height width 3"]:
    """Unit directions of the pixel centres of a ``height x 2 height`` equirectangular image in Blender's world
    frame (z up), row 0 at the top, as Cycles' Environment Texture maps them: the image centre looks along +x,
    +y is a quarter of the width to its left, the top row looks up."""
    width = 2 * height
    u = (np.arange(width) + 0.5) / width
    v = 1.0 - (np.arange(height) + 0.5) / height  # Blender's v grows upwards; image rows grow downwards
    azimuth = math.pi - 2.0 * math.pi * u  # Cycles: u = (atan2(y, x) - pi) / (-2 pi)
    polar = math.pi - math.pi * v  # Cycles: v = (acos(z) - pi) / (-pi)
    polar, azimuth = np.meshgrid(polar, azimuth, indexing="ij")
    return np.stack(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=-1
    )


@torch.no_grad()
def environment_map(
    environment_fn: EnvironmentFn,
    up_axis: str,
    height: int = DEFAULT_ENVIRONMENT_HEIGHT,
    batch_size: int = 65536,
    device: torch.device | str = "cpu",
) -> Float[np.ndarray, "height width 3"]:
    """The light of ``environment_fn`` (normalised frame) as a float32 ``[height, 2 height, 3]`` equirectangular
    image in Blender's world frame, the normalised frame turned upright for its ``up_axis`` (``"y"`` or ``"z"``)."""
    blender_dirs = equirect_directions(height).reshape(-1, 3)
    # object_rotation takes normalised-frame vectors into Blender's frame; row vectors times it go back.
    normalised_dirs = torch.from_numpy((blender_dirs @ object_rotation(up_axis)).astype(np.float32)).to(device)
    batches = normalised_dirs.split(batch_size)
    radiance = torch.cat([environment_fn(directions) for directions in batches])
    return radiance.float().cpu().numpy().reshape(height, 2 * height, 3)

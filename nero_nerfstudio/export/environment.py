"""The learned environment light as an equirectangular HDR image that Blender reads as a World texture.

Stage II learns the outer light as a function of the direction (method.md §4.3). Sampled over Blender's
equirectangular layout in the frame ``nero-relight`` renders in (the normalised frame stood upright by
:func:`~nero_nerfstudio.relight.cameras.object_rotation`), it relights the exported materials under the light they
were learned with (``nero-relight --hdr environment.hdr``), and shows how sharp an environment the light field holds.

Files: ``environment.hdr`` (linear radiance, Radiance RGBE) and ``environment.png`` (sRGB, clipped at 1).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.relight.cameras import object_rotation
from nero_nerfstudio.utils.color import linear_to_srgb
from nero_nerfstudio.utils.io import atomic_path

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


def save_environment(
    output_dir: Path, environment_fn: EnvironmentFn, up_axis: str, height: int, device: torch.device | str = "cpu"
) -> Dict[str, Path]:
    """Write ``environment.hdr`` and ``environment.png`` of ``environment_fn`` to ``output_dir``, atomically."""
    import cv2  # pylint: disable=import-outside-toplevel  # OpenCV writes Radiance .hdr; imported only here

    radiance = environment_map(environment_fn, up_axis, height, device=device)
    paths = {"environment": output_dir / "environment.hdr", "environment_preview": output_dir / "environment.png"}
    with atomic_path(paths["environment"]) as tmp_path:
        if not cv2.imwrite(str(tmp_path), np.ascontiguousarray(radiance[..., ::-1])):  # OpenCV wants BGR
            raise NeroDataError(paths["environment"], "OpenCV could not write this Radiance .hdr file")
    preview = linear_to_srgb(torch.from_numpy(radiance)).clamp(0.0, 1.0).numpy()
    with atomic_path(paths["environment_preview"]) as tmp_path:
        Image.fromarray(np.round(preview * 255.0).astype(np.uint8)).save(tmp_path, format="PNG")
    return paths

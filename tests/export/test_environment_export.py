"""The learned environment as Blender's equirectangular World texture: layout, frame and files."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nero_nerfstudio.export.environment import environment_map, equirect_directions
from nero_nerfstudio.export.materials import export_environment
from nero_nerfstudio.relight.cameras import object_rotation


def cycles_equirect_uv(direction: np.ndarray) -> tuple[float, float]:
    """Cycles' ``direction_to_equirectangular`` (u right, v up, both in [0, 1]), written from its formula."""
    x, y, z = direction / np.linalg.norm(direction)
    return (math.atan2(y, x) - math.pi) / (-2.0 * math.pi), (math.acos(z) - math.pi) / (-math.pi)


def pixel_of(direction: np.ndarray, height: int) -> tuple[int, int]:
    """Row (from the top) and column of the pixel Cycles reads for a Blender-frame direction."""
    u, v = cycles_equirect_uv(direction)
    return min(int((1.0 - v) * height), height - 1), int(u * 2 * height) % (2 * height)


def test_equirect_directions_are_the_pixels_cycles_looks_up():
    height = 16
    directions = equirect_directions(height)
    assert directions.shape == (height, 2 * height, 3)
    assert np.allclose(np.linalg.norm(directions, axis=-1), 1.0)
    for row, column in [(0, 0), (3, 5), (8, 16), (15, 31), (10, 23)]:
        assert pixel_of(directions[row, column], height) == (row, column)
    # The image centre looks along +x, +y a quarter width to its left, the top row up.
    assert pixel_of(np.array([1.0, 0.0, 0.0]), height)[1] in (height - 1, height)
    assert pixel_of(np.array([0.0, 1.0, 0.0]), height)[1] in (height // 2 - 1, height // 2)
    assert directions[0, :, 2].min() > 0.99


@pytest.mark.parametrize("up_axis", ["y", "z"])
def test_a_sun_of_the_normalised_frame_lands_where_blender_sees_it_after_relight_stands_the_object_up(up_axis: str):
    sun = np.array([0.3, -0.5, 0.81])
    sun /= np.linalg.norm(sun)

    def light(directions: torch.Tensor) -> torch.Tensor:
        cosine = directions @ torch.tensor(sun, dtype=directions.dtype)
        return torch.exp(200.0 * (cosine[:, None] - 1.0)).expand(-1, 3) + 0.01

    height = 64
    image = environment_map(light, up_axis, height, batch_size=1000)
    assert image.shape == (height, 2 * height, 3) and image.dtype == np.float32
    brightest = np.unravel_index(np.argmax(image[..., 0]), image.shape[:2])
    blender_sun = object_rotation(up_axis) @ sun
    row, column = pixel_of(blender_sun, height)
    column_offset = abs(brightest[1] - column)
    assert abs(brightest[0] - row) <= 1 and min(column_offset, 2 * height - column_offset) <= 1  # wraps in azimuth
    assert image.min() >= 0.01 - 1e-6 and image.max() > 0.9


def test_saved_hdr_reads_back_as_the_linear_map_and_the_png_is_its_srgb_preview(tmp_path: Path):
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    def light(directions: torch.Tensor) -> torch.Tensor:  # a sky brighter above, coloured, up to 2.5
        up = directions[:, 2:3]
        return torch.cat([0.5 + 2.0 * up.clamp_min(0), 0.5 + 0.0 * up, 0.2 + 0.1 * (1 - up)], dim=-1)

    paths = export_environment(tmp_path, light, "z", height=32)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["environment.hdr", "environment.png"]
    read = cv2.imread(str(paths["environment"]), cv2.IMREAD_UNCHANGED)[..., ::-1]
    expected = environment_map(light, "z", 32)
    assert read.shape == (32, 64, 3)
    # RGBE shares one exponent per pixel: each channel within 1/128 (truncated 8-bit mantissas) of the brightest.
    assert (np.abs(read - expected) <= expected.max(axis=-1, keepdims=True) / 100.0).all()
    preview = np.asarray(Image.open(paths["environment_preview"]))
    assert preview.shape == (32, 64, 3)
    assert preview[0, :, 0].min() == 255 and preview[-1, :, 0].max() < 255  # red clipped at the top only

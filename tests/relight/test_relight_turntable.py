"""Turntable video from RGBA frames."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.relight.turntable import composite_over, write_turntable


def _frames(folder: Path, count: int = 3) -> list:
    paths = []
    for index in range(count):
        rgba = np.zeros((8, 8, 4), np.uint8)
        rgba[2:6, 2:6] = (200, 40 * index, 10, 255)  # opaque square, transparent surround
        paths.append(folder / f"{index}.png")
        Image.fromarray(rgba).save(paths[-1])
    return paths


def test_composite_over_white():
    rgba = np.array([[[100, 50, 0, 255], [100, 50, 0, 0], [0, 0, 0, 128]]], np.uint8)
    np.testing.assert_array_equal(composite_over(rgba), [[[100, 50, 0], [255, 255, 255], [127, 127, 127]]])


def test_gif_holds_every_frame(tmp_path: Path):
    written = write_turntable(_frames(tmp_path), tmp_path / "turntable.gif", fps=10)
    assert written == tmp_path / "turntable.gif"
    frames = iio.imread(written, index=None)
    assert frames.shape[0] == 3
    assert tuple(frames[0][0, 0, :3]) == (255, 255, 255)  # transparent background became white
    assert frames[2][3, 3, 0] > 150 and frames[2][3, 3, 1] > frames[0][3, 3, 1]


def test_mp4_falls_back_to_gif_without_ffmpeg(tmp_path: Path):
    written = write_turntable(_frames(tmp_path), tmp_path / "turntable.mp4")
    has_ffmpeg = importlib.util.find_spec("imageio_ffmpeg") is not None
    assert written == tmp_path / ("turntable.mp4" if has_ffmpeg else "turntable.gif")
    assert written.stat().st_size > 0


def test_bad_video_requests(tmp_path: Path):
    with pytest.raises(NeroDataError, match="video must end with one of .mp4, .gif"):
        write_turntable(_frames(tmp_path), tmp_path / "turntable.avi")
    with pytest.raises(NeroDataError, match="no frames"):
        write_turntable([], tmp_path / "turntable.gif")

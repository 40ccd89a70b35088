"""Turntable video of the relit frames: MP4 through imageio's ffmpeg plugin, or a GIF when ffmpeg is missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.io import atomic_path

VIDEO_SUFFIXES = (".mp4", ".gif")


def composite_over(rgba: np.ndarray, background: float = 1.0) -> np.ndarray:
    """uint8 ``[H, W, 4]`` straight-alpha image -> uint8 ``[H, W, 3]`` over a grey level in ``[0, 1]``."""
    colour = rgba[..., :3].astype(np.float64)
    alpha = rgba[..., 3:4].astype(np.float64) / 255.0
    return np.round(colour * alpha + 255.0 * background * (1.0 - alpha)).astype(np.uint8)


def write_turntable(frame_paths: Sequence[Path], video_path: Path, fps: int = 24) -> Path:
    """Write the frames (RGBA PNGs, composited over white) as a video; returns the path actually written.

    ``.mp4`` needs the ``imageio-ffmpeg`` package; without it a ``.gif`` with the same stem is written instead.
    """
    import imageio.v3 as iio

    video_path = Path(video_path)
    if video_path.suffix.lower() not in VIDEO_SUFFIXES:
        raise NeroDataError(video_path, f"video must end with one of {', '.join(VIDEO_SUFFIXES)}")
    if not frame_paths:
        raise NeroDataError(video_path, "no frames to put in the video")
    frames = []
    for path in frame_paths:
        with Image.open(path) as image:
            frames.append(composite_over(np.asarray(image.convert("RGBA"))))
    if video_path.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        video_path = video_path.with_suffix(".gif")
    with atomic_path(video_path) as tmp_path:
        if video_path.suffix.lower() == ".mp4":
            iio.imwrite(tmp_path, np.stack(frames), fps=fps, codec="libx264", macro_block_size=1)
        else:
            iio.imwrite(tmp_path, np.stack(frames), duration=1000.0 / fps, loop=0)
    return video_path

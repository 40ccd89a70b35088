"""Relighting accuracy: predicted relit images against ground-truth renders under the same environment.

Protocol of NeRO's successors (method.md §6.3; NeRO ships no script): ground truth RGBA alpha-composited over white,
each predicted image rescaled per channel by least squares onto its ground truth (albedo and light colour are
ambiguous), then PSNR/SSIM/LPIPS averaged over the first ``num_views`` views. Unscaled numbers are reported too.
A predicted RGBA image (Blender's transparent film) is composited over the same background.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.eval.image_metrics import (
    LpipsFunction,
    channel_scale,
    composite_on_background,
    psnr,
    read_image,
    ssim,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _natural_key(name: str) -> tuple:
    """Sort ``2.png`` before ``10.png``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _image_files(folder: Path) -> Dict[str, Path]:
    if not folder.is_dir():
        raise NeroDataError(folder, "image folder not found")
    return {path.stem: path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES}


def matched_views(pred_dir: Path, gt_dir: Path, num_views: int) -> List[str]:
    """Stems present in both folders (whatever the image suffix), in natural order, the first ``num_views``."""
    if num_views < 1:
        raise ValueError(f"num_views must be positive, got {num_views}")
    common = sorted(set(_image_files(pred_dir)) & set(_image_files(gt_dir)), key=_natural_key)
    if not common:
        raise NeroDataError(pred_dir, f"no image file name in common with {gt_dir}")
    return common[:num_views]


@dataclass
class ImageScores:
    """Mean scores over the views (``lpips`` None when unavailable)."""

    psnr: float
    ssim: float
    lpips: Optional[float] = None


@dataclass
class RelightEvaluation:
    """What ``nero-eval relight`` reports."""

    scaled: ImageScores
    """After the per-channel rescale (the protocol's numbers)."""
    unscaled: ImageScores
    views: List[str] = field(default_factory=list)
    per_view: List[Dict[str, object]] = field(default_factory=list)
    """Per view: name, scale (3), psnr, ssim, lpips (scaled)."""


def _mean(values: List[float]) -> float:
    return float(np.mean(values))


def evaluate_relight(
    pred_dir: Path,
    gt_dir: Path,
    num_views: int = 16,
    background: str = "white",
    lpips: Optional[LpipsFunction] = None,
) -> RelightEvaluation:
    """Score the first ``num_views`` common views (see the module docstring)."""
    views = matched_views(pred_dir, gt_dir, num_views)
    pred_files, gt_files = _image_files(pred_dir), _image_files(gt_dir)
    scores: Dict[str, List[float]] = {key: [] for key in ("psnr", "ssim", "lpips", "psnr_raw", "ssim_raw", "lpips_raw")}
    per_view = []
    for name in views:
        target = composite_on_background(read_image(gt_files[name]), background)
        prediction = composite_on_background(read_image(pred_files[name]), background)
        if prediction.shape != target.shape:
            raise NeroDataError(
                pred_files[name], f"size {prediction.shape[1]}x{prediction.shape[0]} differs from the ground "
                f"truth's {target.shape[1]}x{target.shape[0]} ({gt_files[name]})"
            )
        scale = channel_scale(prediction, target)
        rescaled = prediction * scale
        view_scores = {"psnr": psnr(rescaled, target), "ssim": ssim(rescaled, target)}
        scores["psnr_raw"].append(psnr(prediction, target))
        scores["ssim_raw"].append(ssim(prediction, target))
        if lpips is not None:
            view_scores["lpips"] = lpips(rescaled, target)
            scores["lpips_raw"].append(lpips(prediction, target))
        for key, value in view_scores.items():
            scores[key].append(value)
        per_view.append({"name": name, "scale": [float(value) for value in scale], **view_scores})
    with_lpips = lpips is not None
    return RelightEvaluation(
        scaled=ImageScores(
            _mean(scores["psnr"]), _mean(scores["ssim"]), _mean(scores["lpips"]) if with_lpips else None
        ),
        unscaled=ImageScores(
            _mean(scores["psnr_raw"]), _mean(scores["ssim_raw"]), _mean(scores["lpips_raw"]) if with_lpips else None
        ),
        views=views,
        per_view=per_view,
    )

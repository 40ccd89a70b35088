"""Relighting protocol: matching views by name, compositing on white, per-channel rescale, scores."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.eval.relight_metrics import evaluate_relight, matched_views
from nero_nerfstudio.scripts.eval import EvalRelight, run


def _rgba(seed: int, size: int = 24) -> np.ndarray:
    """An object (opaque disc of smooth colour) on a transparent background, uint8 RGBA."""
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    rgb = np.stack([0.3 + 0.5 * rows, 0.2 + 0.6 * cols, 0.5 + 0.2 * np.cos(5 * rows + seed)], axis=-1)
    alpha = ((rows - 0.5) ** 2 + (cols - 0.5) ** 2 < 0.16).astype(float)
    return np.round(255 * np.concatenate([rgb, alpha[..., None]], axis=-1)).astype(np.uint8)


@pytest.fixture
def relight_folders(tmp_path: Path) -> tuple[Path, Path]:
    """GT RGBA renders 0..19 and predictions = GT on white times a per-channel tint (exactly undone by the rescale)."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    for index in range(20):
        gt = _rgba(index)
        iio.imwrite(gt_dir / f"{index}.png", gt)
        on_white = gt[..., :3] / 255.0 * gt[..., 3:] / 255.0 + (1.0 - gt[..., 3:] / 255.0)
        tinted = on_white * np.array([0.5, 0.7, 0.9])
        iio.imwrite(pred_dir / f"{index}.png", np.round(tinted * 255).astype(np.uint8))
    return pred_dir, gt_dir


def test_views_are_matched_by_name_in_natural_order(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("0.png", "2.png", "10.png", "11.png", "only_pred.png"):
        (tmp_path / "a" / name).touch()
    for name in ("0.png", "2.png", "10.png", "11.jpg", "only_gt.png"):
        (tmp_path / "b" / name).touch()
    assert matched_views(tmp_path / "a", tmp_path / "b", 16) == ["0", "2", "10", "11"]
    assert matched_views(tmp_path / "a", tmp_path / "b", 2) == ["0", "2"]
    (tmp_path / "c").mkdir()
    with pytest.raises(NeroDataError, match="no image file name in common"):
        matched_views(tmp_path / "a", tmp_path / "c", 16)


def test_a_per_channel_tint_is_undone_by_the_rescale(relight_folders: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = relight_folders
    result = evaluate_relight(pred_dir, gt_dir, num_views=16)
    assert result.views == [str(k) for k in range(16)]
    # Only 8-bit rounding of the tinted prediction remains after the rescale.
    assert result.scaled.psnr > 40.0 and result.scaled.ssim > 0.99
    assert result.unscaled.psnr < 15.0
    np.testing.assert_allclose(result.per_view[0]["scale"], [2.0, 1 / 0.7, 1 / 0.9], rtol=0.01)
    assert result.scaled.lpips is None


def test_the_background_matters(relight_folders: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = relight_folders
    # The predictions were composited on white: scoring against a black-composited GT must be much worse.
    white = evaluate_relight(pred_dir, gt_dir, num_views=4, background="white")
    black = evaluate_relight(pred_dir, gt_dir, num_views=4, background="black")
    assert black.scaled.psnr < white.scaled.psnr - 10.0


def test_relight_command_writes_json(relight_folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred_dir, gt_dir = relight_folders
    report = run(EvalRelight(pred_dir, gt_dir, num_views=3, output=tmp_path / "relight.json"))
    written = json.loads((tmp_path / "relight.json").read_text())
    assert written["num_views"] == 3 and len(written["per_view"]) == 3
    assert written["psnr"] == pytest.approx(report["psnr"]) and written["psnr"] > written["unscaled"]["psnr"]
    assert set(written) >= {"psnr", "ssim", "lpips", "unscaled", "background"}


def test_fewer_views_than_asked_are_scored_with_a_warning(relight_folders: tuple[Path, Path], capsys) -> None:
    pred_dir, gt_dir = relight_folders
    for path in sorted(pred_dir.iterdir())[4:]:
        path.unlink()
    written = run(EvalRelight(pred_dir, gt_dir, num_views=16))
    assert written["num_views"] == 4 and written["num_views_asked"] == 16
    assert "scoring 4 of the 16 views asked for (--num-views)" in " ".join(capsys.readouterr().out.split())
    run(EvalRelight(pred_dir, gt_dir, num_views=4))
    assert "views asked for" not in capsys.readouterr().out


def test_size_mismatch_names_the_file(relight_folders: tuple[Path, Path]) -> None:
    pred_dir, gt_dir = relight_folders
    iio.imwrite(pred_dir / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(NeroDataError, match=r"0\.png: size 8x8 differs"):
        evaluate_relight(pred_dir, gt_dir)

"""PSNR, SSIM, per-channel rescale, compositing, image reading and the LPIPS no-download rule."""

from __future__ import annotations

import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.eval import image_metrics
from nero_nerfstudio.eval.image_metrics import (
    channel_scale,
    composite_on_background,
    load_lpips,
    lpips_weights_path,
    psnr,
    read_image,
    rescale_per_channel,
    ssim,
)


@pytest.fixture
def image() -> np.ndarray:
    """A smooth 32x32 RGB image in [0.2, 0.8] with structure for SSIM to see."""
    rows, cols = np.mgrid[0:32, 0:32] / 31.0
    return np.stack([0.2 + 0.6 * rows, 0.2 + 0.6 * cols, 0.5 + 0.3 * np.sin(6 * rows * cols)], axis=-1)


def test_psnr_of_a_constant_offset_is_exact(image: np.ndarray) -> None:
    # MSE = 0.1^2 = 0.01 -> 20 dB.
    assert psnr(image + 0.1, image) == pytest.approx(20.0, abs=1e-9)


def test_psnr_of_gaussian_noise_matches_its_variance(image: np.ndarray) -> None:
    noise = np.random.default_rng(0).normal(0.0, 0.01, image.shape)
    # sigma 0.01 -> MSE 1e-4 -> 40 dB, up to the sample variance of 3072 values (~2.5% -> ~0.1 dB).
    assert psnr(image + noise, image) == pytest.approx(40.0, abs=0.3)


def test_psnr_of_identical_images_is_infinite_and_works_on_tensors(image: np.ndarray) -> None:
    assert psnr(image, image) == math.inf
    assert psnr(torch.tensor(image + 0.1), torch.tensor(image)) == pytest.approx(20.0, abs=1e-6)


def test_ssim_is_one_for_identical_images_and_drops_with_noise(image: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    small = ssim(image + rng.normal(0.0, 0.02, image.shape), image)
    large = ssim(image + rng.normal(0.0, 0.1, image.shape), image)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    assert 1.0 > small > large


def test_mismatched_images_are_rejected(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        psnr(image[:16], image)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        ssim(image[..., :2], image[..., :2])


def test_per_channel_rescale_recovers_a_channel_scaled_prediction(image: np.ndarray) -> None:
    prediction = image / np.array([2.0, 3.0, 4.0])
    np.testing.assert_allclose(channel_scale(prediction, image), [2.0, 3.0, 4.0], rtol=1e-12)
    rescaled = rescale_per_channel(prediction, image)
    assert psnr(prediction, image) < 15.0
    assert psnr(rescaled, image) > 200.0


def test_per_channel_rescale_is_the_least_squares_optimum(image: np.ndarray) -> None:
    prediction = image + np.random.default_rng(2).normal(0.0, 0.05, image.shape)
    scale = channel_scale(prediction, image)
    best = ((prediction * scale - image) ** 2).sum(axis=(0, 1))
    for delta in (-1e-3, 1e-3):
        assert np.all(((prediction * (scale + delta) - image) ** 2).sum(axis=(0, 1)) > best)


def test_a_black_channel_keeps_scale_one(image: np.ndarray) -> None:
    prediction = image.copy()
    prediction[..., 1] = 0.0
    assert channel_scale(prediction, image)[1] == 1.0


def test_composite_on_background() -> None:
    rgba = np.zeros((2, 2, 4))
    rgba[0, 0] = (0.2, 0.4, 0.6, 1.0)  # opaque
    rgba[0, 1] = (0.2, 0.4, 0.6, 0.0)  # transparent
    rgba[1, 0] = (0.2, 0.4, 0.6, 0.5)  # half
    white = composite_on_background(rgba, "white")
    np.testing.assert_allclose(white[0, 0], (0.2, 0.4, 0.6))
    np.testing.assert_allclose(white[0, 1], (1.0, 1.0, 1.0))
    np.testing.assert_allclose(white[1, 0], (0.6, 0.7, 0.8))
    np.testing.assert_allclose(composite_on_background(rgba, "black")[1, 0], (0.1, 0.2, 0.3))
    np.testing.assert_array_equal(composite_on_background(rgba[..., :3]), rgba[..., :3])
    with pytest.raises(ValueError, match="unknown background"):
        composite_on_background(rgba, "green")


def test_read_image_scales_8_and_16_bit(tmp_path: Path) -> None:
    gray16 = np.array([[0, 32768], [65535, 1]], dtype=np.uint16)
    iio.imwrite(tmp_path / "a.png", gray16)
    gray = read_image(tmp_path / "a.png")
    assert gray.shape == (2, 2, 3)
    np.testing.assert_allclose(gray[..., 0], gray16 / 65535.0)
    iio.imwrite(tmp_path / "b.png", np.full((4, 4, 4), 255, np.uint8))
    assert read_image(tmp_path / "b.png").shape == (4, 4, 4)
    (tmp_path / "c.png").write_bytes(b"not a png")
    with pytest.raises(NeroDataError, match=r"c\.png: cannot read image"):
        read_image(tmp_path / "c.png")


def test_lpips_is_skipped_without_cached_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert lpips_weights_path("vgg") == tmp_path / "checkpoints" / "vgg16-397923af.pth"
    assert load_lpips("vgg") is None


def test_lpips_with_a_corrupt_cached_file_is_skipped_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    weights = lpips_weights_path("alex")
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"corrupt")
    messages = []
    monkeypatch.setattr(image_metrics.CONSOLE, "print", lambda message, **_: messages.append(message))
    assert load_lpips("alex") is None
    assert any("cannot load" in message for message in messages)

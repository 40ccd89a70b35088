"""Image metrics shared by novel-view and relighting evaluation: PSNR, SSIM, LPIPS, NeRO's per-channel rescale.

Images are float ``[H, W, 3]`` in ``[0, 1]`` (numpy or torch). PSNR and SSIM follow nerfstudio's definitions
(``10 log10(1 / MSE)`` over all pixels and channels; SSIM with an 11x11 Gaussian window, sigma 1.5, data range 1,
as ``torchmetrics``), so numbers match ``ns-eval``. LPIPS is computed only when its backbone weights are already in
the torch hub cache: evaluation never downloads anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Optional, Union

import numpy as np
import torch
from jaxtyping import Float
from rich.console import Console
from torch import Tensor

from nero_nerfstudio.core.errors import NeroDataError

CONSOLE = Console(stderr=True, soft_wrap=True)

ImageArray = Union[np.ndarray, Tensor]
LpipsNet = Literal["vgg", "alex"]
LpipsFunction = Callable[[Float[Tensor, "H W 3"], Float[Tensor, "H W 3"]], float]
"""``(prediction, ground truth)`` -> LPIPS distance (lower is better)."""

BACKGROUND_COLORS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}

# torchvision backbones torchmetrics' LPIPS loads (its own linear heads ship inside the torchmetrics package).
_LPIPS_BACKBONE_WEIGHTS = {"vgg": "VGG16_Weights", "alex": "AlexNet_Weights"}


def _as_tensor(image: ImageArray) -> Tensor:
    return torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image).double()


def _to_unit_nchw(image: ImageArray) -> Float[Tensor, "1 3 H W"]:
    return _as_tensor(image).float().clamp(0.0, 1.0).permute(2, 0, 1)[None]


def _check_pair(prediction: Tensor, target: Tensor) -> None:
    if prediction.shape != target.shape or prediction.ndim != 3 or prediction.shape[-1] != 3:
        raise ValueError(
            f"images must both be [H, W, 3], got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )


def psnr(prediction: ImageArray, target: ImageArray) -> float:
    """Peak signal-to-noise ratio (dB) for a peak of 1: ``10 log10(1 / MSE)``; ``inf`` for identical images."""
    prediction_t, target_t = _as_tensor(prediction), _as_tensor(target)
    _check_pair(prediction_t, target_t)
    mse = float(((prediction_t - target_t) ** 2).mean())
    return float("inf") if mse == 0.0 else float(-10.0 * np.log10(mse))


def ssim(prediction: ImageArray, target: ImageArray) -> float:
    """Structural similarity (1 for identical images): 11x11 Gaussian window, sigma 1.5, data range 1."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    prediction_t, target_t = _as_tensor(prediction), _as_tensor(target)
    _check_pair(prediction_t, target_t)
    value = structural_similarity_index_measure(
        prediction_t.permute(2, 0, 1)[None], target_t.permute(2, 0, 1)[None], data_range=1.0
    )
    return float(value)  # type: ignore[arg-type]


def channel_scale(prediction: ImageArray, target: ImageArray) -> Float[np.ndarray, "3"]:
    """Per-channel least-squares scale of the prediction onto the target: ``s_c = Σ pred·gt / Σ pred²``.

    Over all pixels of the image, as the relighting protocol of NeRO's successors does (albedo and light are
    ambiguous per colour channel). A channel that is zero everywhere in the prediction keeps scale 1.
    """
    prediction_t, target_t = _as_tensor(prediction), _as_tensor(target)
    _check_pair(prediction_t, target_t)
    cross = (prediction_t * target_t).reshape(-1, 3).sum(0)
    energy = (prediction_t * prediction_t).reshape(-1, 3).sum(0)
    return torch.where(energy > 0, cross / energy.clamp_min(1e-300), torch.ones_like(energy)).numpy()


def rescale_per_channel(prediction: ImageArray, target: ImageArray) -> Float[np.ndarray, "H W 3"]:
    """The prediction times its :func:`channel_scale` onto the target (not clipped, as the protocol does)."""
    prediction_np = _as_tensor(prediction).numpy()
    return prediction_np * channel_scale(prediction, target)


def composite_on_background(image: Float[np.ndarray, "H W C"], background: str = "white") -> Float[np.ndarray, "H W 3"]:
    """RGB of an RGB or RGBA image ``[H, W, 3|4]`` in ``[0, 1]``; RGBA is alpha-composited over ``background``."""
    if background not in BACKGROUND_COLORS:
        raise ValueError(f"unknown background {background!r}; expected one of {', '.join(BACKGROUND_COLORS)}")
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"expected an [H, W, 3] or [H, W, 4] image, got shape {tuple(image.shape)}")
    if image.shape[-1] == 3:
        return image
    alpha = image[..., 3:]
    return image[..., :3] * alpha + np.asarray(BACKGROUND_COLORS[background]) * (1.0 - alpha)


def read_image(path: Path) -> Float[np.ndarray, "H W C"]:
    """An 8- or 16-bit PNG/JPG as float ``[H, W, 3|4]`` in ``[0, 1]`` (gray images become RGB)."""
    import imageio.v3 as iio

    try:
        pixels = iio.imread(path)
    except Exception as error:  # imageio raises many types for unreadable files
        raise NeroDataError(path, f"cannot read image ({error})") from error
    if pixels.dtype not in (np.uint8, np.uint16):
        raise NeroDataError(path, f"expected an 8- or 16-bit image, got {pixels.dtype}")
    image = pixels.astype(np.float64) / np.iinfo(pixels.dtype).max
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise NeroDataError(path, f"expected an RGB or RGBA image, got shape {tuple(pixels.shape)}")
    return image


def lpips_weights_path(net: LpipsNet) -> Path:
    """Where torchvision keeps the ImageNet backbone LPIPS needs (torch hub cache, honours ``TORCH_HOME``)."""
    import torchvision

    url = getattr(torchvision.models, _LPIPS_BACKBONE_WEIGHTS[net]).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def load_lpips(net: LpipsNet = "vgg") -> Optional[LpipsFunction]:
    """LPIPS with the ``net`` backbone, or None (with a one-line note) when its weights are not cached locally.

    Never downloads: torchvision would fetch the backbone on first use, so the cache is checked first, and a
    cached file that fails to load also gives None instead of an error.
    """
    weights = lpips_weights_path(net)
    if not weights.is_file():
        CONSOLE.print(f"[yellow]LPIPS ({net}) skipped: its backbone weights are not in {weights.parent} (no download)")
        return None
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True).eval()
    except Exception as error:  # a corrupt cache file or a torchvision mismatch: LPIPS is optional
        CONSOLE.print(f"[yellow]LPIPS ({net}) skipped: cannot load {weights} ({type(error).__name__}: {error})")
        return None

    @torch.no_grad()
    def lpips(prediction: Tensor, target: Tensor) -> float:
        return float(metric(_to_unit_nchw(prediction), _to_unit_nchw(target)))

    return lpips

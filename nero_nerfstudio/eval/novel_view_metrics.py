"""Novel-view synthesis scores of a trained model on its held-out images.

The eval cameras are rendered here, rather than through ``pipeline.get_average_eval_image_metrics()``, so the
scores use the same PSNR/SSIM/LPIPS functions as relighting, and LPIPS never triggers a weight download inside a
model's ``get_image_metrics_and_images``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from torch import Tensor

from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.eval.image_metrics import LpipsFunction, psnr, ssim
from nero_nerfstudio.utils.progress import counting_progress


class RenderableModel(Protocol):
    """What is needed of a nerfstudio model: render one camera to ``{"rgb": [H, W, 3], ...}``."""

    def get_outputs_for_camera(self, camera: Cameras) -> Dict[str, Tensor]: ...


class EvalImages(Protocol):
    """What is needed of a nerfstudio ``InputDataset``: its cameras and ``dataset[i]["image"]``."""

    cameras: Cameras

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Dict[str, Any]: ...


@dataclass
class NovelViewEvaluation:
    """Mean scores over the held-out images, and per image."""

    psnr: float
    ssim: float
    lpips: Optional[float]
    per_view: List[Dict[str, object]] = field(default_factory=list)


@torch.no_grad()
def evaluate_novel_views(
    model: RenderableModel,
    dataset: EvalImages,
    device: torch.device | str = "cpu",
    lpips: Optional[LpipsFunction] = None,
) -> NovelViewEvaluation:
    """Render every camera of ``dataset`` and score it against its image (RGB; an alpha channel is dropped)."""
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset has no images")
    image_ids = list(getattr(dataset, "metadata", {}).get(NeroKey.IMAGE_IDS, [])) or [str(i) for i in range(len(dataset))]
    per_view = []
    with counting_progress() as progress:
        task = progress.add_task("Rendering held-out views", total=len(dataset))
        for index in range(len(dataset)):
            camera = dataset.cameras[index : index + 1].to(device)
            target = dataset[index]["image"][..., :3].float().cpu()
            prediction = model.get_outputs_for_camera(camera)["rgb"].float().clamp(0.0, 1.0).cpu()
            if prediction.shape != target.shape:
                raise ValueError(
                    f"image {image_ids[index]}: rendered {tuple(prediction.shape)} "
                    f"but the image is {tuple(target.shape)}"
                )
            scores: Dict[str, object] = {
                "name": image_ids[index],
                "psnr": psnr(prediction, target),
                "ssim": ssim(prediction, target),
            }
            if lpips is not None:
                scores["lpips"] = lpips(prediction, target)
            per_view.append(scores)
            progress.advance(task)

    def mean(key: str) -> float:
        return float(np.mean([view[key] for view in per_view]))

    return NovelViewEvaluation(
        psnr=mean("psnr"), ssim=mean("ssim"), lpips=mean("lpips") if lpips is not None else None, per_view=per_view
    )

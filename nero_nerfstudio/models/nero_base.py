"""What both NeRO stages share: photographer frames, step tracking, camera rendering, metrics and image panels.

A stage subclasses :class:`NeroModel` and writes two things (the seam, as in nerfstudio's ``SurfaceModel``):

* :meth:`NeroModel.sample_and_forward_field`: where along each ray the stage looks (Stage I: NeRO's sampler inside
  and beyond the unit sphere; Stage II: the ray's hit on the fixed mesh) and what its fields say there;
* ``get_outputs``: how those samples become per-ray outputs (volume rendering, or the hit's shading scattered back
  to its ray), and ``get_loss_dict``.

Swapping a sampler or a shader means changing the first of these only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import OrientedBox
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from nero_nerfstudio.core.camera_conventions import opengl_c2w_to_opencv_w2c
from nero_nerfstudio.core.errors import NeroSettingsError
from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.core.photographer import photographer_w2p
from nero_nerfstudio.models.viewer_defaults import NeroViewerDefaults


@dataclass
class NeroModelConfig(ModelConfig):
    """Settings both stages have."""

    enable_collider: bool = False
    """Both stages find where rays meet the object themselves (unit sphere or mesh): no near/far planes."""
    photographer_light: Optional[bool] = None
    """Model the light reflected off the photographer; None: the dataparser's default (off for synthetic, on for
    real/custom)."""
    rgb_loss_eps: float = 1e-3
    """Epsilon inside the Charbonnier square root of the RGB loss."""


class NeroModel(Model):
    """Base of the NeRO stage models.

    Args:
        config: the model configuration.
        scene_box: the dataset's scene box.
        num_train_data: number of training images.
        metadata: the training dataset's metadata (``photographer_w2p``, ``photographer_light``, ...), via kwargs.
    """

    config: NeroModelConfig
    method_name: str = "nero"
    """Named in error messages."""
    use_lpips: bool = False
    """Report LPIPS in the evaluation metrics (its AlexNet weights are fetched on first use, when they can be)."""

    def populate_modules(self) -> None:
        super().populate_modules()
        self.step = 0
        self.metadata: Dict[str, Any] = self.kwargs.get("metadata") or {}
        use_photographer = self.config.photographer_light
        if use_photographer is None:
            use_photographer = bool(self.metadata.get(NeroKey.PHOTOGRAPHER_LIGHT, False))
        self.use_photographer_light = bool(use_photographer) and self.supports_photographer_light()
        if self.use_photographer_light:
            if NeroKey.PHOTOGRAPHER_W2P not in self.metadata:
                raise NeroSettingsError(
                    "--pipeline.model.photographer-light",
                    f"{self.method_name}: on, but the dataparser gave no '{NeroKey.PHOTOGRAPHER_W2P}' metadata",
                )
            poses = torch.as_tensor(self.metadata[NeroKey.PHOTOGRAPHER_W2P], dtype=torch.float32).reshape(-1, 3, 4)
        else:
            poses = torch.zeros(0, 3, 4)
        # Not persistent: it comes with the dataset, not with the checkpoint.
        self.register_buffer("photographer_w2p", poses, persistent=False)
        # Found and set up by nerfstudio's viewer (ns-train, ns-viewer).
        self.viewer_defaults = NeroViewerDefaults()

        from torchmetrics.functional import structural_similarity_index_measure
        from torchmetrics.image import PeakSignalNoiseRatio

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = structural_similarity_index_measure
        # Built on first use and never registered as a submodule, so it stays out of checkpoints.
        self._lpips_cache: Dict[str, Any] = {}

    def supports_photographer_light(self) -> bool:
        """Whether this model's shader can use the photographer light at all."""
        return True

    # ------------------------------------------------------------------------------------------------------------
    # Training schedule

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        def set_step(step: int) -> None:
            self.step = step

        return [TrainingCallback(where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], func=set_step)]

    def update_to_step(self, step: int) -> None:
        self.step = step

    # ------------------------------------------------------------------------------------------------------------
    # Rendering

    def sample_and_forward_field(self, ray_bundle: RayBundle) -> Dict[str, Any]:
        """Where along each ray of a flat bundle the stage looks, and its fields' values there."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample_and_forward_field")

    def photographer_poses(self, ray_bundle: RayBundle) -> Optional[Float[Tensor, "num_rays 3 4"]]:
        """Photographer frame of each ray's camera, or None when the photographer light is off.

        Rays rendered through :meth:`get_outputs_for_camera` carry their camera's own frame; otherwise the training
        camera index selects it, and indices outside the training set (viewer, evaluation) fall back to camera 0.
        """
        if not self.use_photographer_light:
            return None
        num_rays = ray_bundle.origins.shape[0]
        if ray_bundle.metadata is not None and NeroKey.PHOTOGRAPHER_W2P in ray_bundle.metadata:
            return ray_bundle.metadata[NeroKey.PHOTOGRAPHER_W2P].reshape(num_rays, 3, 4)
        if ray_bundle.camera_indices is None:
            indices = torch.zeros(num_rays, dtype=torch.long, device=self.device)
        else:
            indices = ray_bundle.camera_indices.reshape(num_rays).long()
            known = (indices >= 0) & (indices < self.photographer_w2p.shape[0])
            indices = torch.where(known, indices, torch.zeros_like(indices))
        return self.photographer_w2p[indices]

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box: Optional[OrientedBox] = None) -> Dict[str, Tensor]:
        """Renders one camera; its own photographer frame is attached to the rays (the camera need not be a
        training camera)."""
        ray_bundle = camera.generate_rays(camera_indices=0, keep_shape=True, obb_box=obb_box)
        if self.use_photographer_light:
            c2w = camera.camera_to_worlds.reshape(-1, 3, 4)[0].detach().cpu().numpy().astype(np.float64)
            pose = photographer_w2p(opengl_c2w_to_opencv_w2c(c2w)[None])[0]
            pose_tensor = torch.as_tensor(pose, dtype=torch.float32, device=ray_bundle.origins.device).reshape(12)
            height, width = ray_bundle.origins.shape[:2]
            ray_bundle.metadata[NeroKey.PHOTOGRAPHER_W2P] = pose_tensor.expand(height, width, 12)
        return self.get_outputs_for_camera_ray_bundle(ray_bundle)

    # ------------------------------------------------------------------------------------------------------------
    # Evaluation images

    @staticmethod
    def gray_panel(outputs: Dict[str, Tensor], name: str) -> Float[Tensor, "height width 3"]:
        """A one-channel output shown as a grey image."""
        return outputs[name].expand(*outputs[name].shape[:-1], 3)

    def _lpips(self) -> Optional[torch.nn.Module]:
        """LPIPS (AlexNet) if its weights can be had; a failure is reported once and LPIPS is skipped after."""
        if "model" not in self._lpips_cache and "error" not in self._lpips_cache:
            try:
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                self._lpips_cache["model"] = LearnedPerceptualImagePatchSimilarity(normalize=True).to(self.device)
            except Exception as error:  # weights download or torchvision problems: LPIPS is optional
                self._lpips_cache["error"] = error
                CONSOLE.print(
                    f"[yellow]LPIPS is unavailable ({type(error).__name__}: {error}); reporting PSNR/SSIM only"
                )
        return self._lpips_cache.get("model")

    def image_quality(
        self, image: Float[Tensor, "height width 3"], rgb: Float[Tensor, "height width 3"]
    ) -> Dict[str, float]:
        """``psnr``, ``ssim`` and, when :attr:`use_lpips` and its weights are at hand, ``lpips`` of a whole image."""
        image_nchw = torch.moveaxis(image, -1, 0)[None]
        rgb_nchw = torch.moveaxis(rgb, -1, 0)[None]
        metrics = {
            "psnr": float(self.psnr(image_nchw, rgb_nchw).item()),
            "ssim": float(self.ssim(image_nchw, rgb_nchw)),  # type: ignore[arg-type]
        }
        lpips = self._lpips() if self.use_lpips else None
        if lpips is not None:
            metrics["lpips"] = float(lpips(image_nchw, rgb_nchw).item())
        return metrics

    @staticmethod
    def batch_image(batch: Dict[str, Tensor], device: torch.device) -> Tensor:
        """The batch's RGB (alpha dropped) on ``device``."""
        return batch["image"][..., :3].to(device)

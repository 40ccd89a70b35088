"""nero-real and nero-custom: photographed objects reconstructed by COLMAP (method.md §2.2, 2.3).

Layout: ``images/``, a COLMAP binary model (``colmap/sparse/0``, ``sparse/0`` or ``sparse``), ``object_point_cloud.ply``
(the object cropped out of the dense cloud) and, for custom data, ``meta_info.txt`` (line 1 up, line 2 forward, in
COLMAP coordinates). The point cloud and up/forward define the similarity into NeRO's normalised frame: object in the
unit sphere, z-up, forward = +x.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Dict, Literal, Optional, Tuple, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.data.dataparsers.nero_parser_common import (
    nero_cameras,
    nero_metadata,
    read_image_sizes,
    split_indices,
)
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.data.image_resize import cached_downscaled_images, raw_target_size, scale_intrinsics
from nero_nerfstudio.data.normalization import (
    apply_to_w2c,
    check_cameras_outside_unit_sphere,
    estimate_up_forward,
    normalizing_similarity,
)
from nero_nerfstudio.utils.colmap_io import (
    ColmapCameras,
    find_model_folder,
    read_colmap_cameras,
    read_meta_info,
    read_point_cloud,
)

# NeRO's hard-coded orientation of the GlossyReal objects, in the COLMAP frame of the distributed data (method.md §2.2).
GLOSSY_REAL_UP_FORWARD: Dict[str, Tuple[Tuple[float, float, float], Tuple[float, float, float]]] = {
    "bear": ((0.0512875, -0.645326, -0.762183), (0.539944, -0.342791, 0.341446)),
    "coral": ((0.0477973, -0.748313, -0.661622), (0.004226, -0.235523, 0.267582)),
    "maneki": ((-0.0117387, -0.738751, -0.673876), (-2.336584, -0.406351, 0.482029)),
    "bunny": ((-0.0693234, -0.644819, -0.761185), (0.437076, -1.672467, 1.436961)),
    "vase": ((-0.01911, -0.738918, -0.673524), (-0.911907, -0.132777, 0.180063)),
}

Vector3 = Tuple[float, float, float]


@dataclass
class NeroColmapDataParserConfig(DataParserConfig):
    """Shared fields of the COLMAP-based NeRO formats."""

    _target: Type = field(default_factory=lambda: NeroColmapDataParser)
    dataset_format: ClassVar[Literal["real", "custom"]] = "real"
    data: Path = Path()
    """Folder of one object (holding images/, the COLMAP model and object_point_cloud.ply)."""
    up: Optional[Vector3] = None
    """Up direction in COLMAP coordinates (becomes +z); overrides the built-in table / meta_info.txt."""
    forward: Optional[Vector3] = None
    """Forward direction in COLMAP coordinates (its part orthogonal to up becomes +x)."""
    max_resolution: Optional[int] = 1024
    """NeRO's raw_<N>: blur and downscale so the long image side is at most N (cached in images_raw_<N>/). None keeps
    the originals."""
    split_mode: Literal["validation", "all"] = "validation"
    """validation: NeRO's setup (one held-out image, seed 6033); all: also train on that image."""
    fixed_camera: bool = False
    """Keep the camera height for the photographer frame (NeRO drops the photographer to the object's height)."""


@dataclass
class NeroRealDataParserConfig(NeroColmapDataParserConfig):
    """NeRO GlossyReal folder; up/forward come from NeRO's table of the five objects unless given."""

    _target: Type = field(default_factory=lambda: NeroColmapDataParser)
    dataset_format: ClassVar[Literal["real", "custom"]] = "real"
    data: Path = Path("data/GlossyReal/bear")


@dataclass
class NeroCustomDataParserConfig(NeroColmapDataParserConfig):
    """Own photos; up/forward from meta_info.txt, else estimated from the camera ring."""

    _target: Type = field(default_factory=lambda: NeroColmapDataParser)
    dataset_format: ClassVar[Literal["real", "custom"]] = "custom"


@dataclass
class NeroColmapDataParser(DataParser):
    """Reads GlossyReal and custom folders into NeRO's normalised frame."""

    config: NeroColmapDataParserConfig

    def _up_forward(
        self, colmap: ColmapCameras, object_center: np.ndarray, model_folder: Path
    ) -> Tuple[np.ndarray, np.ndarray, Path]:
        """Up, forward and the file (or folder) they came from."""
        data = self.config.data
        if (self.config.up is None) != (self.config.forward is None):
            raise NeroDataError(data, "give both --up and --forward, or neither")
        if self.config.up is not None and self.config.forward is not None:
            return np.array(self.config.up), np.array(self.config.forward), data
        if self.config.dataset_format == "real":
            if data.name not in GLOSSY_REAL_UP_FORWARD:
                raise NeroDataError(
                    data,
                    f"unknown GlossyReal object '{data.name}' (known: {', '.join(GLOSSY_REAL_UP_FORWARD)}); "
                    "pass --up and --forward, or use nero-custom",
                )
            up, forward = GLOSSY_REAL_UP_FORWARD[data.name]
            return np.array(up), np.array(forward), data
        meta_info = data / "meta_info.txt"
        if meta_info.is_file():
            up, forward = read_meta_info(meta_info)
            return up, forward, meta_info
        up, forward = estimate_up_forward(
            camera_centers(colmap.w2c), colmap.w2c[:, 2, :3], object_center, source=model_folder / "images.bin"
        )
        CONSOLE.print(
            f"[bold yellow]{meta_info} not found: estimated up = {np.round(up, 4).tolist()} (normal of the camera "
            f"ring, towards the cameras) and forward = {np.round(forward, 4).tolist()} (towards the first camera). "
            "Write meta_info.txt (line 1 up, line 2 forward) to fix the orientation."
        )
        return up, forward, model_folder / "images.bin"

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        data = self.config.data
        if not data.is_dir():
            raise NeroDataError(data, "dataset folder not found")
        model_folder = find_model_folder(data)
        CONSOLE.print(f"Reading the COLMAP model in {model_folder}")
        colmap = read_colmap_cameras(model_folder)

        images_dir = data / "images"
        image_sizes = read_image_sizes([images_dir / name for name in colmap.image_names])
        for name, image_size, camera_size in zip(colmap.image_names, image_sizes, colmap.sizes):
            if image_size != camera_size:
                raise NeroDataError(
                    images_dir / name,
                    f"image size {image_size} differs from its COLMAP camera's size {camera_size} in "
                    f"{model_folder / 'cameras.bin'}",
                )

        point_cloud_path = data / "object_point_cloud.ply"
        points = read_point_cloud(point_cloud_path)
        object_center = (points.max(axis=0) + points.min(axis=0)) / 2.0 if len(points) else np.zeros(3)
        up, forward, orientation_source = self._up_forward(colmap, object_center, model_folder)
        rotation, center, scale = normalizing_similarity(
            points, up, forward, points_source=point_cloud_path, orientation_source=orientation_source
        )
        w2c = apply_to_w2c(colmap.w2c, rotation, center, scale)
        check_cameras_outside_unit_sphere(w2c, source=point_cloud_path)

        indices = split_indices(colmap.image_ids, split, self.config.split_mode)
        names = [colmap.image_names[i] for i in indices]
        sizes = [colmap.sizes[i] for i in indices]
        intrinsics = colmap.intrinsics[indices]
        if self.config.max_resolution is None:
            image_paths = [images_dir / name for name in names]
        else:
            target_sizes = [raw_target_size(w, h, self.config.max_resolution) for w, h in sizes]
            intrinsics = np.stack([scale_intrinsics(k, s, t) for k, s, t in zip(intrinsics, sizes, target_sizes)])
            image_paths = cached_downscaled_images(images_dir, names, target_sizes, self.config.max_resolution)
            sizes = target_sizes

        transform = np.concatenate([rotation, -(rotation @ center)[:, None]], axis=1)
        return DataparserOutputs(
            image_filenames=image_paths,
            cameras=nero_cameras(w2c[indices], intrinsics, sizes),
            scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])),
            metadata=nero_metadata(
                [colmap.image_ids[i] for i in indices],
                w2c[indices],
                self.config.dataset_format,
                fixed_camera=self.config.fixed_camera,
            ),
            dataparser_transform=torch.as_tensor(transform, dtype=torch.float32),
            dataparser_scale=float(scale),
        )


nero_real_dataparser = DataParserSpecification(
    config=NeroRealDataParserConfig(),
    description="NeRO GlossyReal format: images/, colmap/sparse/0, object_point_cloud.ply; built-in up/forward",
)

nero_custom_dataparser = DataParserSpecification(
    config=NeroCustomDataParserConfig(),
    description="NeRO custom format: images/, COLMAP sparse model, object_point_cloud.ply, meta_info.txt (up, forward)",
)

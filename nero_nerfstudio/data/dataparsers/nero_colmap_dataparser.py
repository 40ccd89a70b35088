"""nero-real and nero-custom: photographed objects reconstructed by COLMAP (method.md §2.2, 2.3).

Layout: ``images/`` and a COLMAP binary model (``colmap/sparse/0`` as ``nero-process-data`` and ``ns-process-data``
write it, ``sparse/0`` or ``sparse``). NeRO's own files, when present, place the object: ``object_point_cloud.ply``
(the object cropped out of the dense cloud) and, for custom data, ``meta_info.txt`` (line 1 up, line 2 forward, in
COLMAP coordinates). What they do not give comes from ``nero_frame.json`` or is estimated from the cameras and the
sparse points (:mod:`nero_nerfstudio.data.object_frame`). The normalised frame: object in the unit sphere, z-up,
forward = +x.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Dict, Literal, Tuple, Type

import numpy as np
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataparserOutputs
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.data.dataparsers.nero_parser_common import check_intrinsics
from nero_nerfstudio.data.dataparsers.nero_photo_parser import (
    FrameSources,
    NeroPhotoDataParserConfig,
    check_image_sizes,
    photo_dataparser_outputs,
    resolve_object_frame,
)
from nero_nerfstudio.data.undistortion import UNDISTORTED_FOLDER, undistorted_images
from nero_nerfstudio.utils.colmap_io import (
    find_model_folder,
    read_colmap_cameras,
    read_colmap_points,
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


@dataclass
class NeroColmapDataParserConfig(NeroPhotoDataParserConfig):
    """Shared fields of the COLMAP-based NeRO formats."""

    _target: Type = field(default_factory=lambda: NeroColmapDataParser)
    dataset_format: ClassVar[Literal["real", "custom"]] = "real"
    data: Path = Path()
    """Folder of one object (holding images/ and the COLMAP model)."""


@dataclass
class NeroRealDataParserConfig(NeroColmapDataParserConfig):
    """NeRO GlossyReal folder; up/forward come from NeRO's table of the five objects unless given."""

    _target: Type = field(default_factory=lambda: NeroColmapDataParser)
    dataset_format: ClassVar[Literal["real", "custom"]] = "real"
    data: Path = Path("data/GlossyReal/bear")


@dataclass
class NeroCustomDataParserConfig(NeroColmapDataParserConfig):
    """Own photos; the object's sphere and up/forward from NeRO's files when present, else estimated."""

    _target: Type = field(default_factory=lambda: NeroColmapDataParser)
    dataset_format: ClassVar[Literal["real", "custom"]] = "custom"


@dataclass
class NeroColmapDataParser(DataParser):
    """Reads GlossyReal and custom folders into NeRO's normalised frame."""

    config: NeroColmapDataParserConfig

    def _frame_sources(self) -> FrameSources:
        """NeRO's own files about the object, where the folder has them (read only if they decide)."""
        data = self.config.data
        sources = FrameSources()
        point_cloud_path = data / "object_point_cloud.ply"
        if point_cloud_path.exists():
            sources.object_points = lambda: (read_point_cloud(point_cloud_path), point_cloud_path)
        if self.config.dataset_format == "real":
            sources.up_forward = self._glossy_real_up_forward
        elif (data / "meta_info.txt").is_file():
            sources.up_forward = lambda: (*read_meta_info(data / "meta_info.txt"), data / "meta_info.txt")
        return sources

    def _glossy_real_up_forward(self) -> Tuple[np.ndarray, np.ndarray, Path]:
        data = self.config.data
        if data.name not in GLOSSY_REAL_UP_FORWARD:
            raise NeroDataError(
                data,
                f"unknown GlossyReal object '{data.name}' (known: {', '.join(GLOSSY_REAL_UP_FORWARD)}); "
                "pass --up and --forward or --frame-file, or use nero-custom",
            )
        up, forward = GLOSSY_REAL_UP_FORWARD[data.name]
        return np.array(up), np.array(forward), data

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        data = self.config.data
        if not data.is_dir():
            raise NeroDataError(data, "dataset folder not found")
        model_folder = find_model_folder(data)
        CONSOLE.print(f"Reading the COLMAP model in {model_folder}")
        colmap = read_colmap_cameras(model_folder)

        images_dir = data / "images"
        check_image_sizes([images_dir / name for name in colmap.image_names], colmap.sizes, model_folder / "cameras.bin")
        check_intrinsics(colmap.intrinsics, colmap.sizes, [model_folder / "cameras.bin"] * len(colmap.sizes))

        frame = resolve_object_frame(
            self.config,
            self._frame_sources(),
            colmap.w2c,
            colmap.intrinsics,
            colmap.sizes,
            sparse_points=lambda: read_colmap_points(model_folder),
            cameras_source=model_folder / "images.bin",
        )
        images_dir, intrinsics = undistorted_images(
            images_dir, colmap.image_names, colmap.intrinsics, colmap.distortion, colmap.sizes,
            data / UNDISTORTED_FOLDER,
        )
        return photo_dataparser_outputs(
            self.config,
            split,
            colmap.image_ids,
            images_dir,
            colmap.image_names,
            colmap.w2c,
            intrinsics,
            colmap.sizes,
            frame,
            self.config.dataset_format,
            data,
        )


nero_real_dataparser = DataParserSpecification(
    config=NeroRealDataParserConfig(),
    description="NeRO GlossyReal format: images/, colmap/sparse/0, object_point_cloud.ply; built-in up/forward",
)

nero_custom_dataparser = DataParserSpecification(
    config=NeroCustomDataParserConfig(),
    description="NeRO custom format: images/ and a COLMAP sparse model (nero-process-data, ns-process-data); "
    "object_point_cloud.ply, meta_info.txt or nero_frame.json optional (estimated when absent)",
)

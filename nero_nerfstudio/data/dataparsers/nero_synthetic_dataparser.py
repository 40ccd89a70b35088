"""nero-synthetic: NeRO's GlossySynthetic folders (method.md §2.1).

Layout: ``<k>.png`` (RGB), ``<k>-camera.pkl`` (a pickled ``(w2c 3x4 OpenCV, K 3x3)`` pair), ``<k>-depth.png``
(16-bit z-depth), read with :mod:`nero_nerfstudio.utils.synthetic_io`. The world is already NeRO's normalised frame
(object in the unit sphere, y-up) and is kept as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE
from PIL import Image

from nero_nerfstudio.data.dataparsers.nero_parser_common import (
    check_intrinsics,
    nero_cameras,
    nero_metadata,
    read_image_sizes,
    split_indices,
)
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.utils.synthetic_io import load_camera_pickle, synthetic_view_ids


@dataclass
class NeroSyntheticDataParserConfig(DataParserConfig):
    """GlossySynthetic folder (``<k>.png``, ``<k>-camera.pkl``, ``<k>-depth.png``)."""

    _target: Type = field(default_factory=lambda: NeroSyntheticDataParser)
    data: Path = Path("data/GlossySynthetic/bell")
    """Folder of one object."""
    split_mode: Literal["validation", "test"] = "validation"
    """validation: NeRO's training setup (one held-out image, seed 6033); test: the 96/32 evaluation split."""
    scale_factor: float = 1.0
    """Multiplies the camera translations (for own Blender data whose object is not inside the unit sphere)."""


@dataclass
class NeroSyntheticDataParser(DataParser):
    """Reads GlossySynthetic folders."""

    config: NeroSyntheticDataParserConfig

    def image_ids(self) -> List[str]:
        """Ids of the ``<k>-camera.pkl`` files, in numeric order."""
        folder = self.config.data
        if not folder.is_dir():
            raise NeroDataError(folder, "dataset folder not found")
        return synthetic_view_ids(folder)

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        folder = self.config.data
        all_ids = self.image_ids()
        ids = [all_ids[i] for i in split_indices(all_ids, split, self.config.split_mode)]

        cameras = [load_camera_pickle(folder / f"{image_id}-camera.pkl") for image_id in ids]
        w2c = np.stack([pose for pose, _ in cameras])
        w2c[:, :, 3] *= self.config.scale_factor
        intrinsics = np.stack([k for _, k in cameras])

        image_paths = [folder / f"{image_id}.png" for image_id in ids]
        sizes = read_image_sizes(image_paths)
        check_intrinsics(intrinsics, sizes, [folder / f"{image_id}-camera.pkl" for image_id in ids])
        depth_paths: Optional[List[Path]] = [folder / f"{image_id}-depth.png" for image_id in ids]
        present = [path.is_file() for path in depth_paths]
        if all(present):
            for index, (depth_path, image_path, size) in enumerate(zip(depth_paths, image_paths, sizes)):
                with Image.open(depth_path) as depth_image:
                    depth_size = depth_image.size
                if depth_size != size:
                    # Blame the odd one out: an image whose depth map matches the other images is the wrong file.
                    others = sizes[:index] + sizes[index + 1 :]
                    if depth_size in others and size not in others:
                        problem = f"image size {size} differs from its depth map's and the other images' {depth_size}"
                        raise NeroDataError(image_path, problem)
                    raise NeroDataError(depth_path, f"depth size {depth_size} differs from its image's size {size}")
        elif any(present):
            raise NeroDataError(depth_paths[present.index(False)], "depth file missing (other images have one)")
        else:
            CONSOLE.print(f"[yellow]{folder}: no <k>-depth.png files; depth-based evaluation is unavailable")
            depth_paths = None

        metadata = nero_metadata(ids, w2c, "synthetic")
        if depth_paths is not None:
            metadata[NeroKey.DEPTH_FILENAMES] = depth_paths
        return DataparserOutputs(
            image_filenames=image_paths,
            cameras=nero_cameras(w2c, intrinsics, sizes),
            scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])),
            metadata=metadata,
            dataparser_transform=torch.eye(4)[:3, :],
            # Scaling the translations scales the whole world; recorded so exports can undo it.
            dataparser_scale=self.config.scale_factor,
        )


nero_synthetic_dataparser = DataParserSpecification(
    config=NeroSyntheticDataParserConfig(),
    description="NeRO GlossySynthetic format: <k>.png, <k>-camera.pkl (w2c, K), <k>-depth.png; y-up unit-sphere world",
)

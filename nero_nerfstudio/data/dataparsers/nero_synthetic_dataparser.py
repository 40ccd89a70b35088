"""nero-synthetic: NeRO's GlossySynthetic folders (spec 2.1).

Layout: ``<k>.png`` (RGB), ``<k>-camera.pkl`` (a pickled ``(w2c 3x4 OpenCV, K 3x3)`` pair), ``<k>-depth.png``
(16-bit z-depth). The world is already NeRO's normalised frame (object in the unit sphere, y-up) and is kept as is.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from nerfstudio.utils.rich_utils import CONSOLE
from PIL import Image

from nero_nerfstudio.data.dataparsers.nero_parser_common import (
    nero_cameras,
    nero_metadata,
    read_image_sizes,
    split_indices,
)
from nero_nerfstudio.core.errors import NeroDataError

# Depth PNGs store value / 65535 * 15 scene units; the background saturates at 15.
DEPTH_RANGE = 15.0
BACKGROUND_DEPTH = 14.5

_CAMERA_FILE = re.compile(r"^(\d+)-camera\.pkl$")


def load_depth_and_mask(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Depth ``[H, W]`` float32 (z-depth, scene units) and foreground mask ``[H, W]`` bool of a ``<k>-depth.png``."""
    try:
        with Image.open(path) as pil_image:
            if pil_image.mode not in ("I;16", "I;16B", "I"):
                raise NeroDataError(path, f"depth must be a 16-bit single-channel PNG, got mode {pil_image.mode}")
            values = np.asarray(pil_image).astype(np.float64)
    except OSError as error:
        raise NeroDataError(path, f"cannot read depth image ({error})") from error
    depth = (values / 65535.0 * DEPTH_RANGE).astype(np.float32)
    return depth, depth < BACKGROUND_DEPTH


def load_camera_pickle(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """``(w2c [3, 4], K [3, 3])`` float64 from a ``<k>-camera.pkl``."""
    try:
        with open(path, "rb") as file:
            content = pickle.load(file)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as error:
        raise NeroDataError(path, f"cannot unpickle camera ({error})") from error
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        raise NeroDataError(path, "expected a pickled (pose 3x4, K 3x3) pair")
    try:
        pose, intrinsics = (np.asarray(item, dtype=np.float64) for item in content)
    except (TypeError, ValueError) as error:
        raise NeroDataError(path, f"expected a pickled (pose 3x4, K 3x3) pair of numbers ({error})") from error
    if pose.shape != (3, 4) or intrinsics.shape != (3, 3):
        raise NeroDataError(
            path, f"expected a pickled (pose 3x4, K 3x3) pair, got shapes {pose.shape} and {intrinsics.shape}"
        )
    if not (np.all(np.isfinite(pose)) and np.all(np.isfinite(intrinsics))):
        raise NeroDataError(path, "camera pose or K contains NaN or infinite values")
    return pose, intrinsics


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
        ids = [match.group(1) for match in (_CAMERA_FILE.match(p.name) for p in folder.iterdir()) if match]
        if not ids:
            raise NeroDataError(folder, "no <k>-camera.pkl files; not a NeRO synthetic (GlossySynthetic) folder")
        return sorted(ids, key=int)

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
        depth_paths: Optional[List[Path]] = [folder / f"{image_id}-depth.png" for image_id in ids]
        present = [path.is_file() for path in depth_paths]
        if all(present):
            for depth_path, size in zip(depth_paths, sizes):
                with Image.open(depth_path) as depth_image:
                    if depth_image.size != size:
                        raise NeroDataError(
                            depth_path, f"depth size {depth_image.size} differs from its image's size {size}"
                        )
        elif any(present):
            raise NeroDataError(depth_paths[present.index(False)], "depth file missing (other images have one)")
        else:
            CONSOLE.print(f"[yellow]{folder}: no <k>-depth.png files; depth-based evaluation is unavailable")
            depth_paths = None

        metadata = nero_metadata(ids, w2c, "synthetic")
        if depth_paths is not None:
            metadata["depth_filenames"] = depth_paths
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

"""Align a structure-from-motion reconstruction to the true cameras of the same capture.

SfM recovers the scene up to a similarity (scale, rotation, translation). To compare what was reconstructed from the
SfM poses with the ground truth, the similarity that best maps the SfM camera centres onto the true centres of the
same photos (Umeyama's least squares, by scikit-image) takes SfM coordinates to the truth's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
from jaxtyping import Float
from skimage.transform import SimilarityTransform

from nero_nerfstudio.core.camera_conventions import camera_centers
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.data.object_frame import convergence_point
from nero_nerfstudio.utils.colmap_io import read_colmap_cameras


@dataclass
class CameraAlignment:
    """The similarity from an SfM model's frame to the true one, fitted on the registered photos' camera centres."""

    similarity: SimilarityTransform
    image_names: List[str]
    """The registered photos, in the SfM model's order."""
    sfm_centers: Float[np.ndarray, "N 3"]
    true_centers: Float[np.ndarray, "N 3"]
    camera_distance: float
    """The true cameras' mean distance from the point their optical axes meet at (the object)."""

    @property
    def scale(self) -> float:
        return float(np.cbrt(np.linalg.det(self.similarity.params[:3, :3])))

    @property
    def rotation(self) -> Float[np.ndarray, "3 3"]:
        return self.similarity.params[:3, :3] / self.scale

    def __call__(self, points: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N 3"]:
        """SfM-frame points in the true frame."""
        return np.asarray(self.similarity(np.asarray(points, dtype=np.float64)))

    def center_errors(self) -> Float[np.ndarray, "N"]:
        """Distance of each aligned SfM camera centre from its true one, over the camera distance."""
        return np.linalg.norm(self(self.sfm_centers) - self.true_centers, axis=1) / self.camera_distance


def align_to_true_cameras(sfm_model: Path, true_model: Path) -> CameraAlignment:
    """The alignment of the COLMAP model in ``sfm_model`` to the one in ``true_model`` (photos matched by name).

    Raises:
        NeroDataError: naming ``sfm_model`` when a registered photo is not in the true model, or fewer than three
            are registered (a similarity needs three centres).
    """
    sfm, truth = read_colmap_cameras(sfm_model), read_colmap_cameras(true_model)
    true_centers_all = camera_centers(truth.w2c)
    true_by_name = dict(zip(truth.image_names, true_centers_all))
    aim = convergence_point(true_centers_all, truth.w2c[:, 2, :3], true_model)
    camera_distance = float(np.linalg.norm(true_centers_all - aim, axis=1).mean())
    unknown = [name for name in sfm.image_names if name not in true_by_name]
    if unknown:
        raise NeroDataError(sfm_model, f"{len(unknown)} photo(s) not in {true_model}, e.g. {unknown[0]}")
    if len(sfm.image_names) < 3:
        raise NeroDataError(sfm_model, f"{len(sfm.image_names)} registered photo(s); the alignment needs three")
    sfm_centers = camera_centers(sfm.w2c)
    true_centers = np.stack([true_by_name[name] for name in sfm.image_names])
    similarity = SimilarityTransform.from_estimate(sfm_centers, true_centers)
    if not similarity:
        raise NeroDataError(sfm_model, "the camera centres do not determine a similarity (all on one line?)")
    return CameraAlignment(similarity, list(sfm.image_names), sfm_centers, true_centers, camera_distance)

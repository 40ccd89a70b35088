"""Similarity transforms between the Blender frame of the scene generator and a dataset frame.

``x_dataset = scale * rotation @ x_blender + translation``. The synthetic layout uses the fixed axis swap
``(x_b, z_b, -y_b)`` (Blender's z-up to NeRO's y-up), the COLMAP layouts a seeded random similarity, so that the
parsers have a real normalisation to undo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Sequence

import numpy as np

# Rows map Blender (x, y, z) to the y-up synthetic frame (x_b, z_b, -y_b); a proper rotation (det +1).
BLENDER_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Similarity:
    """``x_dataset = scale * rotation @ x_blender + translation``."""

    scale: float
    rotation: np.ndarray
    """``[3, 3]`` proper rotation."""
    translation: np.ndarray
    """``[3]``."""

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """Blender-frame points ``[N, 3]`` -> dataset-frame points ``[N, 3]``."""
        return self.scale * points @ self.rotation.T + self.translation

    def apply_directions(self, directions: np.ndarray) -> np.ndarray:
        """Directions or normals ``[..., 3]``: rotated only (a uniform scale keeps normals normal)."""
        return directions @ self.rotation.T

    def apply_w2c(self, w2c: np.ndarray) -> np.ndarray:
        """Rewrite world-to-camera poses ``[N, 3, 4]`` for the dataset frame.

        The camera frame is scaled together with the world, so the result is again rigid and projects every
        transformed point to the same pixel: ``R' = R Q^T``, ``t' = s t - R Q^T b``.
        """
        rotation = w2c[:, :3, :3] @ self.rotation.T
        translation = self.scale * w2c[:, :3, 3] - rotation @ self.translation
        return np.concatenate([rotation, translation[:, :, None]], axis=-1)

    def to_json(self) -> Dict[str, Any]:
        return {
            "scale": float(self.scale),
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
        }

    @staticmethod
    def from_json(data: Dict[str, Any]) -> "Similarity":
        return Similarity(
            scale=float(data["scale"]),
            rotation=np.asarray(data["rotation"], dtype=np.float64),
            translation=np.asarray(data["translation"], dtype=np.float64),
        )


def blender_to_synthetic() -> Similarity:
    """The fixed frame change of the synthetic layout: ``p_dataset = (x_b, z_b, -y_b)``."""
    return Similarity(scale=1.0, rotation=BLENDER_TO_Y_UP.copy(), translation=np.zeros(3))


def random_rotation(seed: int) -> np.ndarray:
    """A uniformly random rotation ``[3, 3]`` from a normalised Gaussian quaternion (w, x, y, z)."""
    w, x, y, z = np.random.default_rng(seed).normal(size=4)
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def blender_to_colmap(seed: int, scale: float, translation: Sequence[float]) -> Similarity:
    """A seeded random similarity standing in for the arbitrary frame of a COLMAP reconstruction."""
    return Similarity(scale=float(scale), rotation=random_rotation(seed), translation=np.asarray(translation, float))


def normalise_to_radius(vertices: np.ndarray, radius: float) -> np.ndarray:
    """Centre vertices ``[N, 3]`` on their bounding-box centre and scale the farthest one to ``radius``."""
    centre = (vertices.max(axis=0) + vertices.min(axis=0)) / 2
    centred = vertices - centre
    return centred * (radius / np.linalg.norm(centred, axis=1).max())

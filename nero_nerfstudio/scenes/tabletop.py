"""The tabletop option of ``nero-render-scene``: props standing around the object on a textured table, and what
``gt/scene.json`` says of them (Blender frame, heights from the table top; pure numpy).

The table and the props give structure from motion static texture to match (a glossy object under a bare HDRI gives
it nothing: 2 of 64 views registered); :mod:`nero_nerfstudio.scenes.blender_render` builds them in Blender.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Tuple

import numpy as np

from nero_nerfstudio.scenes.similarity import Similarity

TABLETOP_DISTANCE_JITTER = 0.1
"""Tabletop cameras stand within this fraction of ``camera_distance`` of it, as a hand holds a camera."""
TABLE_HALF_SIZE = 4.0
"""Half the side of the square table, in camera distances: the table fills the views up to near the horizon."""
NUM_PROPS = 6
PROP_TINTS = (
    (0.9, 0.25, 0.15),
    (0.15, 0.45, 0.9),
    (0.95, 0.8, 0.15),
    (0.2, 0.75, 0.3),
    (0.75, 0.25, 0.8),
    (0.2, 0.8, 0.8),
)
"""Linear RGB tints of the props' textures, one each, so that no two props look alike."""


PropShape = Literal["box", "cylinder", "cone"]


def prop_bounding_radius(shape: PropShape, half_width: float, height: float) -> float:
    """Radius of the sphere about a prop's centre (half its height above the table) that holds it."""
    corner = half_width * (math.sqrt(2.0) if shape == "box" else 1.0)
    return math.hypot(corner, height / 2)


@dataclass(frozen=True)
class TabletopProp:
    """A textured primitive standing on the table (Blender frame, heights from the table top)."""

    shape: PropShape
    xy: Tuple[float, float]
    """Centre of its footprint on the table."""
    half_width: float
    """Half the side of a box's square footprint, or the base radius of a cylinder or cone."""
    height: float
    yaw: float
    """Turn about the vertical, in radians."""
    pattern: Literal["brick", "checker"]
    tint: Tuple[float, float, float]
    """Linear RGB that the texture is multiplied by."""

    @property
    def bounding_radius(self) -> float:
        return prop_bounding_radius(self.shape, self.half_width, self.height)


def tabletop_props(mesh_radius: float, seed: int) -> List[TabletopProp]:
    """Seeded props spread around the object, each just outside its bounding sphere (``mesh_radius``).

    Small (0.3-0.55 object radii tall) and close, so that they stay in the views, stay far below the cameras and
    hide no more than the foot of the object.
    """
    rng = np.random.default_rng(seed)
    shapes: Tuple[PropShape, ...] = ("box", "cylinder", "cone")
    start = rng.uniform(0.0, 2.0 * math.pi)
    props = []
    for index in range(NUM_PROPS):
        shape = shapes[index % len(shapes)]
        half_width = mesh_radius * rng.uniform(0.12, 0.2)
        height = mesh_radius * rng.uniform(0.3, 0.55)
        # Measured in the horizontal plane, so the prop is outside the object's sphere at any table height.
        distance = mesh_radius * rng.uniform(1.05, 1.3) + prop_bounding_radius(shape, half_width, height)
        azimuth = start + 2.0 * math.pi * (index + rng.uniform(-0.2, 0.2)) / NUM_PROPS
        props.append(
            TabletopProp(
                shape=shape,
                xy=(distance * math.cos(azimuth), distance * math.sin(azimuth)),
                half_width=half_width,
                height=height,
                yaw=rng.uniform(0.0, math.pi / 2),
                pattern=("brick", "checker")[index % 2],
                tint=PROP_TINTS[index % len(PROP_TINTS)],
            )
        )
    return props


def tabletop_scene_info(similarity: Similarity, table_height: float, props: List[TabletopProp]) -> Dict[str, Any]:
    """``table_plane`` ``[nx, ny, nz, d]`` (``n . x + d = 0``, unit ``n`` pointing up) and the props' bounding
    spheres (``center``, ``radius``) in the dataset frame, for ``gt/scene.json``."""
    normal = similarity.apply_directions(np.array([0.0, 0.0, 1.0]))
    on_table = similarity.apply_points(np.array([[0.0, 0.0, table_height]]))[0]
    centers = similarity.apply_points(np.array([[*prop.xy, table_height + prop.height / 2] for prop in props]))
    return {
        "table_plane": [*normal.tolist(), float(-normal @ on_table)],
        "props": [
            {"center": center.tolist(), "radius": similarity.scale * prop.bounding_radius}
            for center, prop in zip(centers, props)
        ],
    }

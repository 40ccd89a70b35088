"""Blender-free GlossySynthetic folders of analytic meshes, with exact depth and normals, for evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import trimesh
from PIL import Image

from nero_nerfstudio.scenes.camera_rig import fibonacci_sphere_directions, look_at_w2c, pinhole_intrinsics
from nero_nerfstudio.scenes.ground_truth import GroundTruthCaster, GroundTruthMesh
from nero_nerfstudio.scenes.synthetic_layout import write_synthetic_view


def sphere_mesh(radius: float, subdivisions: int = 5) -> trimesh.Trimesh:
    """An icosphere centred at the origin (subdivision 5: 20480 faces, flat faces within ~2e-4 of the sphere)."""
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def write_synthetic_scene(
    folder: Path,
    mesh: trimesh.Trimesh,
    num_views: int = 8,
    resolution: int = 48,
    scene_info: Optional[Dict] = None,
) -> Path:
    """GlossySynthetic files (``<k>.png``, ``<k>-camera.pkl``, ``<k>-depth.png``) plus ``gt/`` for ``mesh``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gt").mkdir(exist_ok=True)
    centers = 3.0 * fibonacci_sphere_directions(num_views, seed=0)
    w2c_all = look_at_w2c(centers, up=np.array([0.0, 1.0, 0.0]))
    intrinsics = pinhole_intrinsics(resolution, resolution, 40.0)
    gt_mesh = GroundTruthMesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.vertex_normals))
    caster = GroundTruthCaster(gt_mesh)
    for index, w2c in enumerate(w2c_all):
        depth, normals = caster.depth_and_normals(w2c, intrinsics, resolution, resolution)
        write_synthetic_view(folder, str(index), w2c, intrinsics, depth)
        Image.fromarray(np.full((resolution, resolution, 3), 128, np.uint8)).save(folder / f"{index}.png")
        np.save(folder / "gt" / f"{index}-normal.npy", normals.astype(np.float16))
    mesh.export(folder / "gt" / "mesh.ply")
    if scene_info is not None:
        (folder / "gt" / "scene.json").write_text(json.dumps(scene_info))
    return folder

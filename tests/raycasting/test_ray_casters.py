"""Mesh ray casting against analytic spheres and planes, for the open3d backend and the CUDA-BVH wrapper.

The CUDA extension cannot run here, so the wrapper is driven by a brute-force CPU stand-in that follows the
extension's contract (nearest hit with t >= 0, miss depth = its maximum distance 10, flat normal
normalize((b - a) x (c - a)), no face ids). That checks our normalisation which removes the distance limit.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import trimesh

from nero_nerfstudio.raycasting.base import MeshRayCaster
from nero_nerfstudio.raycasting.cuda_bvh_caster import CudaBvhRayCaster, load_cuda_bvh_module
from nero_nerfstudio.raycasting.factory import make_ray_caster
from nero_nerfstudio.raycasting.open3d_caster import Open3dRayCaster

SPHERE_CENTRE = np.array([0.2, -0.1, 0.3])
SPHERE_RADIUS = 0.8
# Subdivision 5: faces span ~0.034 rad, so the flat mesh departs from the analytic sphere by < 2e-4.
DEPTH_TOLERANCE = 5e-4
NORMAL_MIN_COSINE = 0.999


class _BruteForceTracer:
    """CPU stand-in for ashawkey's ``raytracing.RayTracer`` (Moller-Trumbore over all faces)."""

    MAX_DISTANCE = 10.0

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray) -> None:
        self.corners = torch.as_tensor(np.asarray(vertices)[np.asarray(triangles)], dtype=torch.float32)

    def trace(self, rays_o: torch.Tensor, rays_d: torch.Tensor):
        a, b, c = self.corners[:, 0], self.corners[:, 1], self.corners[:, 2]
        edge1, edge2 = b - a, c - a
        pvec = torch.cross(rays_d[:, None], edge2[None], dim=-1)
        det = (edge1[None] * pvec).sum(-1)
        inv_det = 1.0 / torch.where(det.abs() > 1e-12, det, torch.ones_like(det))
        tvec = rays_o[:, None] - a[None]
        u = (tvec * pvec).sum(-1) * inv_det
        qvec = torch.cross(tvec, edge1[None].expand_as(tvec), dim=-1)
        v = (rays_d[:, None] * qvec).sum(-1) * inv_det
        t = (edge2[None] * qvec).sum(-1) * inv_det
        valid = (det.abs() > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0) & (t < self.MAX_DISTANCE)
        t = torch.where(valid, t, torch.full_like(t, self.MAX_DISTANCE))
        depth, face = t.min(dim=1)
        normals = torch.nn.functional.normalize(torch.cross(edge1, edge2, dim=-1), dim=-1)[face]
        normals = torch.where((depth < self.MAX_DISTANCE)[:, None], normals, torch.zeros_like(normals))
        return rays_o + depth[:, None] * rays_d, normals, depth


_FAKE_EXTENSION = types.SimpleNamespace(RayTracer=_BruteForceTracer)


def _build(backend: str, vertices: np.ndarray, faces: np.ndarray, **kwargs) -> MeshRayCaster:
    if backend == "open3d":
        return Open3dRayCaster(vertices, faces, **kwargs)
    return CudaBvhRayCaster(vertices, faces, device="cpu", tracer_module=_FAKE_EXTENSION, **kwargs)


def _sphere_mesh(subdivisions: int) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=SPHERE_RADIUS).apply_translation(SPHERE_CENTRE)


def _analytic_sphere_depth(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Nearest positive distance to the analytic sphere; nan where the ray misses it."""
    directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    offset = origins - SPHERE_CENTRE
    half_b = np.einsum("ij,ij->i", offset, directions)
    c = np.einsum("ij,ij->i", offset, offset) - SPHERE_RADIUS**2
    root = np.sqrt(half_b**2 - c)
    near, far = -half_b - root, -half_b + root
    return np.where(near > 0, near, far)


BACKENDS = ["open3d", "cuda_wrapper"]


@pytest.fixture(scope="module", params=BACKENDS)
def sphere_caster(request) -> MeshRayCaster:
    # The brute-force stand-in is O(rays x faces): a coarser sphere keeps it fast.
    mesh = _sphere_mesh(5 if request.param == "open3d" else 4)
    # Inward-wound, as marching cubes produces: the caster must still report outward normals.
    return _build(request.param, mesh.vertices, mesh.faces[:, ::-1].copy())


def _tolerances(caster: MeshRayCaster) -> tuple:
    return (DEPTH_TOLERANCE, NORMAL_MIN_COSINE) if isinstance(caster, Open3dRayCaster) else (2e-3, 0.995)


def _camera_rays(camera: np.ndarray, num_rays: int, spread: float, seed: int = 0):
    """Rays from ``camera`` towards points scattered around the sphere centre."""
    rng = np.random.default_rng(seed)
    targets = SPHERE_CENTRE + rng.uniform(-spread, spread, size=(num_rays, 3))
    origins = np.repeat(camera[None], num_rays, axis=0)
    return origins, targets - origins


@pytest.mark.parametrize("distance", [3.0, 100.0])
def test_camera_rays_hit_sphere(sphere_caster: MeshRayCaster, distance: float) -> None:
    depth_tol, min_cos = _tolerances(sphere_caster)
    camera = SPHERE_CENTRE + distance * np.array([0.36, 0.48, -0.8])
    origins, directions = _camera_rays(camera, 200, spread=0.5)
    hits = sphere_caster.cast(torch.from_numpy(origins), torch.from_numpy(directions))
    expected_depth = _analytic_sphere_depth(origins, directions)
    assert hits.hit_mask.all()
    assert hits.depth.dtype == torch.float32 and hits.points.shape == (200, 3)
    np.testing.assert_allclose(hits.depth.numpy(), expected_depth, atol=depth_tol * max(1.0, distance / 10))
    radial = (hits.points.numpy() - SPHERE_CENTRE) / SPHERE_RADIUS
    np.testing.assert_allclose(np.linalg.norm(radial, axis=-1), 1.0, atol=depth_tol * max(1.0, distance / 10))
    normals = hits.face_normals.numpy()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)
    assert np.all(np.einsum("ij,ij->i", normals, radial) > min_cos)  # outward


def test_misses(sphere_caster: MeshRayCaster) -> None:
    origins = torch.tensor([[0.0, 0.0, -3.0], [0.0, 0.0, -3.0], [5.0, 5.0, 5.0]])
    # Away from the sphere; passing beside it; and from far, parallel to it.
    directions = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.05], [0.0, 0.0, 1.0]])
    hits = sphere_caster.cast(origins, directions)
    assert not hits.hit_mask.any()
    assert torch.isinf(hits.depth).all()
    assert (hits.points == 0).all() and (hits.face_normals == 0).all() and (hits.face_ids == -1).all()
    assert not sphere_caster.occluded(origins, directions).any()


def test_back_faces_hit_from_inside(sphere_caster: MeshRayCaster) -> None:
    depth_tol, min_cos = _tolerances(sphere_caster)
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(100, 3))
    origins = np.repeat((SPHERE_CENTRE + 0.1)[None], 100, axis=0)
    hits = sphere_caster.cast(torch.from_numpy(origins), torch.from_numpy(directions))
    assert hits.hit_mask.all()
    np.testing.assert_allclose(hits.depth.numpy(), _analytic_sphere_depth(origins, directions), atol=depth_tol)
    unit_directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    radial = (hits.points.numpy() - SPHERE_CENTRE) / SPHERE_RADIUS
    # Still the outward normal: it points along the ray, away from the inside.
    assert np.all(np.einsum("ij,ij->i", hits.face_normals.numpy(), radial) > min_cos)
    assert np.all(np.einsum("ij,ij->i", hits.face_normals.numpy(), unit_directions) > 0)
    assert sphere_caster.occluded(torch.from_numpy(origins), torch.from_numpy(directions)).all()


def test_occlusion_skips_the_starting_surface(sphere_caster: MeshRayCaster) -> None:
    camera = SPHERE_CENTRE + np.array([0.0, 0.0, -3.0])
    origins, directions = _camera_rays(camera, 50, spread=0.3)
    hits = sphere_caster.cast(torch.from_numpy(origins), torch.from_numpy(directions))
    # Secondary rays leaving the hit points along the outward normal see nothing; into the object they hit.
    outward = sphere_caster.occluded(hits.points, hits.face_normals, t_min=1e-4)
    inward = sphere_caster.occluded(hits.points, -hits.face_normals, t_min=1e-4)
    assert not outward.any()
    assert inward.all()


def test_plane_depths_and_consistent_normals() -> None:
    # A 4 x 4 grid in z = 0.5 spanning [-2, 2]^2 (32 triangles).
    grid = np.linspace(-2.0, 2.0, 5)
    xs, ys = np.meshgrid(grid, grid, indexing="ij")
    vertices = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 0.5)], axis=-1)
    index = np.arange(25).reshape(5, 5)
    quads = np.stack([index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]], axis=-1).reshape(-1, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])  # counter-clockwise seen from +z
    rng = np.random.default_rng(2)
    origins = np.concatenate([rng.uniform(-1, 1, (30, 2)), np.full((30, 1), 3.0)], axis=-1)
    directions = np.concatenate([rng.uniform(-0.3, 0.3, (30, 2)), -np.ones((30, 1))], axis=-1)
    expected_depth = 2.5 * np.linalg.norm(directions, axis=-1)
    for backend in BACKENDS:
        caster = _build(backend, vertices, faces, orient_outward=False)
        hits = caster.cast(torch.from_numpy(origins), torch.from_numpy(directions))
        assert hits.hit_mask.all()
        np.testing.assert_allclose(hits.depth.numpy(), expected_depth, atol=1e-5)
        np.testing.assert_allclose(hits.points.numpy()[:, 2], 0.5, atol=1e-5)
        np.testing.assert_allclose(hits.face_normals.numpy(), np.tile([0.0, 0.0, 1.0], (30, 1)), atol=1e-6)
        # From below, through the back of the plane.
        below = caster.cast(torch.from_numpy(origins * [1, 1, -1]), torch.from_numpy(directions * [1, 1, -1]))
        assert below.hit_mask.all()
        np.testing.assert_allclose(below.depth.numpy(), 3.5 / 2.5 * expected_depth, atol=1e-5)


def test_open3d_face_ids_index_the_faces() -> None:
    mesh = _sphere_mesh(3)
    caster = Open3dRayCaster(mesh.vertices, mesh.faces)
    origins, directions = _camera_rays(SPHERE_CENTRE + np.array([0.0, 3.0, 0.0]), 40, spread=0.4)
    hits = caster.cast(torch.from_numpy(origins), torch.from_numpy(directions))
    assert hits.hit_mask.all()
    face_ids = hits.face_ids.numpy()
    np.testing.assert_allclose(hits.face_normals.numpy(), mesh.face_normals[face_ids], atol=1e-5)
    # Each hit point lies on its face: barycentric coordinates inside [0, 1].
    barycentric = trimesh.triangles.points_to_barycentric(mesh.triangles[face_ids], hits.points.numpy())
    assert np.all(barycentric > -1e-3)


def test_bad_input_raises_clear_errors() -> None:
    mesh = _sphere_mesh(1)
    caster = Open3dRayCaster(mesh.vertices, mesh.faces)
    with pytest.raises(ValueError, match="num_rays, 3"):
        caster.cast(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="non-zero"):
        caster.cast(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="faces index vertices outside"):
        Open3dRayCaster(mesh.vertices, mesh.faces + 1000)
    with pytest.raises(ValueError, match="at least 9 faces"):
        CudaBvhRayCaster(mesh.vertices, mesh.faces[:4], device="cpu", tracer_module=_FAKE_EXTENSION)

    class _OldTracer(_BruteForceTracer):
        """Early versions of the extension returned (positions, normals) only."""

        def trace(self, rays_o, rays_d):
            return super().trace(rays_o, rays_d)[:2]

    old_extension = types.SimpleNamespace(RayTracer=_OldTracer)
    old = CudaBvhRayCaster(mesh.vertices, mesh.faces, device="cpu", tracer_module=old_extension)
    with pytest.raises(RuntimeError, match="unsupported"):
        old.cast(torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]]))


def test_factory_and_backend_detection(monkeypatch) -> None:
    mesh = _sphere_mesh(1)
    assert isinstance(make_ray_caster(mesh.vertices, mesh.faces, backend="open3d"), Open3dRayCaster)
    with pytest.raises(ValueError, match="unknown ray-casting backend"):
        make_ray_caster(mesh.vertices, mesh.faces, backend="embree")

    # With CUDA "available", an importable module named raytracing is accepted only with the right API:
    # the PyPI optics library of that name has no RayTracer.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "raytracing", types.ModuleType("raytracing"))
    assert load_cuda_bvh_module() is None
    assert isinstance(make_ray_caster(mesh.vertices, mesh.faces), Open3dRayCaster)
    with pytest.raises(RuntimeError, match="raytracing extension"):
        make_ray_caster(mesh.vertices, mesh.faces, backend="cuda")

    extension = types.ModuleType("raytracing")
    extension.RayTracer = _BruteForceTracer
    monkeypatch.setitem(sys.modules, "raytracing", extension)
    assert load_cuda_bvh_module() is extension

    # Without CUDA the extension is never used.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_cuda_bvh_module() is None


def test_smooth_normals_interpolate_vertex_normals_at_the_hit() -> None:
    mesh = _sphere_mesh(2)
    caster = make_ray_caster(mesh.vertices, mesh.faces, backend="open3d")
    generator = torch.Generator().manual_seed(3)
    centre = torch.tensor(SPHERE_CENTRE, dtype=torch.float32)
    outward = torch.nn.functional.normalize(torch.randn(500, 3, generator=generator), dim=-1)
    origins = centre + 3.0 * outward
    directions = -outward + 0.3 * torch.randn(500, 3, generator=generator)
    hits = caster.cast(origins, directions)
    smooth = caster.smooth_normals(hits)
    assert torch.all(smooth[~hits.hit_mask] == 0)
    points, smooth = hits.points[hits.hit_mask], smooth[hits.hit_mask]
    torch.testing.assert_close(smooth.norm(dim=-1), torch.ones(len(smooth)))
    radial = torch.nn.functional.normalize(points - centre, dim=-1)

    def mean_angle(normals: torch.Tensor) -> float:
        return float(torch.rad2deg(torch.acos((normals * radial).sum(-1).clamp(-1, 1))).mean())

    # On a sphere the interpolated normal follows the radius far better than the flat facets do.
    assert mean_angle(smooth) < 1.0 < 4.0 < mean_angle(hits.face_normals[hits.hit_mask])
    # At a vertex it is that vertex's normal; without a face id (CUDA backend) it falls back to the face normal.
    vertex_direction = torch.from_numpy(caster.vertices[:1]) - centre
    at_vertex = caster.cast(centre + 3.0 * vertex_direction, -vertex_direction)
    expected = torch.from_numpy(caster.vertex_normals[0])
    torch.testing.assert_close(caster.smooth_normals(at_vertex)[0], expected, atol=2e-3, rtol=0)
    at_vertex.face_ids[:] = -1
    torch.testing.assert_close(caster.smooth_normals(at_vertex), at_vertex.face_normals)


def test_vertex_normals_are_angle_weighted_like_blenders() -> None:
    """A box's corner meets each of its three faces at 90 degrees in total, but a face's two triangles may both touch
    the corner (2 x 45 degrees, twice the area) or only one does: angle weights give every corner the exact diagonal,
    area weights tilt it towards the faces whose diagonal ends there."""
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    caster = make_ray_caster(box.vertices, box.faces)
    diagonals = box.vertices / np.linalg.norm(box.vertices, axis=-1, keepdims=True)
    assert np.allclose(caster.vertex_normals, diagonals, atol=1e-6)
    area_weighted = np.zeros_like(box.vertices)
    for corner in range(3):
        np.add.at(area_weighted, box.faces[:, corner], box.face_normals * box.area_faces[:, None])
    area_weighted /= np.linalg.norm(area_weighted, axis=-1, keepdims=True)
    assert np.degrees(np.arccos(np.clip((area_weighted * diagonals).sum(-1), -1, 1))).max() > 5.0

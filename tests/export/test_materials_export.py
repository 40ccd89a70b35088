"""Stage II material export on a sphere with an analytic material function: NeRO's per-vertex .npy files, the baked
glTF / OBJ textures read back with trimesh, and the ExportMaterials command on a fake pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Dict

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.mesh_io import load_triangle_mesh
from nero_nerfstudio.export.material_query import MaterialFnError, query_materials
from nero_nerfstudio.export.materials import (
    ExportMaterials,
    export_texture_materials,
    export_vertex_materials,
)
from nero_nerfstudio.export.xatlas_unwrap import UnwrapError
from nero_nerfstudio.utils.color import linear_to_srgb, srgb_to_linear

TEXTURE_SIZE = 128
TOLERANCE = 0.03
"""Per-channel error allowed when reading a map back: 8-bit steps plus the variation across about a texel."""


def analytic_materials(points: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Smooth albedo, metallic = step at z = 0.25 (off the sphere's vertex rings), smooth roughness. [N, 3] -> dict."""
    albedo = 0.5 + 0.4 * points * torch.tensor([1.0, -1.0, 1.0])
    return {
        "metallic": (points[:, 2:3] > 0.25).float(),
        "roughness": 0.5 + 0.3 * torch.sin(2.0 * points[:, 0:1]),
        "albedo": albedo,
    }


def analytic_numpy(points: np.ndarray) -> Dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in analytic_materials(torch.from_numpy(points).float()).items()}


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Sample an [H, W, C] image at uv the way glTF viewers do: (0, 0) bottom-left, texel centres at (i + 0.5) / size,
    clamp to edge."""
    height, width = image.shape[:2]
    col, row = uv[:, 0] * width - 0.5, (1.0 - uv[:, 1]) * height - 0.5
    col0, row0 = np.floor(col).astype(int), np.floor(row).astype(int)
    frac_col, frac_row = (col - col0)[:, None], (row - row0)[:, None]

    def texel(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return image[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]

    top = texel(row0, col0) * (1 - frac_col) + texel(row0, col0 + 1) * frac_col
    bottom = texel(row0 + 1, col0) * (1 - frac_col) + texel(row0 + 1, col0 + 1) * frac_col
    return top * (1 - frac_row) + bottom * frac_row


def as_float(image: Image.Image) -> np.ndarray:
    array = np.asarray(image, dtype=np.float64) / 255.0
    return array[..., None] if array.ndim == 2 else array


@pytest.fixture(name="sphere_path")
def fixture_sphere_path(tmp_path: Path) -> Path:
    """An icosphere PLY with shuffled vertex order, so row order is not an accident of the generator."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    permutation = np.random.default_rng(0).permutation(len(sphere.vertices))
    inverse = np.argsort(permutation)
    shuffled = trimesh.Trimesh(sphere.vertices[permutation], inverse[sphere.faces], process=False)
    path = tmp_path / "input" / "sphere.ply"
    path.parent.mkdir()
    shuffled.export(path)
    return path


@pytest.fixture(name="textured_dir", scope="module")
def fixture_textured_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output_dir = tmp_path_factory.mktemp("textured")
    sphere = trimesh.creation.icosphere(subdivisions=3)
    export_texture_materials(sphere, analytic_materials, output_dir, texture_size=TEXTURE_SIZE, batch_size=4096)
    return output_dir


def assert_no_temporary_files(folder: Path) -> None:
    leftovers = [path.name for path in folder.iterdir() if path.name.startswith(".") or ".tmp" in path.name]
    assert not leftovers, leftovers


def test_vertex_npys_are_srgb_encoded_float32_in_ply_vertex_order(sphere_path: Path, tmp_path: Path):
    output_dir = tmp_path / "materials"
    paths = export_vertex_materials(load_triangle_mesh(sphere_path), analytic_materials, output_dir, batch_size=100)
    assert {path.name for path in output_dir.iterdir()} == {
        "metallic.npy", "roughness.npy", "albedo.npy", "mesh.ply", "materials.json"
    }
    assert set(paths) == {"metallic", "roughness", "albedo", "mesh", "description"}
    # The copied mesh, read the documented way, has the input's vertex order.
    copied = trimesh.load(output_dir / "mesh.ply", process=False)
    original = trimesh.load(sphere_path, process=False)
    np.testing.assert_array_equal(copied.vertices, original.vertices)
    np.testing.assert_array_equal(copied.faces, original.faces)
    expected = analytic_numpy(np.asarray(copied.vertices))
    for name, channels in (("metallic", 1), ("roughness", 1), ("albedo", 3)):
        stored = np.load(output_dir / f"{name}.npy")
        assert stored.dtype == np.float32 and stored.shape == (len(copied.vertices), channels)
        # Stored exactly as NeRO: sRGB(linear), which decodes back to the function at vertex i.
        np.testing.assert_allclose(stored, linear_to_srgb(expected[name]), atol=1e-6)
        np.testing.assert_allclose(srgb_to_linear(stored), expected[name], atol=1e-5)
    # The encoding is not the identity for mid-grey values (guards against writing linear values).
    assert np.abs(np.load(output_dir / "roughness.npy") - expected["roughness"]).max() > 0.1
    description = json.loads((output_dir / "materials.json").read_text())
    assert description["encoding"] == "srgb" and description["roughness"] == "sqrt(alpha)"
    assert description["vertex_count"] == len(copied.vertices) == 642
    assert_no_temporary_files(output_dir)


def test_bad_material_fn_output_gives_a_clear_error_and_writes_nothing(sphere_path: Path, tmp_path: Path):
    def flat_roughness(points: torch.Tensor) -> Dict[str, torch.Tensor]:
        materials = analytic_materials(points)
        materials["roughness"] = materials["roughness"][:, 0]
        return materials

    mesh = load_triangle_mesh(sphere_path)
    with pytest.raises(MaterialFnError, match=r"'roughness' has shape \(642,\) for 642 points; expected \[642, 1\]"):
        export_vertex_materials(mesh, flat_roughness, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(MaterialFnError, match="missing albedo"):
        query_materials(lambda p: {"metallic": p[:, :1], "roughness": p[:, :1]}, np.zeros((4, 3)))
    with pytest.raises(MaterialFnError, match="'metallic' has NaN"):
        query_materials(
            lambda p: {"metallic": p[:, :1] * np.nan, "roughness": p[:, :1], "albedo": p}, np.zeros((4, 3))
        )


def test_unreadable_mesh_is_a_one_line_data_error(tmp_path: Path):
    broken = tmp_path / "broken.ply"
    broken.write_text("ply\nthis is not a mesh\n")
    with pytest.raises(NeroDataError, match="broken.ply"):
        load_triangle_mesh(broken)
    with pytest.raises(NeroDataError, match="mesh file not found"):
        load_triangle_mesh(tmp_path / "missing.ply")


def test_texture_export_writes_every_file_atomically(textured_dir: Path):
    assert {path.name for path in textured_dir.iterdir()} == {
        "material.glb", "material.obj", "material.mtl", "albedo.png", "metallic.png", "roughness.png",
        "materials_preview.png", "textures.json",
    }
    assert_no_temporary_files(textured_dir)
    for name in ("albedo", "metallic", "roughness"):
        assert Image.open(textured_dir / f"{name}.png").size == (TEXTURE_SIZE, TEXTURE_SIZE)
    preview = Image.open(textured_dir / "materials_preview.png")
    assert preview.width == 3 * TEXTURE_SIZE and preview.height > TEXTURE_SIZE
    assert json.loads((textured_dir / "textures.json").read_text())["texture_size"] == TEXTURE_SIZE


def test_maps_are_in_range_and_the_gutter_has_no_black_texels(textured_dir: Path):
    albedo = np.asarray(Image.open(textured_dir / "albedo.png"))
    roughness = np.asarray(Image.open(textured_dir / "roughness.png"))
    metallic = np.asarray(Image.open(textured_dir / "metallic.png"))
    # The function's albedo is >= 0.1 and roughness >= 0.2 everywhere, so any black texel is an unfilled gap.
    assert albedo.min() >= np.floor(255 * linear_to_srgb(0.1)) and roughness.min() >= 0.19 * 255
    assert set(np.unique(metallic).tolist()) <= {0, 255} and metallic.min() == 0 and metallic.max() == 255


def test_glb_round_trip_reproduces_the_material_function_at_the_vertices(textured_dir: Path):
    loaded = trimesh.load(textured_dir / "material.glb", force="mesh", process=False)
    material = loaded.visual.material
    assert isinstance(material, trimesh.visual.material.PBRMaterial)
    assert material.baseColorTexture.size == (TEXTURE_SIZE, TEXTURE_SIZE)
    assert material.metallicRoughnessTexture.size == (TEXTURE_SIZE, TEXTURE_SIZE)
    uv = np.asarray(loaded.visual.uv)
    expected = analytic_numpy(np.asarray(loaded.vertices))
    base_color = as_float(material.baseColorTexture)[..., :3]
    packed = as_float(material.metallicRoughnessTexture)

    def errors(flip_v: bool) -> np.ndarray:
        lookup = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=-1) if flip_v else uv
        metallic_roughness = sample_bilinear(packed, lookup)
        sampled = {
            "albedo": srgb_to_linear(sample_bilinear(base_color, lookup)),
            "roughness": metallic_roughness[:, 1:2],  # glTF: G = roughness
            "metallic": metallic_roughness[:, 2:3],  # glTF: B = metallic
        }
        return np.max([np.abs(sampled[name] - expected[name]).max(axis=-1) for name in expected], axis=0)

    vertex_error = errors(flip_v=False)
    assert (vertex_error < TOLERANCE).mean() > 0.95
    assert np.median(vertex_error) < 0.01
    # The same check with the v axis flipped fails badly, so the test does see a wrong flip.
    assert (errors(flip_v=True) < TOLERANCE).mean() < 0.5


def test_z_up_frames_are_turned_y_up_in_the_glb(tmp_path: Path):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    export_texture_materials(sphere, analytic_materials, tmp_path, texture_size=64, up_axis="z")
    loaded = trimesh.load(tmp_path / "material.glb", force="mesh", process=False)
    glb_vertices = np.asarray(loaded.vertices)
    # Every glb vertex is a sphere vertex turned by (x, y, z) -> (x, z, -y).
    normalized_vertices = np.stack([glb_vertices[:, 0], -glb_vertices[:, 2], glb_vertices[:, 1]], axis=-1)
    nearest = np.min(np.linalg.norm(normalized_vertices[:, None] - sphere.vertices[None], axis=-1), axis=1)
    assert nearest.max() < 1e-6
    metallic = sample_bilinear(as_float(loaded.visual.material.metallicRoughnessTexture), np.asarray(loaded.visual.uv))
    turned_back = np.abs(metallic[:, 2:3] - analytic_numpy(normalized_vertices)["metallic"])[:, 0]
    not_turned_back = np.abs(metallic[:, 2:3] - analytic_numpy(glb_vertices)["metallic"])[:, 0]
    assert (turned_back < TOLERANCE).mean() > 0.95 and (not_turned_back < TOLERANCE).mean() < 0.9


def test_texture_export_can_decimate_the_mesh_first(tmp_path: Path):
    sphere = trimesh.creation.icosphere(subdivisions=3)
    export_texture_materials(sphere, analytic_materials, tmp_path, texture_size=64, max_faces=400)
    loaded = trimesh.load(tmp_path / "material.glb", force="mesh", process=False)
    assert 300 <= len(loaded.faces) <= 400
    assert json.loads((tmp_path / "textures.json").read_text())["face_count"] == len(loaded.faces)
    assert np.abs(np.linalg.norm(loaded.vertices, axis=-1) - 1.0).max() < 0.05
    expected = analytic_numpy(np.asarray(loaded.vertices))["albedo"]
    base_color = as_float(loaded.visual.material.baseColorTexture)[..., :3]
    sampled = srgb_to_linear(sample_bilinear(base_color, np.asarray(loaded.visual.uv)))
    assert (np.abs(sampled - expected).max(axis=-1) < TOLERANCE).mean() > 0.95


def test_obj_and_mtl_load_back_with_their_textures(textured_dir: Path):
    mtl = (textured_dir / "material.mtl").read_text().splitlines()
    for key, file_name in (("map_Kd", "albedo.png"), ("map_Pm", "metallic.png"), ("map_Pr", "roughness.png")):
        assert f"{key} {file_name}" in mtl
    assert "Pm 1.0" in mtl and "Pr 1.0" in mtl
    loaded = trimesh.load(textured_dir / "material.obj", force="mesh", process=False)
    image = loaded.visual.material.image
    assert image.size == (TEXTURE_SIZE, TEXTURE_SIZE)
    expected = analytic_numpy(np.asarray(loaded.vertices))["albedo"]
    sampled = srgb_to_linear(sample_bilinear(as_float(image)[..., :3], np.asarray(loaded.visual.uv)))
    assert (np.abs(sampled - expected).max(axis=-1) < TOLERANCE).mean() > 0.95
    # The separate linear maps read back at the vertices too.
    roughness = sample_bilinear(as_float(Image.open(textured_dir / "roughness.png")), np.asarray(loaded.visual.uv))
    expected_roughness = analytic_numpy(np.asarray(loaded.vertices))["roughness"]
    assert (np.abs(roughness - expected_roughness)[:, 0] < TOLERANCE).mean() > 0.95


class FakeModel:
    """Stands in for the Stage II model: material_fn and config.mesh_path, nothing else."""

    def __init__(self, mesh_path: Path, material_fn=analytic_materials) -> None:
        self.config = SimpleNamespace(mesh_path=mesh_path)
        self.material_fn = material_fn


def patch_load_pipeline(monkeypatch: pytest.MonkeyPatch, model: object, up_axis: str = "y") -> list:
    """Replace the run loader with one that returns a pipeline holding ``model``, with dataparser metadata
    ``up_axis``; returns its calls. (Loading a real run needs all of nerfstudio's trainer: half a minute here.)"""
    from nero_nerfstudio.utils import run_loading

    calls = []

    def fake_load_pipeline(config_path, test_mode="inference"):
        calls.append((config_path, test_mode))
        dataparser_outputs = SimpleNamespace(metadata={"up_axis": up_axis})
        datamanager = SimpleNamespace(train_dataparser_outputs=dataparser_outputs)
        return SimpleNamespace(model=model, device="cpu", datamanager=datamanager), None, 1234

    monkeypatch.setattr(run_loading, "load_pipeline", fake_load_pipeline)
    return calls


def write_run_config(run_dir: Path, scale: float = 1.0) -> Path:
    """A run folder with a config.yml (unread by the fake loader) and the parser's transform: identity, ``scale``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "dataparser_transforms.json").write_text(
        json.dumps({"transform": np.eye(4)[:3].tolist(), "scale": scale})
    )
    config_path = run_dir / "config.yml"
    config_path.write_text("placeholder: the fake loader does not read it\n")
    return config_path


def test_export_materials_command_uses_the_training_mesh_by_default(
    sphere_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    config_path = write_run_config(tmp_path / "run")
    calls = patch_load_pipeline(monkeypatch, FakeModel(sphere_path), up_axis="z")
    output_dir = tmp_path / "export"
    ExportMaterials(load_config=config_path, output_dir=output_dir, texture_size=32, batch_size=1000).main()
    assert calls == [(config_path, "inference")]
    for name in ("metallic.npy", "roughness.npy", "albedo.npy", "mesh.ply", "materials.json", "material.glb",
                 "material.obj", "material.mtl", "albedo.png", "materials_preview.png"):
        assert (output_dir / name).is_file(), name
    assert np.load(output_dir / "albedo.npy").shape == (642, 3)
    assert Image.open(output_dir / "albedo.png").size == (32, 32)
    assert "z-up turned +y up" in json.loads((output_dir / "textures.json").read_text())["frame"]

    # An explicit --mesh-path wins over the training mesh.
    small_sphere = tmp_path / "small.ply"
    trimesh.creation.icosphere(subdivisions=1).export(small_sphere)
    ExportMaterials(load_config=config_path, output_dir=tmp_path / "small", mesh_path=small_sphere,
                    texture_size=32).main()
    assert np.load(tmp_path / "small" / "metallic.npy").shape == (42, 1)

    # Without textures: NeRO's per-vertex files only, no xatlas.
    ExportMaterials(load_config=config_path, output_dir=tmp_path / "vertex_only", bake_textures=False).main()
    assert {path.name for path in (tmp_path / "vertex_only").iterdir()} == {
        "metallic.npy", "roughness.npy", "albedo.npy", "mesh.ply", "materials.json"
    }


def test_export_materials_command_reports_bad_runs_as_data_errors(
    sphere_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(NeroDataError, match="dataparser_transforms.json not found"):
        ExportMaterials(load_config=tmp_path / "missing" / "config.yml", output_dir=tmp_path / "out").main()
    config_path = write_run_config(tmp_path / "run")
    patch_load_pipeline(monkeypatch, SimpleNamespace(config=SimpleNamespace(mesh_path=sphere_path)))
    with pytest.raises(NeroDataError, match="has no material_fn; material export needs a nero-material run"):
        ExportMaterials(load_config=config_path, output_dir=tmp_path / "out").main()
    patch_load_pipeline(monkeypatch, FakeModel(sphere_path, material_fn=lambda points: {"albedo": points}))
    with pytest.raises(NeroDataError, match="step 1234: material_fn output is missing metallic, roughness"):
        ExportMaterials(load_config=config_path, output_dir=tmp_path / "out").main()
    patch_load_pipeline(monkeypatch, FakeModel(tmp_path / "gone.ply"))
    with pytest.raises(NeroDataError, match="gone.ply: mesh file not found"):
        ExportMaterials(load_config=config_path, output_dir=tmp_path / "out").main()
    # A dataset-frame mesh is moved into the run's normalised frame: here a scale of 0.5 brings radius 1.8 to 0.9.
    large_sphere = tmp_path / "large.ply"
    trimesh.creation.icosphere(subdivisions=1, radius=1.8).export(large_sphere)
    scaled_config = write_run_config(tmp_path / "scaled_run", scale=0.5)
    patch_load_pipeline(monkeypatch, FakeModel(large_sphere))
    ExportMaterials(load_config=scaled_config, output_dir=tmp_path / "scaled", bake_textures=False).main()
    exported = trimesh.load(tmp_path / "scaled" / "mesh.ply", process=False)
    assert np.allclose(np.linalg.norm(exported.vertices, axis=-1), 0.9, atol=1e-5)
    # A mesh that does not fit the run's unit sphere belongs to another scene.
    with pytest.raises(NeroDataError, match=r"large.ply: in the run's normalised frame the mesh reaches radius 1.800"):
        ExportMaterials(load_config=config_path, output_dir=tmp_path / "out").main()


def test_an_unwrap_failure_keeps_the_vertex_files_and_says_how_to_skip_textures(
    sphere_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from nero_nerfstudio.export import uv_baking

    def crashing_unwrap(vertices: np.ndarray, faces: np.ndarray, texture_size: int) -> None:
        raise UnwrapError("xatlas crashed (SIGSEGV) while unwrapping the mesh")

    config_path = write_run_config(tmp_path / "run")
    patch_load_pipeline(monkeypatch, FakeModel(sphere_path))
    monkeypatch.setattr(uv_baking, "unwrap_uv", crashing_unwrap)
    with pytest.raises(NeroDataError, match=r"sphere.ply: xatlas crashed .*--no-bake-textures skips textures"):
        ExportMaterials(load_config=config_path, output_dir=tmp_path / "out").main()
    assert np.load(tmp_path / "out" / "albedo.npy").shape == (642, 3)
    assert not (tmp_path / "out" / "material.glb").exists()


def test_export_materials_command_writes_the_learned_environment_of_a_model_that_has_one(
    sphere_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import cv2

    model = FakeModel(sphere_path)
    model.environment_fn = lambda directions: 0.5 + 0.5 * directions.abs()  # linear radiance in [0.5, 1]
    config_path = write_run_config(tmp_path / "run")
    patch_load_pipeline(monkeypatch, model, up_axis="y")
    export = dict(load_config=config_path, bake_textures=False)
    ExportMaterials(**export, output_dir=tmp_path / "out", environment_height=16).main()
    environment = cv2.imread(str(tmp_path / "out" / "environment.hdr"), cv2.IMREAD_UNCHANGED)
    assert environment.shape == (16, 32, 3) and 0.49 < environment.min() and environment.max() <= 1.0
    assert Image.open(tmp_path / "out" / "environment.png").size == (32, 16)

    ExportMaterials(**export, output_dir=tmp_path / "none", environment_height=0).main()
    assert not (tmp_path / "none" / "environment.hdr").exists()
    with pytest.raises(SystemExit, match="--environment-height >= 0"):
        ExportMaterials(load_config=config_path, output_dir=tmp_path / "bad", environment_height=-1).main()

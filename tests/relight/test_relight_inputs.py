"""Relight inputs: NeRO material folders, .glb materials, environments, and the errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from relight_helpers import smooth_material, uv_sphere, write_glb, write_nero_materials

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.relight import blender_launcher
from nero_nerfstudio.relight.blender_launcher import (
    BlenderNotFoundError,
    backend_command,
    parse_frame_line,
)
from nero_nerfstudio.relight.material_inputs import (
    decode_nero_materials,
    load_glb,
    load_mesh,
    load_nero_materials,
)
from nero_nerfstudio.relight.relight import JOB_FILE, RelightConfig, prepare_job, relight, resolve_hdr, resolve_up_axis


@pytest.fixture
def sphere_inputs(tmp_path: Path):
    sphere, uv = uv_sphere()
    sphere.export(tmp_path / "sphere.ply")
    write_nero_materials(tmp_path / "materials", uv, smooth_material)
    return tmp_path / "sphere.ply", tmp_path / "materials", uv


def test_nero_materials_are_decoded_from_srgb(sphere_inputs):
    mesh_path, folder, uv = sphere_inputs
    vertices, _ = load_mesh(mesh_path)
    materials = load_nero_materials(folder, len(vertices))
    albedo, metallic, roughness = smooth_material(uv)
    np.testing.assert_allclose(materials.albedo, albedo, atol=1e-5)
    np.testing.assert_allclose(materials.metallic, metallic, atol=1e-5)
    np.testing.assert_allclose(materials.roughness, roughness, atol=1e-5)
    # sRGB 0.5 is linear 0.214, for metallic and roughness too (NeRO encodes all three).
    decoded = decode_nero_materials(np.full((1, 1), 0.5), np.full((1, 1), 0.5), np.full((1, 3), 0.5))
    np.testing.assert_allclose(decoded.metallic, 0.21404, atol=1e-4)
    np.testing.assert_allclose(decoded.roughness, 0.21404, atol=1e-4)


def test_mesh_vertex_order_and_duplicates_are_kept(tmp_path: Path):
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [5, 5, 5]], dtype=float)  # duplicate + unused
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    trimesh.Trimesh(vertices, faces, process=False).export(tmp_path / "mesh.ply")
    loaded_vertices, loaded_faces = load_mesh(tmp_path / "mesh.ply")
    np.testing.assert_array_equal(loaded_vertices, vertices)
    np.testing.assert_array_equal(loaded_faces, faces)


def test_wrong_npy_length_names_the_file_and_both_counts(sphere_inputs):
    mesh_path, folder, _ = sphere_inputs
    np.save(folder / "roughness.npy", np.zeros((7, 1), np.float32))
    num_vertices = len(load_mesh(mesh_path)[0])
    with pytest.raises(NeroDataError, match=rf"roughness\.npy: has 7 rows but the mesh has {num_vertices} vertices"):
        load_nero_materials(folder, num_vertices)


@pytest.mark.parametrize(
    "name, array, message",
    [
        ("albedo.npy", np.zeros((642, 1)), r"albedo\.npy: expected shape \[num_vertices, 3\]"),
        ("metallic.npy", np.full((642, 1), np.nan), r"metallic\.npy: contains NaN"),
        ("metallic.npy", None, r"metallic\.npy: material file is missing"),
    ],
)
def test_bad_material_files(sphere_inputs, name, array, message):
    _, folder, _ = sphere_inputs
    if array is None:
        (folder / name).unlink()
    else:
        np.save(folder / name, array)
    with pytest.raises(NeroDataError, match=message):
        load_nero_materials(folder, 642)


def test_glb_textures_follow_gltf(tmp_path: Path):
    sphere, uv = uv_sphere()
    path = write_glb(tmp_path / "material.glb", sphere, uv, smooth_material, size=16)
    textured = load_glb(path)
    assert textured.vertices.shape == sphere.vertices.shape
    np.testing.assert_allclose(textured.uv, uv, atol=1e-6)
    metallic_roughness = np.asarray(textured.metallic_roughness_texture)
    # Texel (row 0, col 15): u near 1 (rough), v near 1 (metallic).
    _, metallic, roughness = smooth_material(np.array([[15.5 / 16, 1 - 0.5 / 16]]))
    assert metallic_roughness[0, 15, 1] == round(255 * roughness[0])
    assert metallic_roughness[0, 15, 2] == round(255 * metallic[0])
    assert textured.metallic_factor == 1.0 and textured.roughness_factor == 1.0
    assert textured.base_color_factor == (1.0, 1.0, 1.0, 1.0)


def test_glb_errors(tmp_path: Path):
    with pytest.raises(NeroDataError, match="material .glb does not exist"):
        load_glb(tmp_path / "missing.glb")
    trimesh.creation.box().export(tmp_path / "plain.glb")
    with pytest.raises(NeroDataError, match="no glTF metallic-roughness"):
        load_glb(tmp_path / "plain.glb")


def test_environment_names_and_files(tmp_path: Path):
    assert resolve_hdr("sunset", None).name == "sunset.exr"
    with pytest.raises(NeroDataError, match=r"unknown environment; use one of city, courtyard, forest"):
        resolve_hdr("beach", None)
    with pytest.raises(NeroDataError, match=r"missing\.exr: environment map file does not exist"):
        resolve_hdr(str(tmp_path / "missing.exr"), None)
    # A damaged map is refused before Blender starts (Blender would render it magenta without a word).
    bundled = resolve_hdr("sunset", None).read_bytes()
    (tmp_path / "copy.exr").write_bytes(bundled)
    assert resolve_hdr(str(tmp_path / "copy.exr"), None) == (tmp_path / "copy.exr").resolve()
    (tmp_path / "truncated.exr").write_bytes(bundled[: len(bundled) // 2])
    (tmp_path / "text.hdr").write_text("#?RADIANCE but nothing else\n")
    for name in ("truncated.exr", "text.hdr"):
        with pytest.raises(NeroDataError, match=rf"{name}: cannot decode this environment map"):
            resolve_hdr(str(tmp_path / name), None)


def test_up_axis_precedence(tmp_path: Path):
    base = dict(material=tmp_path, output_dir=tmp_path)
    assert resolve_up_axis(RelightConfig(**base)) == "z"
    assert resolve_up_axis(RelightConfig(**base, trans=True)) == "y"
    assert resolve_up_axis(RelightConfig(**base, cameras_from=tmp_path)) == "y"
    assert resolve_up_axis(RelightConfig(**base, cameras_from=tmp_path, up_axis="z")) == "z"


def test_up_axis_from_a_run_config(tmp_path: Path):
    import yaml
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
    from nerfstudio.engine.trainer import TrainerConfig
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    from nero_nerfstudio.data.dataparsers.nero_colmap_dataparser import NeroRealDataParserConfig
    from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig

    for dataparser, expected in ((NeroSyntheticDataParserConfig(), "y"), (NeroRealDataParserConfig(), "z")):
        trainer = TrainerConfig(
            pipeline=VanillaPipelineConfig(datamanager=VanillaDataManagerConfig(dataparser=dataparser))
        )
        config_path = tmp_path / f"{expected}.yml"
        config_path.write_text(yaml.dump(trainer))
        assert resolve_up_axis(RelightConfig(material=tmp_path, output_dir=tmp_path, run_config=config_path)) == expected
    with pytest.raises(NeroDataError, match="run config.yml does not exist"):
        resolve_up_axis(RelightConfig(material=tmp_path, output_dir=tmp_path, run_config=tmp_path / "none.yml"))


def test_job_holds_linear_materials_in_vertex_order(sphere_inputs, tmp_path: Path):
    mesh_path, folder, uv = sphere_inputs
    config = RelightConfig(mesh=mesh_path, material=folder, output_dir=tmp_path / "out", num_frames=3, resolution=16)
    job_path, num_frames = prepare_job(config)
    assert job_path == tmp_path / "out" / JOB_FILE and num_frames == 3
    arrays = np.load(tmp_path / "out" / "relight_mesh.npz")
    np.testing.assert_array_equal(arrays["vertices"], load_mesh(mesh_path)[0])
    np.testing.assert_allclose(arrays["metallic"], smooth_material(uv)[1], atol=1e-5)


def test_no_blender_found(sphere_inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real_find_spec = blender_launcher.importlib.util.find_spec
    monkeypatch.setattr(
        blender_launcher.importlib.util, "find_spec", lambda name, *a: None if name == "bpy" else real_find_spec(name, *a)
    )
    mesh_path, folder, _ = sphere_inputs
    config = RelightConfig(mesh=mesh_path, material=folder, output_dir=tmp_path / "out")
    with pytest.raises(BlenderNotFoundError, match="no Blender found: pip install bpy or pass --blender"):
        relight(config)
    assert not (tmp_path / "out").exists()  # reported before anything is written
    with pytest.raises(NeroDataError, match="Blender executable not found"):
        backend_command(tmp_path / "job.json", tmp_path / "no-blender")


def test_bad_settings_and_inputs_fail_before_blender(sphere_inputs, tmp_path: Path):
    mesh_path, folder, _ = sphere_inputs
    with pytest.raises(NeroDataError, match="samples must be >= 1"):
        prepare_job(RelightConfig(mesh=mesh_path, material=folder, output_dir=tmp_path / "a", samples=0))
    with pytest.raises(NeroDataError, match="needs --mesh"):
        prepare_job(RelightConfig(material=folder, output_dir=tmp_path / "b"))
    with pytest.raises(NeroDataError, match="mesh file does not exist"):
        prepare_job(RelightConfig(mesh=tmp_path / "none.ply", material=folder, output_dir=tmp_path / "c"))
    with pytest.raises(NeroDataError, match="unknown environment"):
        prepare_job(RelightConfig(mesh=mesh_path, material=folder, output_dir=tmp_path / "d", hdr="moon"))


def test_frame_lines_are_parsed():
    report = parse_frame_line("@@nero-relight frame 3 8 1.250 /tmp/out dir/2.png\n")
    assert (report.done, report.total, report.seconds, report.path) == (3, 8, 1.25, Path("/tmp/out dir/2.png"))
    assert parse_frame_line("@@nero-relight frame 1 8 -1 /tmp/0.png").seconds is None


def test_folder_with_only_material_glb_uses_the_glb(tmp_path: Path):
    sphere, uv = uv_sphere()
    (tmp_path / "export").mkdir()
    write_glb(tmp_path / "export" / "material.glb", sphere, uv, smooth_material)
    config = RelightConfig(material=tmp_path / "export", output_dir=tmp_path / "out", num_frames=1, resolution=16)
    job_path, _ = prepare_job(config)
    material = json.loads(job_path.read_text())["material"]
    assert material["kind"] == "texture"
    assert Path(material["metallic_roughness_image"]).is_file() and Path(material["base_color_image"]).is_file()
    np.testing.assert_allclose(np.load(tmp_path / "out" / "relight_mesh.npz")["uv"], uv, atol=1e-6)


def test_nothing_is_written_for_bad_input(sphere_inputs, tmp_path: Path):
    mesh_path, folder, _ = sphere_inputs
    np.save(folder / "albedo.npy", np.zeros((5, 3), np.float32))
    with pytest.raises(NeroDataError, match=r"albedo\.npy: has 5 rows"):
        prepare_job(RelightConfig(mesh=mesh_path, material=folder, output_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()

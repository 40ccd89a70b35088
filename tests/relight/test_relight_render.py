"""Relighting with a real Blender (the bpy module, in a child process), tiny images on the CPU."""

from __future__ import annotations

import io
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from relight_helpers import (
    constant_material,
    iou,
    offset_box,
    projected_silhouette,
    read_rgba,
    smooth_material,
    uv_sphere,
    write_camera_folder,
    write_glb,
    write_nero_materials,
)
from rich.console import Console
from scipy.ndimage import binary_erosion, gaussian_filter

from nero_nerfstudio.relight.cameras import Y_UP_TO_Z_UP, orbit_cameras
from nero_nerfstudio.relight.blender_launcher import RelightRenderError, backend_command, run_backend
from nero_nerfstudio.relight.relight import RelightConfig, prepare_job, relight

pytestmark = pytest.mark.slow

TINY = dict(resolution=32, num_frames=2, samples=8, threads=1, denoise=False)


def _render(tmp_path: Path, name: str, **overrides) -> RelightConfig:
    settings = dict(TINY, output_dir=tmp_path / name, hdr="courtyard")
    settings.update(overrides)
    config = RelightConfig(**settings)
    relight(config)
    return config


@pytest.fixture(scope="module")
def box_render(tmp_path_factory: pytest.TempPathFactory):
    """A y-up offset box with constant materials, rendered on the default half orbit."""
    folder = tmp_path_factory.mktemp("box")
    box = offset_box()
    box.export(folder / "box.ply")
    write_nero_materials(folder / "materials", np.zeros((len(box.vertices), 2)), constant_material((0.7, 0.5, 0.3), 0.0, 0.5))
    config = _render(folder, "out", mesh=folder / "box.ply", material=folder / "materials", up_axis="y")
    return box, config


def test_orbit_render_covers_the_projected_mesh(box_render):
    box, config = box_render
    cameras = orbit_cameras(config.num_frames, config.resolution)
    vertices = np.asarray(box.vertices) @ Y_UP_TO_Z_UP.T
    for name, w2c, intrinsics in zip(cameras.names, cameras.w2c, cameras.intrinsics):
        rgba = read_rgba(config.output_dir / f"{name}.png")
        assert rgba.shape == (32, 32, 4)
        rendered = rgba[..., 3] > 0.5
        assert rendered.sum() > 20 and rgba[..., :3][rendered].max() > 0.05
        expected = projected_silhouette(vertices, np.asarray(box.faces), w2c, intrinsics, 32, 32)
        assert iou(rendered, expected) > 0.8
    assert (config.output_dir / "scene.blend").stat().st_size > 0


def test_existing_frames_are_skipped(box_render):
    _, config = box_render
    frame = config.output_dir / "0.png"
    before = frame.stat().st_mtime_ns
    result = relight(config)
    assert result.seconds_per_frame == []  # nothing rendered again
    assert frame.stat().st_mtime_ns == before
    assert len(result.frame_paths) == config.num_frames


def test_npy_and_glb_materials_render_alike(tmp_path: Path):
    sphere, uv = uv_sphere()
    sphere.export(tmp_path / "sphere.ply")
    write_nero_materials(tmp_path / "materials", uv, smooth_material)
    write_glb(tmp_path / "material.glb", sphere, uv, smooth_material)
    from_npy = _render(tmp_path, "npy", mesh=tmp_path / "sphere.ply", material=tmp_path / "materials", num_frames=1)
    from_glb = _render(tmp_path, "glb", material=tmp_path / "material.glb", num_frames=1)
    npy_image, glb_image = read_rgba(from_npy.output_dir / "0.png"), read_rgba(from_glb.output_dir / "0.png")
    inside = (npy_image[..., 3] > 0.5) | (glb_image[..., 3] > 0.5)
    assert inside.sum() > 50
    assert np.abs(npy_image - glb_image)[inside].mean() < 0.01  # measured 0.0013


def test_dataset_cameras_with_shifted_principal_point(tmp_path: Path):
    """Non-square image, off-centre principal point, y-up dataset frame: the box lands where K and w2c say."""
    box = offset_box()
    box.export(tmp_path / "box.ply")
    write_nero_materials(tmp_path / "materials", np.zeros((len(box.vertices), 2)), constant_material((0.8, 0.8, 0.8), 0.0, 0.6))
    width, height = 40, 30
    intrinsics = np.array([[38.0, 0.0, 0.3 * width], [0.0, 38.0, 0.62 * height], [0.0, 0.0, 1.0]])
    cameras = orbit_cameras(2, 32, radius=3.2, elevation_deg=25.0, azimuth_center_deg=40.0)
    w2c_dataset = cameras.w2c.copy()
    w2c_dataset[:, :, :3] = cameras.w2c[:, :, :3] @ Y_UP_TO_Z_UP  # the same views written in the y-up frame
    dataset = write_camera_folder(tmp_path / "dataset", w2c_dataset, intrinsics, width, height)
    config = _render(
        tmp_path, "out", mesh=tmp_path / "box.ply", material=tmp_path / "materials", cameras_from=dataset
    )
    for index, w2c in enumerate(w2c_dataset):
        rendered = read_rgba(config.output_dir / f"{index}.png")[..., 3] > 0.5
        assert rendered.shape == (height, width)
        expected = projected_silhouette(np.asarray(box.vertices), np.asarray(box.faces), w2c, intrinsics, width, height)
        assert expected.sum() > 30
        assert iou(rendered, expected) > 0.8


def test_mirror_reflects_environment_and_rough_white_does_not(tmp_path: Path):
    sphere, uv = uv_sphere()
    sphere.export(tmp_path / "sphere.ply")
    write_nero_materials(tmp_path / "mirror", uv, constant_material((1.0, 1.0, 1.0), 1.0, 0.0))
    write_nero_materials(tmp_path / "rough", uv, constant_material((0.8, 0.8, 0.8), 0.0, 1.0))
    settings = dict(mesh=tmp_path / "sphere.ply", num_frames=1, samples=16, denoise=True)
    mirror = read_rgba(_render(tmp_path, "mirror_out", material=tmp_path / "mirror", **settings).output_dir / "0.png")
    rough = read_rgba(_render(tmp_path, "rough_out", material=tmp_path / "rough", **settings).output_dir / "0.png")

    def detail(image: np.ndarray) -> float:
        """Mean high-pass magnitude inside the object: reflected scenery, not the smooth diffuse shading."""
        inside = binary_erosion(image[..., 3] > 0.99, iterations=2)
        assert inside.sum() > 40
        grey = image[..., :3].mean(axis=-1)
        return float(np.abs(grey - gaussian_filter(grey, sigma=1.5))[inside].mean())

    # Measured: mirror 0.099, rough 0.0034.
    assert detail(mirror) > 0.04
    assert detail(rough) < 0.02
    assert detail(mirror) > 5 * detail(rough)


def test_blender_executable_command_line(tmp_path: Path):
    """``--blender``: the backend gets Blender's command line (script after --python, job after --)."""
    wrapper = tmp_path / "blender"
    wrapper.write_text(
        f"""#!{sys.executable}
import subprocess, sys
arguments = sys.argv[1:]
assert arguments[:4] == ["--background", "--factory-startup", "--python-exit-code", "1"], arguments
script = arguments[arguments.index("--python") + 1]
sys.exit(subprocess.call([sys.executable, script] + arguments[arguments.index("--"):]))
"""
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    box = offset_box()
    box.export(tmp_path / "box.ply")
    write_nero_materials(tmp_path / "materials", np.zeros((len(box.vertices), 2)), constant_material((0.5, 0.5, 0.5), 0.0, 0.5))
    log = io.StringIO()
    config = RelightConfig(
        output_dir=tmp_path / "out",
        mesh=tmp_path / "box.ply",
        material=tmp_path / "materials",
        blender=wrapper,
        device="gpu",
        hdr="studio",  # no datafiles next to the wrapper: names come from the bpy module
        num_frames=1,
        resolution=16,
        samples=2,
        threads=1,
    )
    relight(config, Console(file=log, width=200))
    assert read_rgba(config.output_dir / "0.png")[..., 3].max() > 0.5
    if shutil.which("nvidia-smi") is None:  # no GPU here: the request falls back to the CPU, with a warning
        assert "no GPU visible to Blender's Cycles; rendering on the CPU" in log.getvalue()


def test_environment_rotation_turns_the_environment_counter_clockwise(tmp_path: Path):
    """Turning the environment by +90 deg and the cameras by +90 deg about z gives the same images."""
    sphere, uv = uv_sphere()
    sphere.export(tmp_path / "sphere.ply")
    write_nero_materials(tmp_path / "mirror", uv, constant_material((1.0, 1.0, 1.0), 1.0, 0.05))
    settings = dict(mesh=tmp_path / "sphere.ply", material=tmp_path / "mirror", transparent=False)
    still = _render(tmp_path, "still", **settings)  # azimuths -90, +90
    turned = _render(tmp_path, "turned", hdr_rotation_deg=90.0, azimuth_center_deg=90.0, **settings)  # 0, 180
    still_images = [read_rgba(still.output_dir / f"{k}.png") for k in ("0", "1")]
    turned_images = [read_rgba(turned.output_dir / f"{k}.png") for k in ("0", "1")]
    for still_image, turned_image in zip(still_images, turned_images):
        assert np.abs(still_image - turned_image).mean() < 0.02
    assert np.abs(still_images[0] - still_images[1]).mean() > 0.05


def test_backend_failure_is_one_clear_error(tmp_path: Path):
    box = offset_box()
    box.export(tmp_path / "box.ply")
    write_nero_materials(tmp_path / "materials", np.zeros((len(box.vertices), 2)), constant_material((0.5, 0.5, 0.5), 0.0, 0.5))
    config = RelightConfig(mesh=tmp_path / "box.ply", material=tmp_path / "materials", output_dir=tmp_path / "out")
    job_path, num_frames = prepare_job(config)
    (tmp_path / "out" / "relight_mesh.npz").unlink()  # the backend can no longer read the mesh
    with pytest.raises(RelightRenderError, match=r"Blender relight failed: .*relight_mesh\.npz"):
        run_backend(backend_command(job_path), num_frames, console=Console(file=io.StringIO()))


def test_frames_of_other_settings_are_rendered_again_and_said_so(tmp_path: Path):
    """Re-running into a folder under another environment must not keep the old environment's frames."""
    box = offset_box()
    box.export(tmp_path / "box.ply")
    write_nero_materials(tmp_path / "materials", np.zeros((len(box.vertices), 2)), constant_material((0.9,) * 3, 1.0, 0.05))
    first = _render(tmp_path, "out", mesh=tmp_path / "box.ply", material=tmp_path / "materials", hdr="courtyard")
    frame = first.output_dir / "0.png"
    before = read_rgba(frame)
    buffer = io.StringIO()
    config = RelightConfig(**{**vars(first), "hdr": "night", "threads": 2})
    result = relight(config, console=Console(file=buffer, width=300))
    assert len(result.seconds_per_frame) == config.num_frames  # every frame rendered again
    said = " ".join(buffer.getvalue().split())
    assert f"{first.output_dir}: 2 frame(s) no longer match this job (environment (--hdr) changed)" in said
    assert np.abs(read_rgba(frame)[..., :3] - before[..., :3]).mean() > 0.02  # a mirror shows its environment
    again = relight(config, console=Console(file=io.StringIO()))  # same settings (threads aside): resumed
    assert again.seconds_per_frame == []
    # Fewer frames asked for: the extra one goes (nero-eval relight would score it), the other is kept.
    relight(RelightConfig(**{**vars(config), "num_frames": 1}), console=Console(file=io.StringIO()))
    assert (first.output_dir / "0.png").exists() and not (first.output_dir / "1.png").exists()

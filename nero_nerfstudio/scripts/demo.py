"""``nero-demo``: the whole NeRO pipeline on a glossy scene that the project renders itself.

Every stage runs the same command a user would type (printed before it runs), so the demo doubles as a
walk-through: render a scene with Blender -> parse it -> Stage I (``ns-train nero-shape-small``) -> mesh export ->
shape evaluation against the ground truth -> Stage II (``ns-train nero-material-small``) -> material export ->
relit turntable in Blender. Stages whose outputs already exist are skipped, so an interrupted demo resumes.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Literal, Optional, Tuple

import tyro
from rich.console import Console

CONSOLE = Console()

Stage = Literal["render", "parse", "shape", "mesh", "eval-shape", "material", "materials", "relight"]
ALL_STAGES: Tuple[Stage, ...] = ("render", "parse", "shape", "mesh", "eval-shape", "material", "materials", "relight")


@dataclass
class DemoConfig:
    """Run NeRO end to end on a rendered glossy bunny (CPU presets)."""

    output_dir: Path = Path("demo_data")
    """Everything goes here: the scene, the runs, the mesh, the materials and the relit frames."""
    stages: Tuple[Stage, ...] = ALL_STAGES
    """Which stages to run, in pipeline order."""
    quick: bool = False
    """A few-minute smoke run (32 views at 64x64, short training) instead of the ~40-minute demo."""
    num_views: Optional[int] = None
    """Views to render (default: 64, or 32 with --quick)."""
    resolution: Optional[int] = None
    """Image size (default: 128, or 64 with --quick)."""
    shape_steps: Optional[int] = None
    """Stage I steps (default: the nero-shape-small preset's own count, or 300 with --quick)."""
    material_steps: Optional[int] = None
    """Stage II steps (default: the nero-material-small preset's own count, or 200 with --quick)."""
    mesh_resolution: int = 256
    """Marching-cubes grid for the mesh export."""
    environment: str = "courtyard"
    """HDRI the scene is rendered under (bundled with bpy)."""
    relight_environment: str = "sunset"
    """HDRI for the relit turntable."""

    def main(self) -> None:
        """Run the selected stages."""
        unknown = [stage for stage in self.stages if stage not in ALL_STAGES]
        if unknown:
            raise SystemExit(f"nero-demo: unknown stage(s) {unknown}; choose from {list(ALL_STAGES)}")
        start = time.perf_counter()
        for stage in ALL_STAGES:
            if stage in self.stages:
                CONSOLE.rule(f"[bold]{stage}")
                getattr(self, "_" + stage.replace("-", "_"))()
        CONSOLE.print(f"[bold green]Demo finished in {time.perf_counter() - start:.0f} s; results in {self.output_dir}")

    # Paths -----------------------------------------------------------------------------------------------------
    @property
    def scene_dir(self) -> Path:
        return self.output_dir / "scene"

    def _run_config(self, method: str) -> Path:
        return self.output_dir / "outputs" / "demo" / method / "run" / "config.yml"

    @property
    def mesh_path(self) -> Path:
        return self.output_dir / "mesh.ply"

    @property
    def materials_dir(self) -> Path:
        return self.output_dir / "materials"

    # Stages ----------------------------------------------------------------------------------------------------
    def _render(self) -> None:
        if (self.scene_dir / "gt" / "scene.json").exists():
            CONSOLE.print(f"{self.scene_dir} exists; skipping")
            return
        num_views = self.num_views or (32 if self.quick else 64)
        resolution = self.resolution or (64 if self.quick else 128)
        _run(
            ["nero-render-scene", "--output-dir", str(self.scene_dir), "--layout", "synthetic", "--mesh", "bunny"]
            + ["--environment", self.environment, "--num-views", str(num_views), "--resolution", str(resolution)]
            + ["--metallic", "1.0", "--roughness", "0.2", "--albedo", "0.8", "0.8", "0.8"]
        )

    def _parse(self) -> None:
        from nero_nerfstudio.data.dataparsers.nero_synthetic_dataparser import NeroSyntheticDataParserConfig

        for split in ("train", "val"):
            outputs = NeroSyntheticDataParserConfig(data=self.scene_dir).setup().get_dataparser_outputs(split)
            cameras = outputs.cameras
            CONSOLE.print(
                f"nero-synthetic {split}: {len(cameras)} cameras, {int(cameras.width[0])}x{int(cameras.height[0])} px, "
                f"ids {outputs.metadata['image_ids'][:4]}{' ...' if len(cameras) > 4 else ''}, "
                f"up axis {outputs.metadata['up_axis']}"
            )

    def _shape(self) -> None:
        config = self._run_config("nero-shape-small")
        if _has_checkpoint(config):
            CONSOLE.print(f"{config.parent} has a checkpoint; skipping (delete it to retrain)")
            return
        steps = self.shape_steps or (300 if self.quick else None)
        _run(
            ["ns-train", "nero-shape-small"]
            + self._train_options(steps)
            + ["nero-synthetic", "--data", str(self.scene_dir)]
        )

    def _mesh(self) -> None:
        _run(
            ["nero-export", "mesh", "--load-config", str(self._run_config("nero-shape-small"))]
            + ["--resolution", str(self.mesh_resolution), "--output-path", str(self.mesh_path)]
        )

    def _eval_shape(self) -> None:
        report = self.output_dir / "shape_eval.json"
        _run(
            ["nero-eval", "shape", "--mesh", str(self.mesh_path), "--data", str(self.scene_dir)]
            + ["--gt-mesh", str(self.scene_dir / "gt" / "mesh.ply"), "--views", "all", "--output", str(report)]
        )

    def _material(self) -> None:
        config = self._run_config("nero-material-small")
        if _has_checkpoint(config):
            CONSOLE.print(f"{config.parent} has a checkpoint; skipping (delete it to retrain)")
            return
        steps = self.material_steps or (200 if self.quick else None)
        _run(
            ["ns-train", "nero-material-small", "--pipeline.model.mesh-path", str(self.mesh_path)]
            + self._train_options(steps)
            + ["nero-synthetic", "--data", str(self.scene_dir)]
        )

    def _materials(self) -> None:
        _run(
            ["nero-export", "materials", "--load-config", str(self._run_config("nero-material-small"))]
            + ["--output-dir", str(self.materials_dir), "--texture-size", "512"]
        )

    def _relight(self) -> None:
        relit = self.output_dir / "relit"
        frames, resolution, samples = (2, 64, 16) if self.quick else (8, 128, 32)
        _run(
            ["nero-relight", "--mesh", str(self.materials_dir / "mesh.ply"), "--material", str(self.materials_dir)]
            + ["--hdr", self.relight_environment, "--output-dir", str(relit)]
            + ["--run-config", str(self._run_config("nero-material-small"))]
            + ["--resolution", str(resolution), "--num-frames", str(frames), "--samples", str(samples)]
            + ["--video", str(relit / "turntable.gif")]
        )

    def _train_options(self, steps: Optional[int]) -> List[str]:
        options = ["--machine.device-type", "cpu", "--vis", "tensorboard", "--viewer.quit-on-train-completion", "True"]
        options += ["--output-dir", str(self.output_dir / "outputs"), "--experiment-name", "demo", "--timestamp", "run"]
        if steps is not None:
            options += ["--max-num-iterations", str(steps)]
        return options


def _has_checkpoint(config_path: Path) -> bool:
    return any((config_path.parent / "nerfstudio_models").glob("step-*.ckpt"))


def _run(command: List[str]) -> None:
    """Run one of the plugin's (or nerfstudio's) console scripts from this environment, echoing it first."""
    executable = Path(sys.executable).parent / command[0]
    CONSOLE.print(f"[bold cyan]$ {shlex.join(command)}", soft_wrap=True)
    completed = subprocess.run([str(executable)] + command[1:], check=False)
    if completed.returncode != 0:
        raise SystemExit(f"nero-demo: `{command[0]}` failed with exit code {completed.returncode}; see its output above")


def entrypoint() -> None:
    """Console-script entry point."""
    tyro.extras.set_accent_color("bright_yellow")
    tyro.cli(DemoConfig).main()


if __name__ == "__main__":
    entrypoint()

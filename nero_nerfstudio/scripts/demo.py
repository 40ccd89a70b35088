"""``nero-demo``: the whole NeRO pipeline on a glossy scene that the project renders itself.

Every stage runs the same command a user would type (printed before it runs), so the demo doubles as a
walk-through: render a scene with Blender -> parse it -> Stage I (``ns-train nero-shape-fast``) -> mesh export ->
shape evaluation against the ground truth -> Stage II (``ns-train nero-material-small``) -> material export ->
relit turntable in Blender. The stages and their commands are the table in ``scripts/stages.py``; the render and the
training runs are skipped when their outputs exist, so an interrupted demo resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Tuple

import tyro
from rich.console import Console

from nero_nerfstudio.scripts.stages import PipelineSettings, StageFailedError, pipeline_stages, run_stage

CONSOLE = Console()

StageName = Literal["render", "parse", "shape", "mesh", "eval-shape", "material", "materials", "relight"]
ALL_STAGES: Tuple[StageName, ...] = (
    "render", "parse", "shape", "mesh", "eval-shape", "material", "materials", "relight"
)  # fmt: skip


@dataclass
class DemoConfig:
    """Run NeRO end to end on a rendered glossy bunny (CPU presets)."""

    output_dir: Path = Path("demo_data")
    """Everything goes here: the scene, the runs, the mesh, the materials and the relit frames."""
    stages: Tuple[StageName, ...] = ALL_STAGES
    """Which stages to run, in pipeline order."""
    quick: bool = False
    """A few-minute smoke run (32 views at 64x64, short training) instead of the ~12-minute demo."""
    num_views: Optional[int] = None
    """Views to render (default: 64, or 32 with --quick)."""
    resolution: Optional[int] = None
    """Image size (default: 128, or 64 with --quick)."""
    shape_steps: Optional[int] = None
    """Stage I steps (default: the nero-shape-fast preset's own count, or 500 with --quick)."""
    material_steps: Optional[int] = None
    """Stage II steps (default: 1500, half the nero-material-small preset's count, or 200 with --quick; passed as
    ``--max-num-iterations``, so the schedule stays the preset's)."""
    mesh_resolution: int = 256
    """Marching-cubes grid for the mesh export."""
    environment: str = "courtyard"
    """HDRI the scene is rendered under (bundled with bpy)."""
    relight_environment: str = "sunset"
    """HDRI for the relit turntable."""

    def settings(self) -> PipelineSettings:
        """The pipeline's settings, the --quick defaults filled in."""
        frames, relight_resolution, samples = (8, 64, 16) if self.quick else (24, 128, 32)
        return PipelineSettings(
            output_dir=self.output_dir,
            num_views=self.num_views or (32 if self.quick else 64),
            resolution=self.resolution or (64 if self.quick else 128),
            shape_steps=self.shape_steps or (500 if self.quick else None),
            material_steps=self.material_steps or (200 if self.quick else 1500),
            mesh_resolution=self.mesh_resolution,
            environment=self.environment,
            relight_environment=self.relight_environment,
            relight_frames=frames,
            relight_resolution=relight_resolution,
            relight_samples=samples,
        )

    def main(self) -> None:
        """Run the selected stages."""
        unknown = [stage for stage in self.stages if stage not in ALL_STAGES]
        if unknown:
            raise SystemExit(f"nero-demo: unknown stage(s) {unknown}; choose from {list(ALL_STAGES)}")
        start = time.perf_counter()
        for stage in pipeline_stages(self.settings()):
            if stage.name in self.stages:
                CONSOLE.rule(f"[bold]{stage.name}")
                try:
                    run_stage(stage, CONSOLE)
                except StageFailedError as error:
                    raise SystemExit(f"nero-demo: {error}") from None
        CONSOLE.print(f"[bold green]Demo finished in {time.perf_counter() - start:.0f} s; results in {self.output_dir}")


def entrypoint() -> None:
    """Console-script entry point."""
    tyro.extras.set_accent_color("bright_yellow")
    tyro.cli(DemoConfig).main()


if __name__ == "__main__":
    entrypoint()

"""nero-export: export a trained NeRO run.

``nero-export mesh --load-config RUN/config.yml`` extracts the Stage I surface (the SDF's zero level set) with
marching cubes. Each export is a dataclass with ``main()``; add one to ``EXPORTERS`` for a new subcommand.
nerfstudio's own ``ns-export`` subcommands form a closed set, hence this separate command.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Literal, Optional

import numpy as np
import tyro
from rich.console import Console

from nero_nerfstudio.core.errors import NeroDataError, NeroInputError
from nero_nerfstudio.core.frames import dataset_plane_to_normalised
from nero_nerfstudio.data.object_frame import FRAME_FILE_NAME, ObjectFrame
from nero_nerfstudio.export.materials import ExportMaterials
from nero_nerfstudio.export.mesh import (
    DEFAULT_CHUNK_SIZE,
    MESH_SUFFIXES,
    NoSurfaceError,
    cut_at_table,
    extract_mesh,
    load_dataparser_transform,
    save_mesh,
    transform_to_dataset_frame,
)
from nero_nerfstudio.utils.run_loading import find_checkpoint_dir, load_pipeline

CONSOLE = Console()
ERROR_CONSOLE = Console(stderr=True)
DATAPARSER_TRANSFORMS_FILE = "dataparser_transforms.json"


def _format_point(point: np.ndarray) -> str:
    return "(" + ", ".join(f"{value:.3f}" for value in point) + ")"


@dataclass
class ExportMesh:
    """Extract the Stage I surface (zero level set of the SDF) with marching cubes on a grid over [-1, 1]³."""

    load_config: Path
    """The run's config.yml (the latest checkpoint next to it is used)."""
    output_path: Optional[Path] = None
    """Mesh file (.ply, .obj or .glb), written atomically. Default: RUN/mesh_<frame>.ply."""
    resolution: int = 512
    """Grid samples per axis."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """SDF queries per network call (lower it if memory runs out)."""
    frame: Literal["dataset", "normalized"] = "dataset"
    """'dataset': coordinates of the input data (the parser's normalisation undone), for GT comparison, relighting
    and nero-material's --pipeline.model.mesh-path. 'normalized': the model's frame, inside the unit sphere."""
    keep_table: bool = False
    """Keep the table the object stands on. By default a run whose nero_frame.json holds a table plane (photos of
    an object on a table) is cut just above it, so Stage II and the materials see the object alone."""
    table_offset: float = 0.02
    """How far above the estimated table plane to cut, in the normalised frame's units (the unit sphere's radius)."""

    def main(self) -> None:
        """Load the run, extract, transform, save and print a one-line summary."""
        if self.resolution < 3 or self.chunk_size < 1:
            raise SystemExit(
                f"nero-export mesh: --resolution must be >= 3 and --chunk-size >= 1 "
                f"(got {self.resolution} and {self.chunk_size})"
            )
        run_dir = self.load_config.parent
        output_path = self.output_path if self.output_path is not None else run_dir / f"mesh_{self.frame}.ply"
        # Input checks that need no network come first: a typo should not cost a whole extraction.
        if output_path.suffix.lower() not in MESH_SUFFIXES:
            raise NeroDataError(output_path, f"unsupported mesh format; use one of {', '.join(MESH_SUFFIXES)}")
        if not self.table_offset >= 0:
            raise NeroDataError(self.load_config, f"--table-offset must be >= 0, got {self.table_offset}")
        find_checkpoint_dir(self.load_config)
        frame_path = run_dir / FRAME_FILE_NAME
        table_plane = None
        if frame_path.is_file() and not self.keep_table:
            table_plane = ObjectFrame.read(frame_path).table_plane
        if self.frame == "dataset" or table_plane is not None:
            transform, scale = load_dataparser_transform(run_dir / DATAPARSER_TRANSFORMS_FILE)
        pipeline, _, step = load_pipeline(self.load_config)
        field = getattr(pipeline.model, "field", None)
        if not callable(getattr(field, "get_sdf", None)):
            raise NeroDataError(
                self.load_config,
                f"model {type(pipeline.model).__name__} has no SDF field (model.field.get_sdf); "
                "mesh export needs a nero-shape run",
            )
        try:
            mesh = extract_mesh(
                field.get_sdf, resolution=self.resolution, chunk_size=self.chunk_size, device=pipeline.device
            )
        except NoSurfaceError as error:
            raise NeroDataError(self.load_config, f"step {step}: {error}") from error
        table_note = ""
        if table_plane is not None:
            # Through the run's own transform: the frame file may have been edited since training.
            mesh = cut_at_table(mesh, dataset_plane_to_normalised(table_plane, transform, scale), self.table_offset)
            table_note = f", cut at the table of {frame_path.name} (--keep-table keeps it)"
            if len(mesh.faces) == 0:
                raise NeroDataError(
                    frame_path, "nothing of the mesh is above the table plane; fix the plane or use --keep-table"
                )
        if self.frame == "dataset":
            mesh = transform_to_dataset_frame(mesh, transform, scale)
        save_mesh(mesh, output_path)
        CONSOLE.print(
            f"Saved {output_path}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, "
            f"bounds {_format_point(mesh.bounds[0])} to {_format_point(mesh.bounds[1])} "
            f"({self.frame} frame, step {step}, {self.resolution}³ grid{table_note})",
            soft_wrap=True,
        )


EXPORTERS: Dict[str, type] = {"mesh": ExportMesh, "materials": ExportMaterials}
"""Subcommand name -> exporter dataclass."""


def entrypoint() -> None:
    """Console-script entry point: parse the subcommand, run it, and turn bad input into a one-line error."""
    exporter = tyro.extras.subcommand_cli_from_dict(
        EXPORTERS, description="Export a trained NeRO run (mesh: the Stage I surface by marching cubes; materials: Stage II materials)."
    )
    try:
        exporter.main()
    except NeroInputError as error:
        ERROR_CONSOLE.print(f"[bold red]nero-export: {error}", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    entrypoint()

"""Find Blender (the ``bpy`` module or a ``blender`` executable) and run the relight backend in a child process.

The backend always runs in its own process, so a Blender crash (or a segfault in a driver) ends the child and is
reported here as :class:`RelightRenderError`, never taking the caller down.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nero_nerfstudio.core.errors import NeroDataError

BACKEND_SCRIPT = Path(__file__).resolve().parents[2] / "blender_backend" / "relight_backend.py"
PROGRESS_PREFIX = "@@nero-relight"
"""Must match ``PROGRESS_PREFIX`` in blender_backend/relight_backend.py (which cannot import this package)."""
LOG_TAIL_LINES = 40


class BlenderNotFoundError(RuntimeError):
    """Neither the bpy module nor a Blender executable is available."""


class RelightRenderError(RuntimeError):
    """The Blender child process failed; the message holds its error line or the end of its log."""


@dataclass(frozen=True)
class FrameReport:
    """One ``frame`` line of the backend: frame ``done`` of ``total`` written to ``path``."""

    done: int
    total: int
    seconds: Optional[float]
    """Render time; None for a frame skipped because its PNG already existed."""
    path: Path


def parse_frame_line(line: str) -> FrameReport:
    """Parse ``@@nero-relight frame DONE TOTAL SECONDS PATH`` (SECONDS ``-1`` = skipped)."""
    _, _, done, total, seconds, path = line.rstrip("\n").split(" ", 5)
    seconds_value = float(seconds)
    return FrameReport(int(done), int(total), None if seconds_value < 0 else seconds_value, Path(path))


def backend_command(job_path: Path, blender: Optional[Path] = None) -> List[str]:
    """The command line running the backend: a Blender executable when given, else this Python with ``bpy``.

    Raises:
        BlenderNotFoundError: no ``blender`` given and ``bpy`` is not installed in this Python.
        NeroDataError: ``blender`` is given but is not an executable file.
    """
    if not BACKEND_SCRIPT.is_file():
        raise BlenderNotFoundError(f"{BACKEND_SCRIPT}: relight backend script is missing from the installation")
    if blender is not None:
        executable = shutil.which(str(blender))
        if executable is None:
            raise NeroDataError(blender, "Blender executable not found or not executable")
        return [
            executable,
            "--background",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python",
            str(BACKEND_SCRIPT),
            "--",
            "--job",
            str(job_path),
        ]
    if importlib.util.find_spec("bpy") is None:
        raise BlenderNotFoundError("no Blender found: pip install bpy or pass --blender")
    return [sys.executable, str(BACKEND_SCRIPT), "--", "--job", str(job_path)]


def run_backend(
    command: List[str],
    num_frames: int,
    description: str = "Relighting",
    console: Optional[Console] = None,
    on_frame: Optional[Callable[[FrameReport], None]] = None,
    verbose: bool = False,
) -> List[FrameReport]:
    """Run the backend, drive a rich progress bar from its ``frame`` lines, and return them.

    Raises:
        RelightRenderError: the child exited non-zero or reported an ``error`` line.
    """
    console = console or Console()
    log_tail: collections.deque = collections.deque(maxlen=LOG_TAIL_LINES)
    frames: List[FrameReport] = []
    error_line: Optional[str] = None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=num_frames)
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                if not line.startswith(PROGRESS_PREFIX):
                    log_tail.append(line.rstrip())
                    if verbose:
                        progress.console.print(line.rstrip(), markup=False, highlight=False)
                    continue
                kind = line.split(" ", 2)[1]
                text = line.rstrip("\n").split(" ", 2)[2] if line.count(" ") >= 2 else ""
                if kind == "frame":
                    report = parse_frame_line(line)
                    frames.append(report)
                    progress.update(task, completed=report.done)
                    if on_frame is not None:
                        on_frame(report)
                elif kind == "warning":
                    progress.console.print(f"[yellow]Blender: {text}")
                elif kind == "error":
                    error_line = text
            return_code = child.wait()
    if error_line is not None:
        raise RelightRenderError(f"Blender relight failed: {error_line}")
    if return_code != 0:
        log = "\n".join(log_tail)
        raise RelightRenderError(f"Blender relight process failed with exit code {return_code}; end of its log:\n{log}")
    return frames

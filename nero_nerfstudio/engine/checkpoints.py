"""Finding and reading the ``step-XXXXXXXXX.ckpt`` checkpoints nerfstudio's trainer writes.

Damaged files (a crash mid-write from a tool that does not write atomically, a partial copy) are reported with a
clear message naming the file instead of a traceback from inside torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.checkpoint import allow_numpy_in_checkpoints

CHECKPOINT_NAME = re.compile(r"step-(\d+)\.ckpt")
CHECKPOINT_KEYS = ("step", "pipeline", "optimizers", "scalers")


def checkpoint_file_name(step: int) -> str:
    """nerfstudio's name for the checkpoint of ``step``: ``step-000001234.ckpt``."""
    return f"step-{step:09d}.ckpt"


def list_checkpoints(folder: Path) -> List[Tuple[int, Path]]:
    """``(step, path)`` of every ``step-*.ckpt`` in ``folder``, oldest first; temporary and other files are ignored."""
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_NAME.fullmatch(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_checkpoint(path: Path) -> Dict[str, Any]:
    """The content of a nerfstudio checkpoint (weights-only ``torch.load`` on CPU, numpy scalars allowed).

    Raises:
        NeroDataError: the file is missing, truncated, not a torch file, or not a nerfstudio checkpoint.
    """
    if not path.is_file():
        raise NeroDataError(path, "checkpoint not found")
    if path.stat().st_size == 0:
        raise NeroDataError(path, "empty checkpoint file (the run that wrote it probably crashed)")
    try:
        with allow_numpy_in_checkpoints():
            state = torch.load(path, map_location="cpu")
    # torch.load fails on a damaged file with anything from KeyError to RuntimeError, depending on where it breaks.
    except Exception as error:  # pylint: disable=broad-except
        reason = str(error).strip().split("\n")[0].split(". ")[0][:120]
        raise NeroDataError(
            path, f"unreadable checkpoint ({type(error).__name__}: {reason}); it is truncated or not a torch file"
        ) from error
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise NeroDataError(path, f"not a nerfstudio checkpoint (no {', '.join(missing)})")
    return state


def read_latest_checkpoint(folder: Path) -> Tuple[Path, Dict[str, Any]]:
    """The newest readable checkpoint of ``folder`` and its content.

    A newer checkpoint that cannot be read is skipped, with a warning naming it, in favour of the one before it.

    Raises:
        NeroDataError: the folder is missing, holds no checkpoint, or none of its checkpoints is readable.
    """
    if not folder.is_dir():
        raise NeroDataError(folder, "checkpoint folder not found (pass a run's nerfstudio_models folder)")
    checkpoints = list_checkpoints(folder)
    if not checkpoints:
        hint = " (pass the run's nerfstudio_models folder)" if (folder / "nerfstudio_models").is_dir() else ""
        raise NeroDataError(folder, f"no step-*.ckpt checkpoint in this folder{hint}")
    newest_error = None
    for _, path in reversed(checkpoints):
        try:
            return path, read_checkpoint(path)
        except NeroDataError as error:
            CONSOLE.print(f"[bold yellow]Skipping a damaged checkpoint: {error}")
            newest_error = newest_error or error
    assert newest_error is not None
    raise NeroDataError(newest_error.path, f"{newest_error.problem}; no older readable checkpoint in {folder}")

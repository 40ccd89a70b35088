"""Finding and reading the ``step-XXXXXXXXX.ckpt`` checkpoints nerfstudio's trainer writes.

Damaged files (a crash mid-write from a tool that does not write atomically, a partial copy) are reported with a
clear message naming the file instead of a traceback from inside torch; the newest readable checkpoint is the one
training resumes from and the export and evaluation commands load.

torch >= 2.6 loads with ``weights_only=True`` by default, and nerfstudio checkpoints hold numpy scalars (optimizer
``lr`` and scheduler ``_last_lr`` from its exponential and cosine schedulers), which the weights-only unpickler
refuses. Instead of turning the safe loader off, exactly the numpy types such checkpoints contain are allowed.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.core.errors import NeroDataError

_NUMPY_SCALAR_TYPES = (np.bool_, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64)


def numpy_checkpoint_globals() -> List[object]:
    """The numpy callables a checkpoint needs to rebuild numpy scalars and small arrays."""
    multiarray = np.core.multiarray  # numpy 1.x location (numpy 2 keeps an alias)
    return [
        multiarray.scalar,
        multiarray._reconstruct,  # pylint: disable=protected-access
        np.ndarray,
        np.dtype,
        *(type(np.dtype(scalar_type)) for scalar_type in _NUMPY_SCALAR_TYPES),
    ]


@contextlib.contextmanager
def allow_numpy_in_checkpoints() -> Iterator[None]:
    """Within the block, ``torch.load(weights_only=True)`` accepts the numpy scalars nerfstudio checkpoints hold."""
    with torch.serialization.safe_globals(numpy_checkpoint_globals()):
        yield


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
        raise NeroDataError(path, _unreadable(error)) from error
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise NeroDataError(path, f"not a nerfstudio checkpoint (no {', '.join(missing)})")
    return state


def _unreadable(error: Exception) -> str:
    reason = str(error).strip().split("\n")[0].split(". ")[0][:120]
    return f"unreadable checkpoint ({type(error).__name__}: {reason}); it is truncated or not a torch file"


def nerfstudio_loader_error(error: BaseException, trace: Optional[TracebackType]) -> Optional[NeroDataError]:
    """The one-line error for a checkpoint nerfstudio's own loader could not read (``eval_load_checkpoint``, behind
    ``ns-viewer``, ``ns-render`` and ``ns-eval``): torch's error names no file, the loader's frame holds it. None for
    any other error, and for interrupts and failures whose own message says more (memory, the file system, torch's
    weights-only refusal)."""
    if not isinstance(error, Exception) or isinstance(error, (OSError, MemoryError)):
        return None
    if "Weights only load failed" in str(error):
        return None
    while trace is not None and trace.tb_next is not None:
        frame, inner = trace.tb_frame, trace.tb_next.tb_frame
        if (
            frame.f_globals.get("__name__") == "nerfstudio.utils.eval_utils"
            and frame.f_code.co_name == "eval_load_checkpoint"
            and inner.f_globals.get("__name__") == "torch.serialization"
            and "load_path" in frame.f_locals
        ):
            path = Path(frame.f_locals["load_path"])
            match = CHECKPOINT_NAME.fullmatch(path.name)
            older = [other for step, other in list_checkpoints(path.parent) if match and step < int(match.group(1))]
            advice = (
                f"move it out of {path.parent} to load {older[-1].name} instead"
                if older
                else "the run has no other checkpoint: restore this one or train again"
            )
            return NeroDataError(path, f"{_unreadable(error)}; {advice}")
        trace = trace.tb_next
    return None


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

"""Errors raised for bad input: data that cannot be read and settings that cannot be used.

Every message names the offending file (or folder), or the setting, first, then says what is wrong, so a user
sees one clear line instead of a traceback from deep inside numpy or torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Callable, List, Optional, Type, Union


class NeroInputError(ValueError):
    """Input that cannot be used, a file or a setting; the message names it first."""


class NeroDataError(NeroInputError):
    """Input data that cannot be used, with the file it came from."""

    def __init__(self, path: Union[str, Path], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NeroSettingsError(NeroInputError):
    """A setting whose value cannot be used: ``setting`` is the option as a user gives it where the raising code
    knows it (``--pipeline.model.mesh-path``), else the config field (``initial_roughness``)."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


TRACEBACK_VARIABLE = "NERO_TRACEBACK"
"""Environment variable: set to 1 to see the traceback of an input error too (for a bug report)."""

ExceptHook = Callable[[Type[BaseException], BaseException, Optional[TracebackType]], object]


ErrorTranslator = Callable[[BaseException, Optional[TracebackType]], Optional[NeroInputError]]
"""Turns an exception raised outside NeRO's code (and its traceback) into the data error it stands for, or None."""


def _one_line_hook(previous: ExceptHook, translators: List[ErrorTranslator]) -> ExceptHook:
    def hook(kind: Type[BaseException], error: BaseException, trace: Optional[TracebackType]) -> None:
        shown = error if isinstance(error, NeroInputError) else None
        for translate in translators:
            shown = shown or translate(error, trace)
        if shown is None or os.environ.get(TRACEBACK_VARIABLE, "0") not in ("", "0"):
            previous(kind, error, trace)
            return
        from rich.console import Console  # pylint: disable=import-outside-toplevel

        program = os.path.basename(sys.argv[0]) or "python"
        Console(stderr=True).print(f"{program}: {shown}", style="bold red", markup=False, soft_wrap=True)

    hook.nero_translators = translators  # type: ignore[attr-defined]
    return hook


def answer_input_errors_in_one_line(*translators: ErrorTranslator) -> None:
    """Let an uncaught :class:`NeroInputError` (a data or a settings error) end the process with one red line on
    stderr (exit code 1) instead of a traceback, and so any error one of ``translators`` recognises; every other
    exception keeps the hook it had.

    NeRO's code runs inside nerfstudio's own commands (``ns-train``, ``ns-viewer``, ``ns-render``, ``ns-eval``), which
    do not catch errors: this is how bad input that NeRO's code reads (a dataset, a frame file, a ``--load-dir``
    checkpoint, a Stage II mesh), or a setting it cannot use, gets the same one line as ``nero-*`` commands;
    translators cover what nerfstudio's own code reads. Called when the method configs are imported, which every
    ``ns-*`` command does first. Set ``NERO_TRACEBACK=1`` for the traceback.
    """
    installed = getattr(sys.excepthook, "nero_translators", None)
    if installed is None:
        sys.excepthook = _one_line_hook(sys.excepthook, list(translators))
    else:
        installed.extend(translator for translator in translators if translator not in installed)

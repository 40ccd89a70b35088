"""Errors raised for bad input data.

Every message names the offending file (or folder) first, then says what is wrong, so a user
sees one clear line instead of a traceback from deep inside numpy or torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union


class NeroDataError(ValueError):
    """Input data that cannot be used, with the file it came from."""

    def __init__(self, path: Union[str, Path], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

"""Checking a command's settings and reporting every problem at once, in one :class:`NeroDataError`."""

from __future__ import annotations

from pathlib import Path
from typing import List

from nero_nerfstudio.core.errors import NeroDataError


class SettingProblems:
    """What is wrong with the fields of ``config``, in the order checked; messages name the field and its value.

    Args:
        config: the settings dataclass whose fields are checked by name.
    """

    def __init__(self, config: object) -> None:
        self.config = config
        self.messages: List[str] = []

    def add(self, message: str) -> None:
        """Record a problem the named checks do not cover."""
        self.messages.append(message)

    def at_least(self, **minimums: float) -> None:
        """Each named field must be at least its minimum."""
        for name, minimum in minimums.items():
            value = getattr(self.config, name)
            if value < minimum:
                self.add(f"{name} must be >= {minimum}, got {value}")

    def positive(self, *names: str) -> None:
        """Each named field must be greater than 0."""
        for name in names:
            value = getattr(self.config, name)
            if value <= 0:
                self.add(f"{name} must be > 0, got {value}")

    def in_unit_interval(self, *names: str) -> None:
        """Each named field, a number or a tuple or list of numbers, must lie in [0, 1]."""
        for name in names:
            value = getattr(self.config, name)
            if any(not 0.0 <= item <= 1.0 for item in (value if isinstance(value, (tuple, list)) else (value,))):
                self.add(f"{name} must be in [0, 1], got {value}")

    def raise_if_any(self, path: Path) -> None:
        """Raise one :class:`NeroDataError` naming ``path`` and listing every problem, if there is any."""
        if self.messages:
            raise NeroDataError(path, "; ".join(self.messages))

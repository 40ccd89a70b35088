"""The two progress bars of the plugin's long loops (exports, evaluation, scene rendering)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def counting_progress() -> Progress:
    """A bar per task, labelled with the task's description, counting ``done/total`` with the elapsed time."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def transient_progress(label: str, console: Console) -> Progress:
    """A bar on ``console`` labelled ``label`` (a rich format string, which may read the task's fields) with its
    percentage and the time left; it disappears when done."""
    return Progress(
        TextColumn(label), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(), console=console, transient=True
    )

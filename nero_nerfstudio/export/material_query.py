"""Querying a Stage II material function at many points: batching, device moves, shape checks, progress bar.

The material function is the interface between a trained ``nero-material`` model and every material export, so
the exports can be written and tested before (and independently of) the model.
"""

from __future__ import annotations

from typing import Callable, Dict, Union

import numpy as np
import torch
from jaxtyping import Float
from rich.console import Console
from torch import Tensor

from nero_nerfstudio.utils.progress import transient_progress

CONSOLE = Console()

MaterialFn = Callable[[Float[Tensor, "num_points 3"]], Dict[str, Tensor]]
"""Maps points ``[num_points, 3]`` in the normalised frame to a dict of linear-space materials:

* ``metallic`` ``[num_points, 1]`` in [0, 1];
* ``roughness`` ``[num_points, 1]``: perceptual roughness ``sqrt(alpha)`` in [0, 1], where ``alpha`` is the GGX
  alpha the Stage II network predicts (method.md §4.2);
* ``albedo`` ``[num_points, 3]``: linear RGB in [0, 1].
"""

MATERIAL_CHANNELS: Dict[str, int] = {"metallic": 1, "roughness": 1, "albedo": 3}
"""Material name -> number of channels, in the order the exports write them."""

DEFAULT_BATCH_SIZE = 8192
"""Points per material-function call (NeRO's extraction batch)."""


class MaterialFnError(ValueError):
    """The material function returned something other than the documented dict of tensors."""


def _check_material_output(output: object, num_points: int) -> Dict[str, Tensor]:
    """Raise ``MaterialFnError`` naming the bad key and shape; return the three documented tensors."""
    if not isinstance(output, dict):
        raise MaterialFnError(f"material_fn must return a dict, got {type(output).__name__}")
    missing = [name for name in MATERIAL_CHANNELS if name not in output]
    if missing:
        raise MaterialFnError(
            f"material_fn output is missing {', '.join(missing)} (got keys {sorted(output)}; "
            f"expected {', '.join(MATERIAL_CHANNELS)})"
        )
    checked = {}
    for name, channels in MATERIAL_CHANNELS.items():
        value = output[name]
        if not isinstance(value, Tensor):
            raise MaterialFnError(f"material_fn output '{name}' must be a torch.Tensor, got {type(value).__name__}")
        if tuple(value.shape) != (num_points, channels):
            raise MaterialFnError(
                f"material_fn output '{name}' has shape {tuple(value.shape)} for {num_points} points; "
                f"expected [{num_points}, {channels}]"
            )
        if not torch.isfinite(value).all():
            raise MaterialFnError(f"material_fn output '{name}' has NaN or infinite values")
        checked[name] = value
    return checked


@torch.no_grad()
def query_materials(
    material_fn: MaterialFn,
    points: Float[np.ndarray, "num_points 3"],
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Union[str, torch.device] = "cpu",
    description: str = "Querying materials",
) -> Dict[str, Float[np.ndarray, "num_points channels"]]:
    """Evaluate ``material_fn`` at ``points`` in batches, with a progress bar.

    Args:
        material_fn: see ``MaterialFn``.
        points: ``[num_points, 3]`` positions in the normalised frame.
        batch_size: points per call.
        device: where the points are sent (the model's device).
        description: progress-bar label.

    Returns:
        float32 arrays ``metallic [num_points, 1]``, ``roughness [num_points, 1]``, ``albedo [num_points, 3]``,
        linear, clamped to [0, 1] (the documented range; a network's sigmoid can overshoot by rounding only).

    Raises:
        MaterialFnError: an output is missing, not a tensor, of the wrong shape, or not finite.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be [num_points, 3], got {points.shape}")
    num_points = points.shape[0]
    materials = {name: np.zeros((num_points, channels), np.float32) for name, channels in MATERIAL_CHANNELS.items()}
    progress = transient_progress(f"[bold]{description}", CONSOLE)
    with progress:
        task = progress.add_task("materials", total=num_points)
        for start in range(0, num_points, batch_size):
            batch = torch.from_numpy(points[start : start + batch_size]).to(device)
            output = _check_material_output(material_fn(batch), batch.shape[0])
            for name, value in output.items():
                materials[name][start : start + batch.shape[0]] = value.float().clamp(0.0, 1.0).cpu().numpy()
            progress.update(task, advance=batch.shape[0])
    return materials

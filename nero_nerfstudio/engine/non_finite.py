"""Finding the loss terms and gradients of a training batch that are NaN or infinite."""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

import torch
from torch import Tensor
from torch.nn import Parameter


def non_finite_loss_terms(loss_dict: Dict[str, Tensor]) -> List[str]:
    """Names of the loss terms with a NaN or infinite entry, in ``loss_dict`` order."""
    return [name for name, value in loss_dict.items() if not bool(torch.isfinite(value).all())]


def non_finite_gradients(named_parameters: Iterable[Tuple[str, Parameter]]) -> List[str]:
    """Names of the parameters whose gradient has a NaN or infinite entry (parameters without a gradient pass).

    One device synchronisation for all parameters; the names are only gathered when something is wrong.
    """
    with_grad = [(name, parameter.grad) for name, parameter in named_parameters if parameter.grad is not None]
    if not with_grad:
        return []
    finite = torch.stack([torch.isfinite(grad).all() for _, grad in with_grad])
    if bool(finite.all()):
        return []
    return [name for (name, _), is_finite in zip(with_grad, finite.tolist()) if not is_finite]


def describe_non_finite_batch(loss: Tensor, loss_dict: Dict[str, Tensor], bad_gradients: List[str]) -> str:
    """What is wrong with a batch, in one line: ``loss rgb_loss=nan`` or ``gradients of 2 parameters (a, b)``."""
    bad_terms = non_finite_loss_terms(loss_dict)
    if bad_terms:
        return "loss " + ", ".join(f"{name}={float(loss_dict[name].detach().float().sum()):g}" for name in bad_terms)
    if not bool(torch.isfinite(loss).all()):
        return f"total loss {float(loss.detach().float().sum()):g} (every term finite, their sum overflows)"
    shown = ", ".join(bad_gradients[:3]) + (", ..." if len(bad_gradients) > 3 else "")
    return f"gradients of {len(bad_gradients)} parameter{'s' if len(bad_gradients) != 1 else ''} ({shown})"

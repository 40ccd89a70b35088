"""NeRO's small weight-normalised predictor ("MLP4", method.md §3.2)."""

from __future__ import annotations

from typing import Literal, Optional

import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

OutputActivation = Literal["sigmoid", "exp", "none"]


class WeightNormMLP(nn.Module):
    """``Linear -> ReLU -> ... -> Linear -> activation``, every linear layer weight-normalised.

    PyTorch's default initialisation is kept (weight norm then starts as the identity reparametrisation), except
    the optional constant ``final_bias``.

    Args:
        in_dim: input size.
        out_dim: output size.
        hidden_dim: width of the hidden layers (NeRO: 256).
        num_layers: number of linear layers (NeRO: 4).
        output_activation: ``"sigmoid"``, ``"exp"`` (``exp(min(x, exp_max))``, so outputs are at most
            ``e^exp_max``) or ``"none"``.
        exp_max: cap of the exponent for ``"exp"``; 0 bounds the output to ``(0, 1]``.
        final_bias: constant to fill the last layer's bias with (e.g. ``log(0.5)`` for the lights).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 256,
        num_layers: int = 4,
        output_activation: OutputActivation = "none",
        exp_max: float = 0.0,
        final_bias: Optional[float] = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"WeightNormMLP needs at least one layer, got num_layers={num_layers}")
        if output_activation not in ("sigmoid", "exp", "none"):
            raise ValueError(f"unknown output_activation {output_activation!r}; use 'sigmoid', 'exp' or 'none'")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.output_activation = output_activation
        self.exp_max = exp_max

        widths = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        linears = [nn.Linear(width_in, width_out) for width_in, width_out in zip(widths[:-1], widths[1:])]
        if final_bias is not None:
            nn.init.constant_(linears[-1].bias, final_bias)
        self.layers = nn.ModuleList([weight_norm(linear) for linear in linears])

    def get_out_dim(self) -> int:
        return self.out_dim

    def forward(self, x: Float[Tensor, "*batch in_dim"]) -> Float[Tensor, "*batch out_dim"]:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        x = self.layers[-1](x)
        if self.output_activation == "sigmoid":
            return torch.sigmoid(x)
        if self.output_activation == "exp":
            return torch.exp(x.clamp_max(self.exp_max))
        return x

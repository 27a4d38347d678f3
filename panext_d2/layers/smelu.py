"""Smooth ReLU (SmeLU), Debucean (2022) eq. 2.6.8 (Shamir et al., "Smooth activations and
reproducibility in deep networks", 2020)."""
import torch
from torch import nn


def smelu(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """0 for x <= -beta, (x + beta)^2 / (4 beta) for |x| <= beta, x for x >= beta.

    The derivative, 0 / (x + beta) / (2 beta) / 1, is continuous at both joints, so the
    piecewise form below is differentiated exactly by autograd.
    """
    quadratic = (x + beta).clamp(min=0.0, max=2.0 * beta)
    return torch.where(x >= beta, x, quadratic * quadratic / (4.0 * beta))


class SmeLU(nn.Module):
    """SmeLU as a module.

    Args:
        beta: half-width of the quadratic zone. The thesis gives none; 2.0 is the default of
            the public SmeLU implementation it most likely installed (docs/DESIGN.md §1).
    """

    def __init__(self, beta: float = 2.0):
        super().__init__()
        if beta <= 0:
            raise ValueError(f"SmeLU needs beta > 0, got {beta}")
        self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return smelu(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"

"""The multilayer perceptron behind every learned vector field, step map and Hamiltonian."""

from __future__ import annotations

from torch import nn

from ..checks import positive_int
from ..errors import unknown_name

ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU}


class MLP(nn.Sequential):
    """``in_dim -> hidden -> ... -> out_dim`` with ``depth`` hidden layers of width ``hidden``.

    Smooth activations (``tanh``, the default, ``softplus``, ``silu``, ``elu``) keep the learned ODE
    non-stiff; ``relu`` is offered for ResNet step maps. The last layer starts at zero, so a fresh
    model is the zero field (a neural ODE then starts as the identity flow).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, depth: int = 2, activation: str = "tanh"):
        in_dim, out_dim = positive_int(in_dim, "in_dim"), positive_int(out_dim, "out_dim")
        hidden, depth = positive_int(hidden, "hidden"), positive_int(depth, "depth")
        if activation not in ACTIVATIONS:
            raise unknown_name("activation", activation, ACTIVATIONS)
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        last = nn.Linear(width, out_dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(*layers, last)

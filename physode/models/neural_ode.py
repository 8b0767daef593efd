"""The neural ODE of Chen et al. (2018): ``dx/dt = f_theta(x[, u][, t])`` with an MLP ``f_theta``."""

from __future__ import annotations

import torch

from .base import ContinuousModel
from .vector_field import MLP


class NeuralODE(ContinuousModel):
    """A learned vector field ``dx/dt = x_scale * g((x - x_mean) / x_scale, u, t)``, integrated by torchdiffeq.

    Args:
        state_dim: ``D``.
        hidden, depth, activation: the MLP ``g`` (see :class:`~physode.models.MLP`).
        time_dependent: feed ``t`` to ``g`` (non-autonomous dynamics).
        control_dim: ``C``; with ``C > 0`` ``g`` also takes the control, held constant over each interval.
        dtype: ``"float32"`` (default) or ``"float64"``.
        solver, rtol, atol, step_size, adjoint, seminorm, max_steps: see :class:`ContinuousModel`.
    """

    def __init__(self, state_dim, hidden=64, depth=2, activation="tanh", time_dependent=False, control_dim=0,
                 solver="dopri5", rtol=1e-6, atol=1e-7, step_size=None, adjoint=False, seminorm=False,
                 max_steps=10_000, dtype="float32"):
        super().__init__(state_dim, control_dim, dtype, solver=solver, rtol=rtol, atol=atol, step_size=step_size,
                         adjoint=adjoint, seminorm=seminorm, max_steps=max_steps)
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.time_dependent = bool(time_dependent)
        self.net = MLP(self.solver_dim + control_dim + self.time_dependent, self.solver_dim, hidden, depth,
                       activation).to(self.torch_dtype)

    @property
    def solver_dim(self) -> int:
        """Dimension of the integrated state (``D``; ``D + k`` for augmented models)."""
        return self.state_dim

    def _network_input(self, t, z, u):
        parts = [self._normalize_solver_state(z)]
        if u is not None:
            parts.append(u.to(z.dtype))
        if self.time_dependent:
            t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
            parts.append(t.expand(z.shape[:-1]).unsqueeze(-1) if t.ndim <= z.ndim - 1 else t)
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def _normalize_solver_state(self, z):
        return self.normalize(z)

    def _scale_output(self, dz):
        return self.x_scale * dz

    def flow(self, t, z, u):
        return self._scale_output(self.net(self._network_input(t, z, u)))

"""The augmented neural ODE of Dupont et al. (2019): solve in ``R^(D+k)`` from ``(x0, 0)``, return the first ``D``."""

from __future__ import annotations

import torch

from ..checks import positive_int
from .neural_ode import NeuralODE


class AugmentedNeuralODE(NeuralODE):
    """A :class:`NeuralODE` whose flow lives in ``D + augment_dim`` dimensions.

    The extra dimensions start at zero and are dropped from the output, so trajectories can cross in
    the data space (a plain ODE flow cannot: it preserves the order of 1-D states). ``vector_field``
    reports the field on the data space at augmented coordinates zero (i.e. at the start of a rollout).
    """

    _FOLDED_AS_DEFINED = True  #: inference_flow folds it: the extra dimensions unnormalised and unscaled

    def __init__(self, state_dim, augment_dim=2, hidden=64, depth=2, activation="tanh", time_dependent=False,
                 control_dim=0, solver="dopri5", rtol=1e-6, atol=1e-7, step_size=None, adjoint=False,
                 seminorm=False, max_steps=10_000, dtype="float32"):
        self.augment_dim = positive_int(augment_dim, "augment_dim")
        super().__init__(state_dim, hidden, depth, activation, time_dependent, control_dim, solver, rtol, atol,
                         step_size, adjoint, seminorm, max_steps, dtype)

    @property
    def solver_dim(self) -> int:
        return self.state_dim + self.augment_dim

    def initial_solver_state(self, x0):
        return torch.cat([x0, x0.new_zeros(*x0.shape[:-1], self.augment_dim)], dim=-1)

    def _normalize_solver_state(self, z):
        d = self.state_dim
        return torch.cat([self.normalize(z[..., :d]), z[..., d:]], dim=-1)

    def _scale_output(self, dz):
        d = self.state_dim
        return torch.cat([self.x_scale * dz[..., :d], dz[..., d:]], dim=-1)

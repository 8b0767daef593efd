"""A continuous-depth layer for any torch model: ``ODEBlock(f)`` maps ``x`` to ``z(t_end)`` with ``dz/dt = f(t, z)``.

The building block of Chen et al. (2018): a ResNet's stack of residual blocks ``z + f(z)`` replaced by
one ODE solve (an *ODE-Net*, trained with the adjoint: memory constant in the number of solver steps),
or by backprop through a fixed-step solver (an *RK-Net*). With ``augment_dim`` it is the augmented
block of Dupont et al. (2019): the state gains zero channels (dimension 1) before the solve, and keeps
them (a linear readout after it sees them, as in the paper).
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..checks import positive_float, positive_int, time_grid
from ..errors import PhysodeError
from ..integrate import FIXED_METHODS, check_solver, solver_failure, substep_grid, substeps


class _Counted(nn.Module):
    """The field with an evaluation counter (an ``nn.Module``, so ``odeint_adjoint`` finds its parameters)."""

    def __init__(self, func: nn.Module):
        super().__init__()
        self.func = func
        self.calls = 0

    def forward(self, t, z):
        self.calls += 1
        return self.func(t, z)


class ODEBlock(nn.Module):
    """``z(t_end)`` from ``z(0) = x`` (padded with ``augment_dim`` zero channels) under ``dz/dt = func(t, z)``.

    Args:
        func: an ``nn.Module`` called as ``func(t, z)`` that returns a tensor shaped like ``z``.
        t_end: the integration time (the block's "depth").
        solver: a torchdiffeq method, adaptive (``"dopri5"``, ...) or fixed-step (``"rk4"``, ... with ``step_size``).
        rtol, atol: tolerances of adaptive solvers.
        step_size: step of fixed-step solvers.
        adjoint: gradients by the adjoint method (memory constant in the number of steps) instead of
            backprop through the solver's operations.
        augment_dim: zero channels appended along dimension 1 before the solve (0: a plain ODE block).
        max_steps: most steps of an adaptive solve; more raises a :class:`~physode.SolverError` (a field
            that turns stiff in training would otherwise make the cost run away).

    ``nfe_forward`` and ``nfe_backward`` count the field evaluations of the last forward pass and of
    the backward passes since (the adjoint solve; 0 for direct backprop).
    """

    def __init__(self, func: nn.Module, t_end: float = 1.0, solver: str = "dopri5", rtol: float = 1e-3,
                 atol: float = 1e-3, step_size: float | None = None, adjoint: bool = True, augment_dim: int = 0,
                 max_steps: int = 10_000):
        super().__init__()
        if not isinstance(func, nn.Module):
            raise PhysodeError(f"func must be an nn.Module called as func(t, z), got {type(func).__name__}")
        check_solver(solver, step_size)
        self.field = _Counted(func)
        self.t_end = positive_float(t_end, "t_end")
        self.solver = solver
        self.rtol, self.atol = positive_float(rtol, "rtol"), positive_float(atol, "atol")
        self.step_size = None if step_size is None else positive_float(step_size, "step_size")
        self.adjoint = bool(adjoint)
        self.augment_dim = positive_int(augment_dim, "augment_dim", minimum=0)
        self.max_steps = positive_int(max_steps, "max_steps")
        self.nfe_forward = 0
        self._after_forward = 0

    @property
    def nfe_backward(self) -> int:
        """Field evaluations since the last forward pass finished (its backward pass, when one ran)."""
        return self.field.calls - self._after_forward

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with ``augment_dim`` zero channels appended along dimension 1."""
        if not self.augment_dim:
            return x
        if x.ndim < 2:
            raise PhysodeError(f"augment_dim needs inputs (N, C, ...), got shape {tuple(x.shape)}")
        return torch.cat([x, x.new_zeros(x.shape[0], self.augment_dim, *x.shape[2:])], dim=1)

    def trajectory(self, x: torch.Tensor, t) -> torch.Tensor:
        """States ``(T, N, ...)`` at the increasing times ``t: (T,)`` (from 0) of the solve that starts at ``x``."""
        t = time_grid(t, "t").to(x.device, x.dtype)
        if t.ndim != 1:
            raise PhysodeError(f"t must be one increasing time grid (T,), got shape {tuple(t.shape)}")
        if self.solver in FIXED_METHODS:
            # every output interval in equal substeps, so each output is a step, not an interpolation between two;
            # memory flat in the number of steps
            options = {"grid_constructor": substep_grid(substeps(t[None], self.step_size))}
        else:
            options = {"max_num_steps": self.max_steps}
        solve = odeint_adjoint if self.adjoint else odeint
        kwargs = {"adjoint_params": tuple(self.field.parameters())} if self.adjoint else {}
        start = self.field.calls
        try:
            z = solve(self.field, self.augment(x), t, rtol=self.rtol, atol=self.atol, method=self.solver,
                      options=options, **kwargs)
        except AssertionError as exc:
            raise solver_failure(self.solver, exc, "the field may have turned stiff or blown up: lower the learning "
                                 "rate, raise max_steps, or use a fixed-step solver") from None
        self.nfe_forward = self.field.calls - start
        self._after_forward = self.field.calls
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trajectory(x, [0.0, self.t_end])[-1]

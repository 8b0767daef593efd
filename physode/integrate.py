"""Integration of any vector field over one time grid per trajectory, in one batched torchdiffeq solve.

Used by :func:`physode.simulate` (ground truth) and by the learned continuous models alike:

* **One grid per trajectory.** Time is re-parametrised per trajectory: ``s`` in ``[k, k+1]`` maps
  linearly onto ``[t_i[k], t_i[k+1]]``, so all trajectories share the integer grid ``s = 0..T-1``
  whatever their own times, and ``dx/ds = dt_i[k] f(t_i(s), x)``. Shared grids take the same path.
* **Per-trajectory error control.** torchdiffeq's default norm averages the error over the whole
  batch, so a hard trajectory among many easy ones gets a looser tolerance than asked for. Here the
  norm is the worst trajectory's RMS error, so *every* trajectory meets ``rtol``/``atol`` on its own.
* **Exact output points and zero-order-hold controls.** Adaptive solvers step exactly onto every
  output time, both ends included (registered as ``jump_t``: the controls, held constant over each
  interval, may jump there). Stepping onto outputs also avoids dense-output interpolation, which is
  far less accurate than the steps for torchdiffeq's ``dopri8``. Fixed-step methods split each
  output interval into the same number of equal substeps.
"""

from __future__ import annotations

import math

import torch
from torchdiffeq import odeint, odeint_adjoint

from .errors import SolverError

ADAPTIVE_METHODS = ("dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_METHODS = ("rk4", "midpoint", "euler", "heun2", "heun3", "explicit_adams", "implicit_adams")


def solver_failure(method: str, exc: Exception, hint: str) -> SolverError:
    """The error for a torchdiffeq failure (it raises AssertionError on step underflow, NaN and max_num_steps)."""
    return SolverError(f"the {method} solve failed ({str(exc)[:120]}); {hint}")


def per_trajectory_norm(ratio: torch.Tensor) -> torch.Tensor:
    """Error norm for a batch ``(N, D)``: the largest per-trajectory RMS, so each trajectory meets the tolerance."""
    return ratio.pow(2).mean(-1).sqrt().max()


class UniformGrid:
    """The fixed-step grid ``t0 + (t1 - t0) k / n``, ``k = 0..n``, handed out one 0-d tensor at a time.

    torchdiffeq's fixed-grid solvers walk their grid with ``zip(grid[:-1], grid[1:])``; over a tensor
    that unbinds every point at once and holds them all for the whole solve (about 1.2 KiB per step,
    forward and again in the adjoint's backward solve: memory growing with the number of steps). This
    sequence, given to torchdiffeq through its public ``grid_constructor`` option, keeps it flat.
    It supports what torchdiffeq does with a grid: ``len``, indexing, ``[:-1]`` / ``[1:]``, iteration
    and negation (for backward-in-time solves).
    """

    def __init__(self, t0: float, t1: float, n: int, like: torch.Tensor, first: int = 0, last: int | None = None):
        self.t0, self.t1, self.n, self.like = t0, t1, n, like
        self.first, self.last = first, n if last is None else last

    def _point(self, k: int) -> torch.Tensor:
        value = self.t1 if k == self.n else self.t0 + (self.t1 - self.t0) * k / self.n
        return torch.tensor(value, dtype=self.like.dtype, device=self.like.device)

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1 or stop <= start:
                raise IndexError("a UniformGrid slices contiguously and non-empty only")
            return UniformGrid(self.t0, self.t1, self.n, self.like, self.first + start, self.first + stop - 1)
        k = index + len(self) if index < 0 else index
        if not 0 <= k < len(self):
            raise IndexError(index)
        return self._point(self.first + k)

    def __iter__(self):
        return (self._point(k) for k in range(self.first, self.last + 1))

    def __neg__(self) -> UniformGrid:
        return UniformGrid(-self.t0, -self.t1, self.n, self.like, self.first, self.last)


def fixed_grid(step_size: float):
    """A torchdiffeq ``grid_constructor``: equal steps of at most ``step_size`` over the solve's span."""

    def construct(func, y0, t):
        t0, t1 = float(t[0]), float(t[-1])
        return UniformGrid(t0, t1, max(1, math.ceil(abs(t1 - t0) / step_size - 1e-9)), t)

    return construct


def substeps(times: torch.Tensor, step_size: float) -> int:
    """Equal substeps per output interval so that no trajectory's substep exceeds ``step_size``."""
    return max(1, math.ceil(float(times.diff(dim=1).max()) / step_size - 1e-9))


class _GridField(torch.nn.Module):
    """``dx/ds`` on the shared integer grid: segment ``k`` of trajectory ``i`` is ``[t_i[k], t_i[k+1]]``."""

    def __init__(self, field, times, u, bar, module, dtype):
        super().__init__()
        self.field, self.times, self.u, self.bar = field, times.to(dtype), u, bar
        self.module = module  # registered so that odeint_adjoint finds its parameters
        self.steps = times.diff(dim=1).to(dtype)  # (N, T-1), in the state's dtype
        self.last = times.shape[1] - 2
        self.segment = None  # (k, start times (N,), steps (N, 1), controls (N, C) | None) of the last call
        self.reached = 0  # segments finished, for the progress bar

    def forward(self, s, x):
        k = min(max(int(s), 0), self.last)  # torchdiffeq nudges s off the knots, so this is the right segment
        if self.segment is None or self.segment[0] != k:
            u = None if self.u is None else self.u[:, k]
            self.segment = (k, self.times[:, k], self.steps[:, k : k + 1], u)
            if self.bar is not None and k > self.reached:
                self.bar.update(k - self.reached)
                self.reached = k
        _, start, dt, u = self.segment
        t = start + (s - k) * dt.squeeze(1)
        return self.field(t, x, u) * dt


def solve_on_grids(
    field, x0, times, u=None, *, method="dopri5", rtol=1e-7, atol=1e-9, step_size=None, max_steps=100_000,
    adjoint=False, adjoint_options=None, module=None, bar=None,
):
    """Integrate ``dx/dt = field(t, x, u)`` from ``x0: (N, D)``; return the states ``(N, T, D)`` at ``times: (N, T)``.

    One batched torchdiffeq solve for all trajectories, each on its own grid, with controls
    ``u: (N, T-1, C)`` held over each interval (or None). Inputs must already be checked (see
    :mod:`physode.checks`). ``adjoint=True`` uses ``odeint_adjoint``, which differentiates with respect
    to the parameters of ``module`` (the ``torch.nn.Module`` behind ``field``); ``adjoint_options`` go to its backward solve (e.g.
    ``{"norm": "seminorm"}``). ``bar`` is an optional tqdm bar advanced once per output interval.
    Solver failures raise :class:`~physode.SolverError`.
    """
    n_times = times.shape[1]
    grid_field = _GridField(field, times, u, bar, module, x0.dtype)
    s = torch.arange(n_times, dtype=torch.float64, device=x0.device)
    if method in ADAPTIVE_METHODS:
        # every knot, both ends included: the adjoint's backward solve must stop exactly at s = 0 too
        options = {"norm": per_trajectory_norm, "jump_t": s, "max_num_steps": max_steps}
    else:
        # every interval [k, k + 1] of s split into the same number of substeps (the adjoint's backward
        # solves run interval by interval, so the grid follows the span it is asked for)
        options = {"perturb": True, "grid_constructor": fixed_grid(1.0 / substeps(times, step_size))}
    try:
        if adjoint:
            y = odeint_adjoint(grid_field, x0, s, method=method, rtol=rtol, atol=atol, options=options,
                               adjoint_options=adjoint_options)
        else:
            y = odeint(grid_field, x0, s, method=method, rtol=rtol, atol=atol, options=options)
    except AssertionError as exc:  # torchdiffeq signals step underflow, NaN states and max_num_steps so
        raise solver_failure(method, exc, "the system may be stiff, blow up or collide: check x0 and the "
                             "parameters (n-body: softening > 0), or raise max_steps (or step_size)") from None
    if not bool(torch.isfinite(y).all()):
        raise SolverError(f"the {method} solve produced non-finite states; use a smaller step_size or tighter tolerances")
    if bar is not None:
        bar.update(n_times - 1 - grid_field.reached)
    return y.transpose(0, 1)

"""Integration of any vector field over one time grid per trajectory, in one batched torchdiffeq solve.

Used by :func:`physode.simulate` (ground truth) and by the learned continuous models alike:

* **One grid per trajectory.** Time is re-parametrised per trajectory: ``s`` in ``[k, k+1]`` maps
  linearly onto ``[t_i[k], t_i[k+1]]``, so all trajectories share the integer grid ``s = 0..T-1``
  whatever their own times, and ``dx/ds = dt_i[k] f(t_i(s), x)``. A grid that all trajectories share
  (without controls that switch between intervals) is solved in real time instead: the same solve
  without the rescaling in every evaluation, which for cheap fields is a fifth of the time.
* **Per-trajectory error control.** torchdiffeq's default norm averages the error over the whole
  batch, so a hard trajectory among many easy ones gets a looser tolerance than asked for. Here the
  norm is the worst trajectory's RMS error, so *every* trajectory meets ``rtol``/``atol`` on its own.
* **Exact output points and zero-order-hold controls.** Adaptive solvers step exactly onto every
  output time, both ends included (registered as ``jump_t`` on the integer grid: the controls, held
  constant over each interval, and the time scale may jump there; as ``step_t`` on a shared grid,
  where the field is smooth across output times and needs no fresh evaluation after them). Stepping
  onto outputs also avoids dense-output interpolation, which is far less accurate than the steps for
  torchdiffeq's ``dopri8``. Fixed-step methods split each output interval into the same number of
  equal substeps (:class:`SubstepGrid`).
"""

from __future__ import annotations

import bisect
import math

import torch
from torchdiffeq import odeint, odeint_adjoint

from .checks import all_finite
from .errors import PhysodeError, SolverError, unknown_name

ADAPTIVE_METHODS = ("dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun")
#: One-step methods only: torchdiffeq's multistep Adams methods carry their step history across output times,
#: where zero-order-hold controls and the per-trajectory time scales jump (first-order errors there), and its
#: explicit Adams at the default order 12 is unstable at ordinary steps (dy/dt = -y, h = 0.01: y(1) = 0.735).
FIXED_METHODS = ("rk4", "midpoint", "euler", "heun2", "heun3")


def check_solver(solver: str, step_size: float | None = None, *, name: str = "solver", default_step: bool = False) -> str:
    """``solver`` when it is one of the torchdiffeq methods above, else a PhysodeError naming the argument ``name``.

    A fixed-step method needs ``step_size``, unless the caller has a ``default_step`` of its own to give it (the
    data's spacing, an env's ``dt``); adaptive methods take none. The step's own value is the caller's to check.
    """
    if solver not in ADAPTIVE_METHODS + FIXED_METHODS:
        raise unknown_name(name, solver, ADAPTIVE_METHODS + FIXED_METHODS)
    if solver in FIXED_METHODS and step_size is None and not default_step:
        raise PhysodeError(f"{name} {solver!r} takes fixed steps: pass step_size (e.g. step_size=0.01)")
    return solver


def solver_failure(method: str, exc: Exception, hint: str) -> SolverError:
    """The error for a torchdiffeq failure (it raises AssertionError on step underflow, NaN and max_num_steps)."""
    return SolverError(f"the {method} solve failed ({str(exc)[:120]}); {hint}")


def per_trajectory_norm(ratio: torch.Tensor) -> torch.Tensor:
    """Error norm for a batch ``(N, D)``: the largest per-trajectory RMS, so each trajectory meets the tolerance."""
    return ratio.pow(2).mean(-1).sqrt().max()


class SubstepGrid:
    """Fixed-step grid: each interval between consecutive ``knots`` split into ``per`` equal substeps.

    Point ``k = i per + j`` is ``knots[i] + (knots[i+1] - knots[i]) j / per``, so every knot is a grid
    point exactly (outputs land on steps, no interpolation), handed out one 0-d tensor at a time.
    torchdiffeq's fixed-grid solvers walk their grid with ``zip(grid[:-1], grid[1:])``; over a tensor
    that unbinds every point at once and holds them all for the whole solve (about 1.2 KiB per step,
    forward and again in the adjoint's backward solve: memory growing with the number of steps). This
    sequence, given to torchdiffeq through its public ``grid_constructor`` option, keeps it flat.
    It supports what torchdiffeq does with a grid: ``len``, indexing, ``[:-1]`` / ``[1:]``, iteration
    and negation (for backward-in-time solves).
    """

    def __init__(self, knots, per: int, like: torch.Tensor, first: int = 0, last: int | None = None):
        self.knots, self.per, self.like = [float(k) for k in knots], per, like
        self.first, self.last = first, per * (len(self.knots) - 1) if last is None else last

    def _point(self, k: int) -> torch.Tensor:
        i, j = divmod(k, self.per)
        value = self.knots[i] if j == 0 else self.knots[i] + (self.knots[i + 1] - self.knots[i]) * j / self.per
        return torch.tensor(value, dtype=self.like.dtype, device=self.like.device)

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1 or stop <= start:
                raise IndexError("a SubstepGrid slices contiguously and non-empty only")
            return SubstepGrid(self.knots, self.per, self.like, self.first + start, self.first + stop - 1)
        k = index + len(self) if index < 0 else index
        if not 0 <= k < len(self):
            raise IndexError(index)
        return self._point(self.first + k)

    def __iter__(self):
        return (self._point(k) for k in range(self.first, self.last + 1))

    def __neg__(self) -> SubstepGrid:
        return SubstepGrid([-k for k in self.knots], self.per, self.like, self.first, self.last)


def substep_grid(per: int):
    """A torchdiffeq ``grid_constructor``: every interval between the solve's output times in ``per`` equal substeps.

    The adjoint's backward solves run interval by interval, so each gets the same substeps as the forward solve.
    """
    return lambda func, y0, t: SubstepGrid(t.tolist(), per, t)


def substeps(times: torch.Tensor, step_size: float) -> int:
    """Equal substeps per output interval so that no trajectory's substep exceeds ``step_size``.

    Up to a relative 1e-6: float32 times carry rounding errors of that order (0.05 in float32 is
    0.0500000007), which must not double the steps of an interval that ``step_size`` spans.
    """
    return max(1, math.ceil(float(times.diff(dim=1).abs().max()) / step_size * (1 - 1e-6)))


class _GridField:
    """``dx/ds`` on the shared integer grid: segment ``k`` of trajectory ``i`` is ``[t_i[k], t_i[k+1]]``.

    The grid fields are plain callables, not modules: a module's set-up costs more than a small solve's
    whole bookkeeping (15 us against 2 us here), and the adjoint gets its parameters explicitly.
    """

    def __init__(self, field, times, u, bar, dtype):
        self.field, self.times, self.u, self.bar = field, times.to(dtype), u, bar
        self.steps = times.diff(dim=1).to(dtype)  # (N, T-1), in the state's dtype
        self.last = times.shape[1] - 2
        self.segment = None  # (k, start times (N,), steps (N, 1)) of the last call
        self.reached = 0  # segments finished, for the progress bar

    def __call__(self, s, x):
        # segment k is (k, k+1]: torchdiffeq nudges evaluations at knots into the segment they belong to, except
        # an adaptive solve's first one, at the exact start: s = 0 (segment 0) forward, s = k + 1 (segment k) in
        # the adjoint's backward solve of [k, k + 1]
        k = min(max(math.ceil(float(s.detach())) - 1, 0), self.last)
        if self.segment is None or self.segment[0] != k:
            self.segment = (k, self.times[:, k], self.steps[:, k : k + 1])
            if self.bar is not None and k > self.reached:
                self.bar.update(k - self.reached)
                self.reached = k
        _, start, dt = self.segment
        t = start + (s - k) * dt.squeeze(1)
        # the controls are sliced afresh in every call, never kept: a slice made in the adjoint's forward solve
        # (under no_grad) would cut its backward solve off from u
        u = None if self.u is None else self.u[:, k]
        return self.field(t, x, u) * dt


class _SharedGridField:
    """``dx/dt`` when every trajectory has the same times: the field at the solver's own (scalar) time.

    Used without controls, or with one output interval (one control per trajectory for the whole solve),
    so no interval lookup sits in the evaluation; the progress bar, when there is one, finds its interval
    by bisection.
    """

    def __init__(self, field, knots, u, bar):
        self.field, self.knots, self.bar = field, knots, bar
        self.u = None if u is None else u[:, 0]
        self.reached = 0

    def __call__(self, t, x):
        if self.bar is not None:
            k = min(bisect.bisect_right(self.knots, float(t.detach())) - 1, len(self.knots) - 2)
            if k > self.reached:
                self.bar.update(k - self.reached)
                self.reached = k
        return self.field(t, x, self.u)


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

    When all trajectories share their times and controls need no switching (none, or one interval), the
    solve runs in real time with the field called at the solver's scalar time: the same solve, without
    the per-evaluation rescaling of the shared integer grid (``field`` must then accept a 0-d ``t``).
    """
    n_times = times.shape[1]
    shared = (u is None or n_times == 2) and bool((times == times[:1]).all())
    if shared:
        s = times[0]
        grid_field = _SharedGridField(field, s.tolist(), u, bar)
    else:
        s = torch.arange(n_times, dtype=torch.float64, device=x0.device)
        grid_field = _GridField(field, times, u, bar, x0.dtype)
    if method in ADAPTIVE_METHODS:
        # every knot, both ends included: the adjoint's backward solve must stop exactly at the start too. On
        # the integer grid the field jumps at knots (the next interval's scale and control): jump_t, which
        # re-evaluates it there; a shared grid's field is smooth across them: step_t, one evaluation fewer each
        options = {"norm": per_trajectory_norm, "step_t" if shared else "jump_t": s, "max_num_steps": max_steps}
    else:
        # every output interval split into the same number of substeps (the adjoint's backward solves run
        # interval by interval, so the grid follows the span it is asked for)
        # perturb: evaluate just inside each interval, needed only where the field may jump at knots (as above).
        # One step over one interval needs no grid of its own: torchdiffeq steps from the one time to the other
        per = substeps(times, step_size)
        grid = {} if per == 1 and n_times == 2 else {"grid_constructor": substep_grid(per)}
        options = {"perturb": not shared} | grid
    try:
        if adjoint:
            # the backward solve keeps the forward options (torchdiffeq drops them all when given any), and
            # controls that require grad get their gradients as adjoint parameters alongside the module's
            backward = {key: value for key, value in options.items() if key != "norm"} | (adjoint_options or {})
            if not shared and times.requires_grad:  # the integer grid's time scales would need their own adjoint
                raise PhysodeError("gradients with respect to the times of per-trajectory grids, or of a grid with "
                                   "controls, need direct backprop: use adjoint=False (or times that need no gradient)")
            params = (() if module is None else tuple(module.parameters())) + ((u,) if u is not None and u.requires_grad else ())
            y = odeint_adjoint(grid_field, x0, s, method=method, rtol=rtol, atol=atol, options=options,
                               adjoint_options=backward, adjoint_params=params)
        else:
            y = odeint(grid_field, x0, s, method=method, rtol=rtol, atol=atol, options=options)
    except AssertionError as exc:  # torchdiffeq signals step underflow, NaN states and max_num_steps so
        raise solver_failure(method, exc, "the system may be stiff, blow up or collide: check x0 and the "
                             "parameters (n-body: softening > 0), or raise max_steps (or step_size)") from None
    if not all_finite(y):
        raise SolverError(f"the {method} solve produced non-finite states; use a smaller step_size or tighter tolerances")
    if bar is not None:
        bar.update(n_times - 1 - grid_field.reached)
    return y.transpose(0, 1)

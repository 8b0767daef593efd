"""The largest Lyapunov exponent of a system, estimated along trajectories by Benettin's method.

The exponent ``lambda = lim_{T -> inf} (1 / T) ln(|delta(T)| / |delta(0)|)`` is the mean rate at which an
infinitesimal perturbation ``delta`` of a trajectory grows; for almost every start and perturbation it is the
largest exponent of the spectrum (Oseledets 1968). Benettin, Galgani, Giorgilli & Strelcyn ("Lyapunov
characteristic exponents for smooth dynamical systems and for Hamiltonian systems; a method for computing all of
them", Meccanica 15, 9, 1980) integrate the state together with the linearised (tangent) dynamics
``delta' = J(t, x) delta``, ``J = df/dx``, and renormalise ``delta`` to unit length every ``tau`` time units,
summing the logarithms of the growth factors: ``lambda ~ sum_k ln |delta(t_k)| / (t_end - transient)``.
The tangent dynamics are linear, so the renormalisation only keeps ``delta`` within floating-point range and
does not change the estimate. The states and the tangents of all trajectories are integrated together by
:func:`physode.simulate` (one batched solve per renormalisation interval).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .checks import positive_float, states
from .errors import PhysodeError, unknown_name
from .simulate import simulate
from .systems.base import rng

#: How the tangent ``J(x) delta`` is computed: ``"difference"``, a central difference of the field along
#: ``delta`` (one batched field evaluation of 3N states; relative error about 1e-11, far below what the estimate
#: needs), or ``"jvp"``, torch's forward-mode autodiff (exact, but its per-call overhead costs many field
#: evaluations on small systems).
TANGENTS = ("difference", "jvp")

#: Step of the central difference, relative to ``1 + |x|``: about the cube root of float64's epsilon, which
#: balances the truncation error (``h^2``) against rounding (``eps / h``).
DIFFERENCE_STEP = 6e-6


class _Tangent:
    """The state and its tangent as one system: ``z = [x, delta]``, ``z' = [f(t, x), J(t, x) delta]``, ``z: (..., 2D)``."""

    control_dim = 0

    def __init__(self, system, tangent: str):
        self.system, self.tangent, self.dim = system, tangent, system.state_dim
        self.name = f"{getattr(system, 'name', 'system')} + tangent"

    @property
    def state_dim(self) -> int:
        return 2 * self.dim

    @property
    def state_names(self) -> tuple[str, ...]:
        names = tuple(getattr(self.system, "state_names", None) or (f"x{i}" for i in range(self.dim)))
        return names + tuple(f"d{name}" for name in names)

    @property
    def stiff(self) -> bool:
        return getattr(self.system, "stiff", False)

    def vector_field(self, t, z, u=None):
        x, d = z[..., : self.dim], z[..., self.dim :]
        if self.tangent == "jvp":
            fx, jd = torch.func.jvp(lambda y: self.system.vector_field(t, y), (x,), (d,))
            return torch.cat([fx, jd], dim=-1)
        # a step h along the unit direction of delta, scaled back by |delta|: linear in delta, as the tangent is
        size = d.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(d.dtype).tiny)
        h = DIFFERENCE_STEP * (1 + x.norm(dim=-1, keepdim=True))
        step = d * (h / size)
        if isinstance(t, torch.Tensor) and t.ndim:  # one time per trajectory: the same for its three copies
            t = torch.cat([t, t, t], dim=0)
        f = self.system.vector_field(t, torch.cat([x, x + step, x - step], dim=0))
        n = x.shape[0]
        return torch.cat([f[:n], (f[n : 2 * n] - f[2 * n :]) * (size / (2 * h))], dim=-1)


def finite_time_lyapunov_exponents(
    system,
    x0,
    *,
    t_end: float = 1000.0,
    renormalize_every: float = 1.0,
    transient: float = 10.0,
    tangent: str = "difference",
    method: str = "dopri8",
    rtol: float = 1e-6,
    atol: float = 1e-6,
    step_size: float | None = None,
    seed: int = 0,
    device="cpu",
) -> torch.Tensor:
    """The largest Lyapunov exponent estimated along each trajectory from ``x0: (N, D)`` (or one ``(D,)``), ``(N,)``.

    Benettin et al. (1980), see the module doc: each state is integrated from ``t = 0`` to ``t_end`` together with a
    random unit tangent (drawn from ``seed``), renormalised every ``renormalize_every`` time units; the log growth
    over the first ``transient`` time units, while the tangent aligns with the most unstable direction (and ``x0``
    settles onto its attractor), is discarded, and the exponent is the mean log growth rate over the remaining
    ``t_end - transient``. Its statistical error shrinks like ``1 / sqrt(t_end - transient)``: average several
    trajectories (:func:`largest_lyapunov_exponent`) for a tighter estimate.

    Args:
        system: a :class:`~physode.System` (anything with ``vector_field`` and ``state_dim``); no control is applied.
        x0: start states ``(N, D)`` or ``(D,)``, at time 0.
        t_end: end of each run (time units of the system), > ``transient``.
        renormalize_every: time between renormalisations of the tangent (keeps it within float64's range: choose it
            so that growth over one interval stays far below ``e^700``).
        transient: initial time whose growth is not counted (>= 0).
        tangent: ``"difference"`` (default, a central difference along the tangent) or ``"jvp"`` (forward-mode
            autodiff); see :data:`TANGENTS`.
        method, rtol, atol, step_size: the solver of :func:`physode.simulate` for the state and tangent (a stiff
            system needs ``method="radau"``; symplectic methods do not apply). Loose tolerances suffice: the
            estimate's error is statistical, and a solver error of 1e-6 per step changes the growth rate by far
            less (on Lorenz-63, 64 runs of 50 time units at 1e-6 land within 0.6% of the published exponent).
        seed: seed of the random initial tangents.
        device: where to integrate.

    Returns:
        ``(N,)`` float64 estimates (1 / time unit), on the CPU.
    """
    if not all(hasattr(system, name) for name in ("vector_field", "state_dim")):
        raise PhysodeError(f"system must be a physode System (see physode.make_system), got {system!r}")
    if tangent not in TANGENTS:
        raise unknown_name("tangent", tangent, TANGENTS)
    x0 = states(x0, system.state_dim, "x0")
    x0 = x0.unsqueeze(0) if x0.ndim == 1 else x0
    t_end = positive_float(t_end, "t_end")
    tau = positive_float(renormalize_every, "renormalize_every")
    transient = positive_float(transient, "transient", allow_zero=True)
    if t_end <= transient:
        raise PhysodeError(f"t_end must be larger than transient ({transient}), got t_end={t_end}; the exponent is "
                           "averaged over the time between them")
    knots = _knots(transient, t_end, tau)
    gen = rng(seed)
    d = torch.from_numpy(gen.standard_normal(x0.shape))
    d = d / d.norm(dim=1, keepdim=True)
    z = torch.cat([x0, d], dim=1)
    field = _Tangent(system, tangent)
    total = torch.zeros(x0.shape[0], dtype=torch.float64)
    for start, stop in zip(knots[:-1], knots[1:], strict=True):
        times = torch.tensor([start, stop], dtype=torch.float64)
        z = simulate(field, z, times, method=method, rtol=rtol, atol=atol, step_size=step_size, device=device)[:, 1].cpu()
        x, d = z[:, : system.state_dim], z[:, system.state_dim :]
        size = d.norm(dim=1)
        if not bool(torch.isfinite(size).all() and (size > 0).all()):
            raise PhysodeError(f"the tangent over [{start:g}, {stop:g}] left float64's range; use a smaller "
                               f"renormalize_every than {tau:g}")
        if start >= transient:
            total += size.log()
        z = torch.cat([x, d / size[:, None]], dim=1)
    return total / (t_end - transient)


def largest_lyapunov_exponent(system, x0, **options) -> float:
    """The largest Lyapunov exponent (1 / time unit): the mean of :func:`finite_time_lyapunov_exponents` over
    the trajectories from ``x0: (N, D)``; the same keyword ``options`` (``t_end``, ``renormalize_every``,
    ``transient``, ``tangent``, ``method``, ``rtol``, ``atol``, ``step_size``, ``seed``, ``device``)."""
    return float(finite_time_lyapunov_exponents(system, x0, **options).mean())


def _knots(transient: float, t_end: float, tau: float) -> list[float]:
    """Renormalisation times from 0 to ``t_end``: every ``tau`` over the transient and after it, ``transient`` included."""
    before = list(np.arange(0.0, transient, tau)) if transient else [0.0]
    after = list(transient + np.arange(0.0, t_end - transient, tau))
    knots = [float(k) for k in before + after] + [t_end]
    return [k for i, k in enumerate(knots) if i == 0 or k - knots[i - 1] > 1e-12 * max(1.0, math.fabs(k))]

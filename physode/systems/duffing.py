"""The Duffing oscillator: a cubic spring (or a double well), damped and periodically driven."""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
import torch

from ..errors import PhysodeError
from .base import MechanicalSystem, check_parameter, rng, store


def _real_parameter(name: str, value) -> float:
    """A parameter that may take either sign: any finite real number (numpy's too), as a Python float."""
    try:
        ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise PhysodeError(f"parameter {name} must be a finite real number (either sign), got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class DuffingParams:
    """linear stiffness alpha (1/s^2, either sign: alpha < 0 with beta > 0 is the double well), cubic stiffness
    beta (1/(m^2 s^2), either sign), damping rate delta >= 0 (1/s), forcing amplitude gamma (m/s^2) and forcing
    angular frequency omega > 0 (rad/s), all per unit mass."""

    alpha: float = 1.0
    beta: float = 1.0
    delta: float = 0.0
    gamma: float = 0.0
    omega: float = 1.0

    def __post_init__(self):
        for name in ("alpha", "beta", "gamma"):
            store(self, name, _real_parameter(name, getattr(self, name)))
        store(self, "delta", check_parameter("delta", self.delta, allow_zero=True))
        store(self, "omega", check_parameter("omega", self.omega))


class Duffing(MechanicalSystem):
    """The forced, damped Duffing oscillator (Duffing 1918; Guckenheimer & Holmes, *Nonlinear Oscillations,
    Dynamical Systems, and Bifurcations of Vector Fields*, 1983, sec. 2.2), per unit mass.

    State ``(x, v)``:

        x'' + delta x' + alpha x + beta x^3 = gamma cos(omega t) + u

    with an optional additional force ``u`` (``control_dim = 1``). The field depends on ``t`` itself when
    ``gamma != 0`` (:attr:`time_dependent`); ``t`` is a scalar or a tensor broadcasting against the states'
    leading dimensions (one time per trajectory). Without damping (``delta = 0``) the force depends on ``x``
    and ``t`` only, so the system is :attr:`conservative` in the sense of :func:`physode.simulate`'s symplectic
    methods (they apply to the forced oscillator too). ``beta = 0`` is the driven damped linear oscillator
    (closed form in the tests); ``alpha = -1, beta = 1, delta = 0.3, gamma = 0.5, omega = 1.2`` the classic
    chaotic double-well case (Guckenheimer & Holmes, sec. 2.2).

    Energy (:meth:`energy`): the unforced energy ``v^2 / 2 + alpha x^2 / 2 + beta x^4 / 4``, conserved when
    ``delta = gamma = 0`` and ``u = 0``.

    Initial states (:meth:`sample_initial_states`): ``x ~ U(-2, 2)``, ``v ~ U(-2, 2)`` when ``beta >= 0``
    (the potential confines every state when ``beta > 0``). For a softening spring (``beta < 0 < alpha``) states
    beyond the potential's maxima at ``x = +-sqrt(-alpha / beta)`` escape to infinity in finite time, so states
    are drawn from the box ``|x| < sqrt(-alpha / beta)``, ``|v| < sqrt(2 E*)`` and kept only when their energy is
    below 90% of the barrier ``E* = alpha^2 / (-4 beta)``. With ``alpha <= 0`` and ``beta < 0`` no motion is
    bounded and sampling is refused.
    """

    name = "duffing"
    Params = DuffingParams
    position_dim = 1
    control_dim = 1
    state_names = ("x", "v")

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, delta: float = 0.0, gamma: float = 0.0,
                 omega: float = 1.0):
        super().__init__(DuffingParams(alpha, beta, delta, gamma, omega))

    @property
    def time_dependent(self) -> bool:
        return self.params.gamma != 0.0

    @property
    def conservative(self) -> bool:
        return self.params.delta == 0.0  # the base class reads a `damping` field, which this system does not have

    @property
    def finite_everywhere(self) -> bool:
        return True  # a polynomial in the state plus a bounded forcing

    def acceleration(self, t, q, v, u):
        p = self.params
        a = q * (-p.alpha) - q**3 * p.beta
        if p.delta:
            a = a - v * p.delta
        if p.gamma:
            if isinstance(t, torch.Tensor):  # one time per trajectory (..., ) or a 0-d tensor: against q's (..., 1)
                a = a + torch.cos(t.to(dtype=q.dtype, device=q.device) * p.omega).unsqueeze(-1) * p.gamma
            else:
                a = a + p.gamma * math.cos(p.omega * float(t))
        if u is not None:
            a = a + u
        return a

    def energy(self, x):
        p = self.params
        q, v = x[..., 0], x[..., 1]
        return v**2 / 2 + p.alpha * q**2 / 2 + p.beta * q**4 / 4

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        p, gen = self.params, rng(seed)
        if p.beta >= 0:
            return torch.from_numpy(gen.uniform(-2.0, 2.0, (n, 2)))
        if p.alpha <= 0:
            raise PhysodeError(f"Duffing with alpha={p.alpha} <= 0 and beta={p.beta} < 0 has no bounded motion (every "
                               "state but the origin escapes to infinity); use beta >= 0 or alpha > 0, or pass your own x0")
        edge, barrier = math.sqrt(-p.alpha / p.beta), p.alpha**2 / (-4 * p.beta)
        speed = math.sqrt(2 * barrier)
        kept = np.empty((0, 2))
        while len(kept) < n:  # more than half of the box lies below the energy limit
            cand = np.stack([gen.uniform(-edge, edge, 2 * n), gen.uniform(-speed, speed, 2 * n)], axis=1)
            ok = self.energy(torch.from_numpy(cand)).numpy() < 0.9 * barrier
            kept = np.concatenate([kept, cand[ok]])
        return torch.from_numpy(kept[:n].copy())

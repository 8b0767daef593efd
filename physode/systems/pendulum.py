"""The simple pendulum, optionally damped and driven by a torque."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..errors import PhysodeError
from .base import MechanicalSystem, check_parameter, rng, store


@dataclasses.dataclass(frozen=True)
class PendulumParams:
    """gravity g (m/s^2), length l (m), mass m (kg), damping rate c (1/s), and whether the mass is a uniform rod."""

    gravity: float = 9.81
    length: float = 1.0
    mass: float = 1.0
    damping: float = 0.0
    rod: bool = False

    def __post_init__(self):
        for name in ("gravity", "length", "mass"):
            store(self, name, check_parameter(name, getattr(self, name)))
        store(self, "damping", check_parameter("damping", self.damping, allow_zero=True))
        if not isinstance(self.rod, (bool, np.bool_)):
            raise PhysodeError(f"parameter rod must be True (a uniform rod) or False (a point mass), got {self.rod!r}")
        store(self, "rod", bool(self.rod))

    @property
    def inertia(self) -> float:
        """Moment of inertia about the pivot: ``m l^2`` (point mass) or ``m l^2 / 3`` (rod)."""
        return self.mass * self.length**2 / (3.0 if self.rod else 1.0)

    @property
    def arm(self) -> float:
        """Distance from the pivot to the centre of mass: ``l`` or ``l / 2``."""
        return self.length / (2.0 if self.rod else 1.0)


class Pendulum(MechanicalSystem):
    """A point mass on a rigid massless rod (or, with ``rod=True``, a uniform rod swinging about one end).

    State ``(theta, omega)``, with ``theta = 0`` hanging straight down:

        theta'' = -(g / l) sin(theta) - c * omega + u / (m l^2)                 (point mass)
        theta'' = -(3 g / (2 l)) sin(theta) - c * omega + 3 u / (m l^2)         (rod)

    that is ``I theta'' = -m g a sin(theta) - I c omega + u`` with inertia ``I`` and arm ``a`` (the
    pivot to the centre of mass), and ``u`` an optional torque (``control_dim = 1``). The rod is the
    model of Gymnasium's ``Pendulum-v1`` (whose angle is measured from the top: ``theta - pi`` here).
    Energy: ``I omega^2 / 2 + m g a (1 - cos theta)`` (zero at rest at the bottom).

    Initial states (:meth:`sample_initial_states`): ``theta ~ U(-3 pi/4, 3 pi/4)`` and
    ``omega ~ U(-2, 2) * sqrt(m g a / I)`` (``sqrt(g / l)`` for the point mass), kept only when the energy
    is below 90% of the separatrix energy ``2 m g a``, so every trajectory swings (librates) instead of going over the top.
    """

    name = "pendulum"
    Params = PendulumParams
    position_dim = 1
    control_dim = 1
    state_names = ("theta", "omega")

    def __init__(self, gravity: float = 9.81, length: float = 1.0, mass: float = 1.0, damping: float = 0.0,
                 rod: bool = False):
        super().__init__(PendulumParams(gravity, length, mass, damping, rod))

    @property
    def finite_everywhere(self) -> bool:
        return True  # a sine, a damping and a torque term: bounded for bounded speeds

    def acceleration(self, t, q, v, u):
        p = self.params
        a = torch.sin(q).mul_(-p.mass * p.gravity * p.arm / p.inertia)  # in place on fresh tensors: fewer allocations
        if p.damping:
            a = a.sub_(p.damping * v)
        if u is not None:
            a = a.add_(u, alpha=1 / p.inertia)
        return a

    def energy(self, x):
        p = self.params
        theta, omega = x[..., 0], x[..., 1]
        return p.inertia * omega**2 / 2 + p.mass * p.gravity * p.arm * (1 - torch.cos(theta))

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        p, gen = self.params, rng(seed)
        omega_scale = math.sqrt(p.mass * p.gravity * p.arm / p.inertia)
        limit = 0.9 * 2 * p.mass * p.gravity * p.arm
        kept = np.empty((0, 2))
        while len(kept) < n:
            theta = gen.uniform(-0.75 * math.pi, 0.75 * math.pi, 2 * n)
            omega = gen.uniform(-2.0, 2.0, 2 * n) * omega_scale
            cand = np.stack([theta, omega], axis=1)
            ok = self.energy(torch.from_numpy(cand)).numpy() < limit
            kept = np.concatenate([kept, cand[ok]])
        return torch.from_numpy(kept[:n].copy())

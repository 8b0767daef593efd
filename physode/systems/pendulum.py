"""The simple pendulum, optionally damped and driven by a torque."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..checks import positive_int
from .base import MechanicalSystem, check_parameter, rng


@dataclasses.dataclass(frozen=True)
class PendulumParams:
    """gravity g (m/s^2), rod length l (m), bob mass m (kg), damping rate c (1/s)."""

    gravity: float = 9.81
    length: float = 1.0
    mass: float = 1.0
    damping: float = 0.0

    def __post_init__(self):
        for name in ("gravity", "length", "mass"):
            check_parameter(name, getattr(self, name))
        check_parameter("damping", self.damping, allow_zero=True)


class Pendulum(MechanicalSystem):
    """A point mass on a rigid massless rod.

    State ``(theta, omega)``, with ``theta = 0`` hanging straight down:

        theta'' = -(g / l) sin(theta) - c * omega + u / (m l^2)

    where ``u`` is an optional torque (``control_dim = 1``).
    Energy: ``m l^2 omega^2 / 2 + m g l (1 - cos theta)`` (zero at rest at the bottom).

    Initial states (:meth:`sample_initial_states`): ``theta ~ U(-3 pi/4, 3 pi/4)`` and
    ``omega ~ U(-2, 2) * sqrt(g / l)``, kept only when the energy is below 90% of the separatrix
    energy ``2 m g l``, so every trajectory swings (librates) instead of going over the top.
    """

    name = "pendulum"
    Params = PendulumParams
    position_dim = 1
    control_dim = 1
    state_names = ("theta", "omega")

    def __init__(self, gravity: float = 9.81, length: float = 1.0, mass: float = 1.0, damping: float = 0.0):
        super().__init__(PendulumParams(gravity, length, mass, damping))

    def acceleration(self, t, q, v, u):
        p = self.params
        a = -(p.gravity / p.length) * torch.sin(q)
        if p.damping:
            a = a - p.damping * v
        if u is not None:
            a = a + u / (p.mass * p.length**2)
        return a

    def energy(self, x):
        p = self.params
        theta, omega = x[..., 0], x[..., 1]
        return p.mass * p.length**2 * omega**2 / 2 + p.mass * p.gravity * p.length * (1 - torch.cos(theta))

    def sample_initial_states(self, n, seed=0):
        n = positive_int(n, "n")
        p, gen = self.params, rng(seed)
        omega_scale = math.sqrt(p.gravity / p.length)
        limit = 0.9 * 2 * p.mass * p.gravity * p.length
        kept = np.empty((0, 2))
        while len(kept) < n:
            theta = gen.uniform(-0.75 * math.pi, 0.75 * math.pi, 2 * n)
            omega = gen.uniform(-2.0, 2.0, 2 * n) * omega_scale
            cand = np.stack([theta, omega], axis=1)
            ok = self.energy(torch.from_numpy(cand)).numpy() < limit
            kept = np.concatenate([kept, cand[ok]])
        return torch.from_numpy(kept[:n].copy())

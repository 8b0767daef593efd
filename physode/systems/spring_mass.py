"""A chain of masses joined by springs between two fixed walls."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..checks import positive_int
from .base import MechanicalSystem, check_parameter, rng, store


@dataclasses.dataclass(frozen=True)
class SpringMassParams:
    """spring stiffness k (N/m), mass m (kg) of each body, damping rate c (1/s), number of masses."""

    stiffness: float = 1.0
    mass: float = 1.0
    damping: float = 0.0
    n_masses: int = 1

    def __post_init__(self):
        store(self, "stiffness", check_parameter("stiffness", self.stiffness))
        store(self, "mass", check_parameter("mass", self.mass))
        store(self, "damping", check_parameter("damping", self.damping, allow_zero=True))
        store(self, "n_masses", positive_int(self.n_masses, "parameter n_masses", minimum=1))


class SpringMass(MechanicalSystem):
    """``n`` equal masses in a line, joined by ``n + 1`` equal springs, the outer two fixed to walls.

    State ``(q_1..q_n, v_1..v_n)``: displacements from equilibrium, then velocities.

        q_i'' = (k / m) (q_{i-1} - 2 q_i + q_{i+1}) - c v_i + u_i / m,    q_0 = q_{n+1} = 0

    with an optional force ``u_i`` per mass (``control_dim = n``). A single mass therefore sits between
    two springs and oscillates at ``sqrt(2 k / m)``; the chain's normal-mode frequencies are
    ``2 sqrt(k / m) sin(j pi / (2 (n + 1)))``, j = 1..n (used by the closed-form tests).
    Energy: ``m |v|^2 / 2 + k sum_i (q_{i+1} - q_i)^2 / 2`` over all ``n + 1`` springs.

    Initial states: displacements ``~ U(-1, 1)``, velocities ``~ U(-1, 1) * sqrt(k / m)``.
    """

    name = "spring_mass"
    Params = SpringMassParams

    def __init__(self, stiffness: float = 1.0, mass: float = 1.0, damping: float = 0.0, n_masses: int = 1):
        super().__init__(SpringMassParams(stiffness, mass, damping, n_masses))

    @property
    def position_dim(self) -> int:
        return self.params.n_masses

    @property
    def control_dim(self) -> int:
        return self.params.n_masses

    @property
    def state_names(self):
        n = self.params.n_masses
        return tuple(f"q{i}" for i in range(1, n + 1)) + tuple(f"v{i}" for i in range(1, n + 1))

    @staticmethod
    def _stretches(q):
        """Extensions of the n + 1 springs, ``(..., n + 1)``."""
        walled = torch.nn.functional.pad(q, (1, 1))
        return walled.diff(dim=-1)

    @property
    def finite_everywhere(self) -> bool:
        return True  # linear in the state and the force

    def acceleration(self, t, q, v, u):
        p = self.params
        stretch = self._stretches(q)
        a = (p.stiffness / p.mass) * stretch.diff(dim=-1)
        if p.damping:
            a = a - p.damping * v
        if u is not None:
            a = a + u / p.mass
        return a

    def energy(self, x):
        p, n = self.params, self.params.n_masses
        q, v = x[..., :n], x[..., n:]
        return p.mass * (v**2).sum(-1) / 2 + p.stiffness * (self._stretches(q) ** 2).sum(-1) / 2

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        p, gen = self.params, rng(seed)
        q = gen.uniform(-1.0, 1.0, (n, p.n_masses))
        v = gen.uniform(-1.0, 1.0, (n, p.n_masses)) * math.sqrt(p.stiffness / p.mass)
        return torch.from_numpy(np.concatenate([q, v], axis=1))

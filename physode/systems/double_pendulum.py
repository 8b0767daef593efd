"""The planar double pendulum: two point masses on massless rods, with optional joint torques and friction."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .base import MechanicalSystem, check_parameter, rng, store


@dataclasses.dataclass(frozen=True)
class DoublePendulumParams:
    """masses m1, m2 (kg), rod lengths l1, l2 (m), gravity g (m/s^2), joint friction rate c (1/s)."""

    mass1: float = 1.0
    mass2: float = 1.0
    length1: float = 1.0
    length2: float = 1.0
    gravity: float = 9.81
    damping: float = 0.0

    def __post_init__(self):
        for name in ("mass1", "mass2", "length1", "length2", "gravity"):
            store(self, name, check_parameter(name, getattr(self, name)))
        store(self, "damping", check_parameter("damping", self.damping, allow_zero=True))


class DoublePendulum(MechanicalSystem):
    """A point mass ``m1`` on a massless rod ``l1`` from a fixed pivot, and a point mass ``m2`` on a massless
    rod ``l2`` hinged at ``m1``, swinging in a vertical plane.

    State ``(theta1, theta2, omega1, omega2)``: the absolute angles of the two rods from the downward
    vertical (rad) and their rates (rad/s). With ``d = theta1 - theta2`` the Lagrangian

        T = (m1 + m2) l1^2 omega1^2 / 2 + m2 l2^2 omega2^2 / 2 + m2 l1 l2 omega1 omega2 cos d
        V = -(m1 + m2) g l1 cos theta1 - m2 g l2 cos theta2

    gives ``M(q) q'' = r`` with

        M = [[(m1 + m2) l1^2, m2 l1 l2 cos d], [m2 l1 l2 cos d, m2 l2^2]]
        r1 = -m2 l1 l2 omega2^2 sin d - (m1 + m2) g l1 sin theta1 + Q1
        r2 =  m2 l1 l2 omega1^2 sin d - m2 g l2 sin theta2 + Q2

    (Shinbrot, Grebogi, Wisdom & Yorke 1992, "Chaos in a double pendulum", Am. J. Phys. 60, 491; any
    Lagrangian-mechanics text, e.g. Goldstein, Classical Mechanics, ch. 1). ``det M = m2 l1^2 l2^2 (m1 + m2 sin^2 d)``
    never vanishes, so the field is finite at every finite state.

    Controls (``control_dim = 2``): a torque ``u1`` (N m) at the shoulder (pivot on rod 1) and ``u2`` at the
    elbow (rod 1 on rod 2: ``+u2`` on rod 2, ``-u2`` on rod 1). Joint friction acts on each joint's relative
    rate, ``omega1`` at the shoulder and ``omega2 - omega1`` at the elbow, with torques ``-c I1 omega1`` and
    ``-c I2 (omega2 - omega1)``, ``I1 = (m1 + m2) l1^2``, ``I2 = m2 l2^2``, so that ``c`` is a decay rate as in
    :class:`~physode.Pendulum`. The generalised forces are therefore

        Q1 = u1 - u2 - c I1 omega1 + c I2 (omega2 - omega1),     Q2 = u2 - c I2 (omega2 - omega1)

    and the energy changes at ``dE/dt = u1 omega1 + u2 (omega2 - omega1) - c I1 omega1^2 - c I2 (omega2 - omega1)^2``.

    Energy: ``T + (m1 + m2) g l1 (1 - cos theta1) + m2 g l2 (1 - cos theta2)`` (zero at rest hanging down).
    Small oscillations about hanging down have, for equal masses and lengths, ``omega^2 = (g / l)(2 -+ sqrt 2)``.
    The phase space is mixed: regular (quasi-periodic) at low energy, chaotic with flips of the rods at energies
    of the order of the weights times the lengths (Shinbrot et al.). :attr:`lyapunov_exponent` is therefore left
    None: no one number holds for every start.

    Initial states (:meth:`sample_initial_states`): ``theta1, theta2 ~ U(-pi/2, pi/2)``,
    ``omega_i ~ U(-1, 1) sqrt(g / l_i)``, kept only when the energy is below 90% of the least energy at which
    either rod could pass over its top (``2 m2 g l2`` for the outer rod, ``2 (m1 + m2) g l1`` for the inner one).
    No rod ever flips, so the angles stay within ``(-pi, pi)`` and a learned model sees the states it is asked
    about; at these energies the motion ranges from regular swings to chaos (with flips, at higher energies,
    the angles grow without bound and an MLP of the raw state cannot represent the field beyond what it saw).
    For the default parameters, finite-time largest Lyapunov exponents over 60 s from sixteen such starts
    (seed 0, energies 4-18 J) were 0.02-0.16 /s, median 0.04 /s: mostly regular, a few weakly chaotic.
    """

    name = "double_pendulum"
    Params = DoublePendulumParams
    position_dim = 2
    control_dim = 2
    state_names = ("theta1", "theta2", "omega1", "omega2")

    def __init__(self, mass1: float = 1.0, mass2: float = 1.0, length1: float = 1.0, length2: float = 1.0,
                 gravity: float = 9.81, damping: float = 0.0):
        super().__init__(DoublePendulumParams(mass1, mass2, length1, length2, gravity, damping))

    @property
    def conservative(self) -> bool:
        # even undamped (energy conserved) the accelerations depend on the speeds (the omega^2 sin d terms): the
        # drift-kick splitting of the symplectic methods, which needs forces of the positions alone, does not apply
        return False

    @property
    def finite_everywhere(self) -> bool:
        return True  # det M >= m1 m2 l1^2 l2^2 > 0: sines, cosines and squared speeds over a bounded-below divisor

    def acceleration(self, t, q, v, u):
        p = self.params
        m12 = p.mass1 + p.mass2
        theta1, theta2, omega1, omega2 = q[..., 0], q[..., 1], v[..., 0], v[..., 1]
        d = theta1 - theta2
        sin_d, cos_d = torch.sin(d), torch.cos(d)
        coupling = p.mass2 * p.length1 * p.length2
        r1 = -coupling * omega2**2 * sin_d - m12 * p.gravity * p.length1 * torch.sin(theta1)
        r2 = coupling * omega1**2 * sin_d - p.mass2 * p.gravity * p.length2 * torch.sin(theta2)
        if p.damping:
            shoulder = p.damping * m12 * p.length1**2 * omega1
            elbow = p.damping * p.mass2 * p.length2**2 * (omega2 - omega1)
            r1 = r1 - shoulder + elbow
            r2 = r2 - elbow
        if u is not None:
            r1 = r1 + (u[..., 0] - u[..., 1])
            r2 = r2 + u[..., 1]
        m11, m22, m21 = m12 * p.length1**2, p.mass2 * p.length2**2, coupling * cos_d
        det = p.mass2 * p.length1**2 * p.length2**2 * (p.mass1 + p.mass2 * sin_d**2)
        return torch.stack([(m22 * r1 - m21 * r2) / det, (m11 * r2 - m21 * r1) / det], dim=-1)

    def energy(self, x):
        p = self.params
        theta1, theta2, omega1, omega2 = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
        m12 = p.mass1 + p.mass2
        kinetic = (m12 * p.length1**2 * omega1**2 / 2 + p.mass2 * p.length2**2 * omega2**2 / 2
                   + p.mass2 * p.length1 * p.length2 * omega1 * omega2 * torch.cos(theta1 - theta2))
        potential = (m12 * p.gravity * p.length1 * (1 - torch.cos(theta1))
                     + p.mass2 * p.gravity * p.length2 * (1 - torch.cos(theta2)))
        return kinetic + potential

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        p, gen = self.params, rng(seed)
        flip = 2 * p.gravity * min(p.mass2 * p.length2, (p.mass1 + p.mass2) * p.length1)  # least energy of a flip
        kept = np.empty((0, 4))
        while len(kept) < n:
            theta = gen.uniform(-0.5 * math.pi, 0.5 * math.pi, (2 * n, 2))
            omega = gen.uniform(-1.0, 1.0, (2 * n, 2)) * np.sqrt([p.gravity / p.length1, p.gravity / p.length2])
            cand = np.concatenate([theta, omega], axis=1)
            kept = np.concatenate([kept, cand[self.energy(torch.from_numpy(cand)).numpy() < 0.9 * flip]])
        return torch.from_numpy(kept[:n].copy())

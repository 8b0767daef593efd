"""The cart-pole: a uniform pole hinged on a cart that a horizontal force pushes along a frictionless track."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .base import MechanicalSystem, check_parameter, rng, store


@dataclasses.dataclass(frozen=True)
class CartPoleParams:
    """gravity g (m/s^2), cart mass M (kg), pole mass m (kg), pole half-length l (m; the pole is 2 l long)."""

    gravity: float = 9.8
    cart_mass: float = 1.0
    pole_mass: float = 0.1
    half_length: float = 0.5

    def __post_init__(self):
        for name in ("gravity", "cart_mass", "pole_mass", "half_length"):
            store(self, name, check_parameter(name, getattr(self, name)))


class CartPole(MechanicalSystem):
    """A cart of mass ``M`` on a frictionless horizontal track with a uniform pole (mass ``m``, length ``2 l``)
    hinged on it, pushed by a horizontal force ``F`` (N, the control, ``control_dim = 1``).

    State ``(x, theta, x_dot, theta_dot)``: the cart's position (m), the pole's angle from the upward
    vertical (rad, ``theta = 0`` upright, positive leaning towards ``+x``), and their rates. The equations are
    those of Barto, Sutton & Anderson (1983), "Neuronlike adaptive elements that can solve difficult
    learning control problems", IEEE Trans. SMC 13, 834, without their friction terms (derived in Florian 2007,
    "Correct equations for the dynamics of the cart-pole system", which Gymnasium cites), and exactly those of
    Gymnasium's ``CartPole-v1`` (whose ``length`` is the half-length ``l`` and whose state is ordered
    ``(x, x_dot, theta, theta_dot)``):

        a            = (F + m l theta_dot^2 sin theta) / (M + m)
        theta_ddot   = (g sin theta - cos theta a) / (l (4/3 - m cos^2 theta / (M + m)))
        x_ddot       = a - m l theta_ddot cos theta / (M + m)

    They follow from the Lagrangian of a uniform rod (moment of inertia ``m l^2 / 3`` about its centre,
    hence ``4/3``): ``T = (M + m) x_dot^2 / 2 + m l cos(theta) x_dot theta_dot + (2/3) m l^2 theta_dot^2``,
    ``V = m g l cos theta``. The divisor ``4/3 - m cos^2 theta / (M + m)`` is at least ``1/3``, so the field
    is finite at every finite state. Energy ``T + V`` (``m g l`` upright at rest) and the horizontal momentum
    ``(M + m) x_dot + m l cos(theta) theta_dot`` are conserved when ``F = 0``.

    Initial states (:meth:`sample_initial_states`): ``theta ~ U(-pi, pi)`` (every pole angle, not Gymnasium's
    ``+-0.05``, so that learned models see the whole circle), ``x ~ U(-1, 1)``, ``x_dot ~ U(-1, 1)``,
    ``theta_dot ~ U(-1, 1) sqrt(g / l)``, all independent.
    """

    name = "cart_pole"
    Params = CartPoleParams
    position_dim = 2
    control_dim = 1
    state_names = ("x", "theta", "x_dot", "theta_dot")

    def __init__(self, gravity: float = 9.8, cart_mass: float = 1.0, pole_mass: float = 0.1, half_length: float = 0.5):
        super().__init__(CartPoleParams(gravity, cart_mass, pole_mass, half_length))

    @property
    def conservative(self) -> bool:
        # the energy is conserved, but the accelerations depend on theta_dot^2: the drift-kick splitting of the
        # symplectic methods, which needs forces of the positions alone, would integrate another ODE
        return False

    @property
    def finite_everywhere(self) -> bool:
        return True  # the divisor is at least l / 3

    def acceleration(self, t, q, v, u):
        p = self.params
        total = p.cart_mass + p.pole_mass
        pole_ml = p.pole_mass * p.half_length
        theta, theta_dot = q[..., 1], v[..., 1]
        sin, cos = torch.sin(theta), torch.cos(theta)
        push = pole_ml * theta_dot**2 * sin
        if u is not None:
            push = push + u[..., 0]
        a = push / total
        theta_acc = (p.gravity * sin - cos * a) / (p.half_length * (4.0 / 3.0 - p.pole_mass * cos**2 / total))
        x_acc = a - pole_ml * theta_acc * cos / total
        return torch.stack([x_acc, theta_acc], dim=-1)

    def energy(self, x):
        p = self.params
        theta, x_dot, theta_dot = x[..., 1], x[..., 2], x[..., 3]
        kinetic = ((p.cart_mass + p.pole_mass) * x_dot**2 / 2 + p.pole_mass * p.half_length * torch.cos(theta) * x_dot * theta_dot
                   + 2.0 / 3.0 * p.pole_mass * p.half_length**2 * theta_dot**2)
        return kinetic + p.pole_mass * p.gravity * p.half_length * torch.cos(theta)

    def momentum(self, x):
        """The horizontal momentum ``(M + m) x_dot + m l cos(theta) theta_dot`` of states ``x: (..., 4)``, shape ``(...)``."""
        p = self.params
        return (p.cart_mass + p.pole_mass) * x[..., 2] + p.pole_mass * p.half_length * torch.cos(x[..., 1]) * x[..., 3]

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        p, gen = self.params, rng(seed)
        position = gen.uniform(-1.0, 1.0, n)
        theta = gen.uniform(-math.pi, math.pi, n)
        speed = gen.uniform(-1.0, 1.0, n)
        rate = gen.uniform(-1.0, 1.0, n) * math.sqrt(p.gravity / p.half_length)
        return torch.from_numpy(np.stack([position, theta, speed, rate], axis=1))

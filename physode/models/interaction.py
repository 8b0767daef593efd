"""A structured model for many bodies: pairwise central forces through one shared network.

For identical particles with state ``[q_1..q_n, v_1..v_n]`` (``dim`` numbers per body)::

    dq_i/dt = v_i,      dv_i/dt = sum_{j != i} F(|q_j - q_i|) (q_j - q_i) / |q_j - q_i|

or, in the Hamiltonian form, ``H = sum_i |v_i|^2 / 2 + sum_{i<j} V(|q_i - q_j|)`` with ``dv_i/dt = -dH/dq_i``.
The magnitude (or potential) is a difference of two positive power-law-like terms of the distance ``r``,
``exp(a_1 + b_1 log r + m_1(log r)) - exp(a_2 + b_2 log r + m_2(log r))`` with one small MLP ``m`` of ``log r``,
so that attraction, repulsion and both (a Lennard-Jones shape) are representable, and a pure power law (gravity,
``G m / r^2``; its potential ``-G m^2 / r``) is the linear part alone, which extrapolates to close encounters.

What the model is told about the physics: positions change at the velocities; the bodies are identical (one
network for every pair: equal masses); forces act between pairs, along the line between them, and depend on the
distance only. So it is translation- and rotation-invariant and permutation-equivariant by construction, obeys
Newton's third law (total momentum is conserved), in the Hamiltonian form conserves its energy, and the same
weights roll out any number of bodies (:meth:`InteractionODE.with_bodies`). It works in the data's own units
(the trainer's normalisation is not used: it would break translation invariance).
"""

from __future__ import annotations

import torch

from ..checks import positive_int
from ..errors import PhysodeError
from .base import ContinuousModel
from .vector_field import MLP


#: The most the network changes ``log F`` (or ``log |V|``) by: enough for shapes other than a power law, too little
#: to fake the power's trend (whose slope is then what extrapolates to close encounters).
CORRECTION = 0.5


class InteractionODE(ContinuousModel):
    """Pairwise central forces (or a pair potential) of identical bodies, through one shared network.

    Args:
        n_bodies: ``n``; dim: numbers per position (``state_dim = 2 n dim``).
        hidden, depth, activation: the MLP ``m`` of ``log r`` (two outputs).
        hamiltonian: learn the pair potential ``V`` (energy-conserving) instead of the force magnitude ``F``.
        solver, rtol, atol, ...: see :class:`ContinuousModel`.
    """

    def __init__(self, n_bodies, dim=2, hidden=32, depth=2, activation="tanh", hamiltonian=False, solver="dopri5",
                 rtol=1e-6, atol=1e-7, step_size=None, adjoint=False, seminorm=False, max_steps=10_000,
                 dtype="float32"):
        self.n_bodies = positive_int(n_bodies, "n_bodies", minimum=2)
        self.dim = positive_int(dim, "dim")
        super().__init__(2 * self.n_bodies * self.dim, 0, dtype, solver=solver, rtol=rtol, atol=atol,
                         step_size=step_size, adjoint=adjoint, seminorm=seminorm, max_steps=max_steps)
        self.hidden, self.depth, self.activation = hidden, depth, activation
        self.hamiltonian = bool(hamiltonian)
        self.net = MLP(1, 1, hidden, depth, activation).to(self.torch_dtype)
        torch.nn.init.zeros_(self.net[-1].weight)  # start from the power law alone
        torch.nn.init.zeros_(self.net[-1].bias)
        self.strength = torch.nn.Parameter(torch.tensor(0.1, dtype=self.torch_dtype))  # c: its sign, attraction
        self.power = torch.nn.Parameter(torch.tensor(-1.0, dtype=self.torch_dtype))  # b

    def pair_term(self, r: torch.Tensor) -> torch.Tensor:
        """``F(r)`` (or ``V(r)`` in the Hamiltonian form) at distances ``r: (...)``, shape ``(...)``."""
        log_r = torch.log(r).unsqueeze(-1)
        # a bounded correction: within it the network shapes the law, beyond the data's distances the power carries it
        exponent = (self.power * log_r + CORRECTION * torch.tanh(self.net(log_r))).squeeze(-1)
        return self.strength * torch.exp(exponent.clamp(max=60.0))  # past e^60 a force is a collision, not dynamics

    def flow(self, t, z, u):
        half = self.state_dim // 2
        q = z[..., :half].unflatten(-1, (self.n_bodies, self.dim))
        v = z[..., half:]
        if self.hamiltonian:
            return torch.cat([v, -self._potential_gradient(q).flatten(-2)], dim=-1)
        separation = q.unsqueeze(-3) - q.unsqueeze(-2)  # (..., n, n, dim): q_j - q_i at [i, j]
        r = self._distances(separation)
        magnitude = self.pair_term(r) * self._off_diagonal(r)
        acceleration = (magnitude / r).unsqueeze(-1) * separation
        return torch.cat([v, acceleration.sum(-2).flatten(-2)], dim=-1)

    def potential_energy(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_{i<j} V(|q_i - q_j|)`` of the Hamiltonian form at states ``x: (..., D)``, shape ``(...)``."""
        if not self.hamiltonian:
            raise PhysodeError("potential_energy needs the Hamiltonian form: build the model with hamiltonian=True")
        q = x[..., : self.state_dim // 2].unflatten(-1, (self.n_bodies, self.dim))
        return self._potential(q)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """The Hamiltonian ``sum |v_i|^2 / 2 + sum_{i<j} V`` at ``x: (..., D)`` (Hamiltonian form)."""
        return 0.5 * (x[..., self.state_dim // 2 :] ** 2).sum(-1) + self.potential_energy(x)

    def with_bodies(self, n_bodies: int) -> InteractionODE:
        """The same pair network for ``n_bodies`` bodies (no retraining: the weights do not depend on ``n``)."""
        other = type(self)(**{**self.config(), "n_bodies": n_bodies})
        state = {k: v for k, v in self.state_dict().items() if k not in ("x_mean", "x_scale")}
        other.load_state_dict(state, strict=False)
        return other.to(self.x_mean.device)

    def _potential(self, q):
        separation = q.unsqueeze(-3) - q.unsqueeze(-2)
        r = self._distances(separation)
        return 0.5 * (self.pair_term(r) * self._off_diagonal(r)).sum((-1, -2))  # each pair counted twice

    def _potential_gradient(self, q):
        differentiable = torch.is_grad_enabled()
        with torch.inference_mode(False), torch.enable_grad():
            x = q.clone() if q.is_inference() else q
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self._potential(x).sum(), x, create_graph=differentiable)
        return grad

    def _distances(self, separation):
        """``|q_j - q_i|`` with the diagonal set to 1 (no self-interaction: masked, and no log 0 or 0 / 0)."""
        eye = torch.eye(self.n_bodies, dtype=torch.bool, device=separation.device)
        squared = (separation**2).sum(-1)
        return torch.where(eye, torch.ones_like(squared), squared).sqrt()

    def _off_diagonal(self, r):
        return ~torch.eye(self.n_bodies, dtype=torch.bool, device=r.device)

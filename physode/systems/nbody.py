"""Newtonian gravity between point masses, in the plane or in space."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..checks import positive_int
from ..errors import PhysodeError
from .base import MechanicalSystem, check_parameter, rng

#: Relative size of the random perturbations of the initial ring (angles, radii, speeds).
JITTER = 0.05


#: Most separation components (batch x bodies x bodies x dim) held at once by the pairwise sums; beyond
#: it they run in chunks of bodies (128 MiB of float64 per temporary).
PAIR_BUDGET = 2**24


@dataclasses.dataclass(frozen=True)
class NBodyParams:
    """number of bodies, spatial dimension (2 or 3), masses (None: all 1), G, Plummer softening length."""

    n_bodies: int = 3
    dim: int = 2
    masses: tuple[float, ...] | None = None
    gravity: float = 1.0
    softening: float = 0.0

    def __post_init__(self):
        if isinstance(self.n_bodies, bool) or not isinstance(self.n_bodies, int) or self.n_bodies < 2:
            raise PhysodeError(f"parameter n_bodies must be a whole number >= 2, got {self.n_bodies!r}")
        if self.dim not in (2, 3) or isinstance(self.dim, bool):
            raise PhysodeError(f"parameter dim must be 2 or 3, got {self.dim!r}")
        if self.masses is not None:
            masses = tuple(self.masses) if isinstance(self.masses, (list, tuple)) else None
            if masses is None or len(masses) != self.n_bodies:
                raise PhysodeError(
                    f"parameter masses must list one mass per body ({self.n_bodies}), got {self.masses!r}"
                )
            for i, m in enumerate(masses):
                check_parameter(f"masses[{i}]", m)
            object.__setattr__(self, "masses", masses)
        check_parameter("gravity", self.gravity)
        check_parameter("softening", self.softening, allow_zero=True)


class NBody(MechanicalSystem):
    """``n`` point masses under Newtonian gravity with optional Plummer softening ``eps``.

    State ``[q_1..q_n, v_1..v_n]``: all positions (``dim`` numbers per body), then all velocities.

        v_i' = G sum_{j != i} m_j (q_j - q_i) / (|q_j - q_i|^2 + eps^2)^(3/2) + u_i

    with an optional external acceleration ``u_i`` per body (``control_dim = n * dim``).
    Energy ``sum m_i |v_i|^2 / 2 - G sum_{i<j} m_i m_j / sqrt(|q_i - q_j|^2 + eps^2)``; total momentum and
    angular momentum are conserved without control (:meth:`momentum`, :meth:`angular_momentum`).
    The pairwise interaction is one batched tensor computation (no loop over bodies).

    Initial states (:meth:`sample_initial_states`): a perturbed rotating ring, the classic regular
    n-body configuration (for three bodies, near Lagrange's equilateral orbit). Bodies sit at equally
    spaced angles (jittered by +-5% of the spacing, the whole ring turned by a random angle) at radii
    ``R * U(0.95, 1.05)`` with ``R = max(1, n / 3)`` (and ``z ~ U(-0.1, 0.1) R`` in 3-D), so no two start
    close. Each body gets the speed of a circular orbit under the actual pull of the others, along
    the ring (all turning the same way), scaled by ``U(0.95, 1.05)`` plus 5% random velocity.
    For three or more bodies the motion is chaotic: close encounters happen within a few orbits. The centre
    of mass is at the origin and the total momentum is zero; circular speeds are below escape speed,
    so the total energy is negative (checked): the system is bound.
    """

    name = "nbody"
    Params = NBodyParams

    def __init__(
        self,
        n_bodies: int = 3,
        dim: int = 2,
        masses: tuple[float, ...] | None = None,
        gravity: float = 1.0,
        softening: float = 0.0,
    ):
        super().__init__(NBodyParams(n_bodies, dim, masses, gravity, softening))

    @property
    def position_dim(self) -> int:
        return self.params.n_bodies * self.params.dim

    @property
    def control_dim(self) -> int:
        return self.position_dim

    @property
    def state_names(self):
        axes = "xyz"[: self.params.dim]
        n = self.params.n_bodies
        return tuple(f"{a}{i}" for i in range(1, n + 1) for a in axes) + tuple(
            f"v{a}{i}" for i in range(1, n + 1) for a in axes
        )

    def masses(self, like: torch.Tensor | None = None) -> torch.Tensor:
        """The masses ``(n,)``, with the dtype and device of ``like``."""
        p = self.params
        m = torch.tensor(p.masses if p.masses is not None else [1.0] * p.n_bodies, dtype=torch.float64)
        return m if like is None else m.to(dtype=like.dtype, device=like.device)

    def _bodies(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape(*flat.shape[:-1], self.params.n_bodies, self.params.dim)

    def _pair_chunks(self, q: torch.Tensor):
        """The pairwise terms in chunks of bodies ``i``, so that memory stays bounded for many bodies.

        Yields ``(rows, d, r2, self_pair)`` with ``rows`` a slice of bodies ``i``, separations
        ``d_ij = q_j - q_i: (..., r, n, dim)``, softened squared distances ``(..., r, n)`` and the mask of
        ``j == i`` ``(r, n)``. Each chunk holds at most about ``PAIR_BUDGET`` separation components.
        """
        n, dim = q.shape[-2], q.shape[-1]
        batch = max(1, q[..., 0, 0].numel())
        step = max(1, PAIR_BUDGET // (batch * n * dim))
        eye = torch.eye(n, dtype=torch.bool, device=q.device)
        for start in range(0, n, step):
            rows = slice(start, min(n, start + step))
            d = q.unsqueeze(-3) - q[..., rows, :].unsqueeze(-2)
            yield rows, d, (d**2).sum(-1) + self.params.softening**2, eye[rows]

    def acceleration(self, t, q, v, u):
        q = self._bodies(q)
        gm = self.params.gravity * self.masses(q)
        parts = []
        for _, d, r2, self_pair in self._pair_chunks(q):
            inv_r3 = torch.where(self_pair, 0.0, r2.masked_fill(self_pair, 1.0) ** -1.5)
            parts.append(((gm * inv_r3).unsqueeze(-1) * d).sum(-2))  # sum_j G m_j d_ij / r_ij^3
        a = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=-2)).flatten(-2)
        if u is not None:
            a = a + u
        return a

    def potential_energy(self, x: torch.Tensor) -> torch.Tensor:
        """``-G sum_{i<j} m_i m_j / r_ij`` of states ``x: (..., D)``, shape ``(...)``."""
        q = self._bodies(x[..., : self.position_dim])
        m = self.masses(q)
        total = 0.0
        for rows, _, r2, self_pair in self._pair_chunks(q):
            inv_r = torch.where(self_pair, 0.0, r2.masked_fill(self_pair, 1.0) ** -0.5)
            total = total + (m[rows].unsqueeze(-1) * m * inv_r).sum((-1, -2))
        return -0.5 * self.params.gravity * total

    def kinetic_energy(self, x: torch.Tensor) -> torch.Tensor:
        """``sum m_i |v_i|^2 / 2``, shape ``(...)``."""
        v = self._bodies(x[..., self.position_dim :])
        return 0.5 * (self.masses(v) * (v**2).sum(-1)).sum(-1)

    def energy(self, x):
        return self.kinetic_energy(x) + self.potential_energy(x)

    def momentum(self, x: torch.Tensor) -> torch.Tensor:
        """Total linear momentum ``sum m_i v_i``, shape ``(..., dim)``."""
        v = self._bodies(x[..., self.position_dim :])
        return (self.masses(v).unsqueeze(-1) * v).sum(-2)

    def angular_momentum(self, x: torch.Tensor) -> torch.Tensor:
        """Total angular momentum about the origin: shape ``(...)`` in 2-D, ``(..., 3)`` in 3-D."""
        q = self._bodies(x[..., : self.position_dim])
        v = self._bodies(x[..., self.position_dim :])
        m = self.masses(q)
        if self.params.dim == 2:
            return (m * (q[..., 0] * v[..., 1] - q[..., 1] * v[..., 0])).sum(-1)
        return (m.unsqueeze(-1) * torch.linalg.cross(q, v, dim=-1)).sum(-2)

    def sample_initial_states(self, n, seed=0):
        n = positive_int(n, "n")
        p, gen = self.params, rng(seed)
        k, dim = p.n_bodies, p.dim
        radius = max(1.0, k / 3)
        angle = (np.arange(k) + gen.uniform(-JITTER, JITTER, (n, k))) * (2 * np.pi / k) + gen.uniform(0, 2 * np.pi, (n, 1))
        r = radius * gen.uniform(1 - JITTER, 1 + JITTER, (n, k))
        q = np.zeros((n, k, dim))
        q[..., 0], q[..., 1] = r * np.cos(angle), r * np.sin(angle)
        if dim == 3:
            q[..., 2] = gen.uniform(-0.1, 0.1, (n, k)) * radius
        m = self.masses().numpy()
        q -= (m[:, None] * q).sum(1, keepdims=True) / m.sum()
        zeros = torch.zeros(n, self.position_dim, dtype=torch.float64)
        a = self.acceleration(None, torch.from_numpy(q.reshape(n, -1)), zeros, None).numpy().reshape(n, k, dim)
        planar = np.zeros_like(q)
        planar[..., :2] = q[..., :2]
        dist = np.linalg.norm(planar, axis=-1, keepdims=True)
        inward = -(a * planar).sum(-1, keepdims=True) / dist  # centripetal part of the pull
        tangent = np.zeros_like(q)
        tangent[..., 0], tangent[..., 1] = -planar[..., 1], planar[..., 0]
        speed = np.sqrt(np.maximum(inward, 0.0) * dist)
        v = tangent / dist * speed * (1 + gen.uniform(-JITTER, JITTER, (n, k, 1)))
        v += JITTER * speed * gen.standard_normal((n, k, dim)) / np.sqrt(dim)
        v -= (m[:, None] * v).sum(1, keepdims=True) / m.sum()
        x = torch.from_numpy(np.concatenate([q.reshape(n, -1), v.reshape(n, -1)], axis=1))
        unbound = self.energy(x) >= 0
        if bool(unbound.any()):  # pragma: no cover - circular speeds are well below escape speed
            raise PhysodeError("sampled an unbound n-body state; report this with the parameters and seed")
        return x

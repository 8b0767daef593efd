"""Newtonian gravity between point masses, in the plane or in space."""

from __future__ import annotations

import dataclasses
import math
import numbers
import functools

import numpy as np
import torch

from ..errors import PhysodeError
from ..checks import positive_int
from .base import MechanicalSystem, check_parameter, rng, store

#: Relative size of the random perturbations of the initial ring (angles, radii, speeds).
JITTER = 0.05

#: Most bodies that start on the ring; more start in a Plummer-like cluster on a jittered lattice.
#: The ring is a good few-body start (measured bound for up to about 128 bodies in 2-D), but for many
#: bodies neighbours crowd, the jittered local pull makes some circular speeds huge and 2K/|W| drifts
#: away from 1 (1.0-1.4 at 64 bodies in 2-D, unbound samples at 256); 16 keeps a wide margin and all the
#: few-body datasets (2 to 7 bodies) on the ring.
RING_MAX_BODIES = 16

#: Half-width of the uniform jitter of each lattice coordinate (lattice spacing 1): bodies of the
#: cluster start at least ``1 - 2 * LATTICE_JITTER = 0.5`` apart.
LATTICE_JITTER = 0.25

#: The cluster's Plummer profile is cut at ``PLUMMER_CUT`` Plummer radii.
PLUMMER_CUT = 3.0

#: Range of the virial ratio ``2K / |W|`` of the cluster (drawn uniformly per sample).
VIRIAL_RANGE = (0.9, 1.1)


#: Most pairs (states x bodies x bodies) that the pairwise sums of the field and of the potential energy
#: hold at once; beyond it they run in chunks of bodies ``i``. 2 MiB of float64 per temporary: small
#: enough to stay in cache (measured: for 1024 bodies 3-4x faster than chunks of 2**22 pairs), so memory
#: stays bounded however many bodies and states.
PAIR_BUDGET = 2**18


@dataclasses.dataclass(frozen=True)
class NBodyParams:
    """number of bodies, spatial dimension (2 or 3), masses (None: all 1), G, Plummer softening length."""

    n_bodies: int = 3
    dim: int = 2
    masses: tuple[float, ...] | None = None
    gravity: float = 1.0
    softening: float = 0.0

    def __post_init__(self):
        store(self, "n_bodies", positive_int(self.n_bodies, "parameter n_bodies", minimum=2))
        if isinstance(self.dim, bool) or not isinstance(self.dim, numbers.Integral) or self.dim not in (2, 3):
            raise PhysodeError(f"parameter dim must be 2 or 3, got {self.dim!r}")
        store(self, "dim", int(self.dim))
        if self.masses is not None:
            listed = isinstance(self.masses, (list, tuple)) or (isinstance(self.masses, np.ndarray) and self.masses.ndim == 1)
            if not listed or len(self.masses) != self.n_bodies:
                raise PhysodeError(
                    f"parameter masses must list one mass per body ({self.n_bodies}), got {self.masses!r}"
                )
            store(self, "masses", tuple(check_parameter(f"masses[{i}]", m) for i, m in enumerate(self.masses)))
        store(self, "gravity", check_parameter("gravity", self.gravity))
        store(self, "softening", check_parameter("softening", self.softening, allow_zero=True))


class NBody(MechanicalSystem):
    """``n`` point masses under Newtonian gravity with optional Plummer softening ``eps``.

    State ``[q_1..q_n, v_1..v_n]``: all positions (``dim`` numbers per body), then all velocities.

        v_i' = G sum_{j != i} m_j (q_j - q_i) / (|q_j - q_i|^2 + eps^2)^(3/2) + u_i

    with an optional external acceleration ``u_i`` per body (``control_dim = n * dim``).
    Energy ``sum m_i |v_i|^2 / 2 - G sum_{i<j} m_i m_j / sqrt(|q_i - q_j|^2 + eps^2)``; total momentum and
    angular momentum are conserved without control (:meth:`momentum`, :meth:`angular_momentum`).
    The pairwise interaction is one batched tensor computation (no loop over bodies).

    Initial states (:meth:`sample_initial_states`) depend on the number of bodies; both kinds have the
    centre of mass at the origin, zero total momentum and negative total energy (checked for every
    sample): the system is bound.

    * Up to ``RING_MAX_BODIES = 16`` bodies: a perturbed rotating ring, the classic regular n-body
      configuration (for three bodies, near Lagrange's equilateral orbit). Bodies sit at equally
      spaced angles (jittered by +-5% of the spacing, the whole ring turned by a random angle) at radii
      ``R * U(0.95, 1.05)`` with ``R = max(1, n / 3)`` (and ``z ~ U(-0.1, 0.1) R`` in 3-D), so no two
      start close. Each body gets the speed of a circular orbit under the actual pull of the others,
      along the ring (all turning the same way), scaled by ``U(0.95, 1.05)`` plus 5% random velocity.
      For three or more bodies the motion is chaotic: close encounters happen within a few orbits.
      Circular speeds are below escape speed, so the total energy is negative.
    * More bodies: a Plummer-like cluster (a sphere in 3-D, a disc in 2-D) built on a jittered lattice.
      The ``n`` points of the unit square (cubic) lattice nearest a centre ``c ~ U(-1/2, 1/2)^dim`` are
      given to the bodies in random order, each coordinate moved by ``U(-1/4, 1/4)``; so any two bodies
      start at least ``1/2`` apart (lattice points differ by >= 1 in some coordinate). Around ``c`` this
      is close to a uniform disc (ball) at one body per unit area (volume), of radius ``rho`` (its
      farthest body), which is stretched radially, ``p -> p / sqrt(1 - s^2 |p|^2 / rho^2)`` with
      ``s = 3 / sqrt(10)``: the uniform disc (ball) becomes a Plummer profile of radius
      ``a = rho sqrt(10) / 3`` cut at ``3 a``, in which the fraction of bodies within ``r`` is
      ``(r^2 / (r^2 + a^2))^(dim / 2) / s^dim`` (in 3-D the Plummer sphere, in 2-D the projected Plummer
      disc). The lattice's edge is ragged, so somewhat more bodies lie inside ``a`` than that (for 1024
      bodies about 57% instead of 56% in 2-D, 47% instead of 41% in 3-D). The stretch never brings two
      points closer (its radial and tangential factors are both >= 1), so the separation bound holds, and
      the core keeps the lattice density. The cluster is turned by a random orthogonal matrix (uniform on
      O(dim)). Velocities are isotropic Gaussian with the Plummer dispersion profile
      ``sigma(r) ~ (1 + r^2 / a^2)^(-1/4)``, less their mass-weighted mean, then scaled so that
      ``2K / |W| ~ U(0.9, 1.1)`` exactly (``W``: the potential energy, softened if ``eps > 0``): roughly
      virialised, and ``K + W <= 0.55 W < 0``. Masses do not change the positions or the velocity
      profile. Sampling costs one potential-energy evaluation, chunked (memory bounded by
      ``PAIR_BUDGET`` beyond the states themselves), with no loop over bodies or states.
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

    @property
    def finite_everywhere(self) -> bool:
        return self.params.softening > 0  # without softening, bodies that coincide have infinite accelerations

    def acceleration(self, t, q, v, u):
        """``sum_{j != i} G m_j d_ij / (|d_ij|^2 + eps^2)^(3/2)`` (+ ``u``), ``d_ij = q_j - q_i``, for ``q: (..., n dim)``.

        One batched computation over all pairs, a coordinate at a time (each contiguous, so that no
        reduction runs over a tiny axis), in chunks of bodies ``i`` that hold at most about
        ``PAIR_BUDGET`` pairs each, so that memory stays bounded for many bodies.
        """
        n, dim = self.params.n_bodies, self.params.dim
        lead = q.shape[:-1]
        qt = q.reshape(-1, n, dim).transpose(-1, -2).contiguous()  # (B, dim, n)
        gm = self.params.gravity * self.masses(qt)
        step = max(1, PAIR_BUDGET // (max(1, qt.shape[0]) * n))
        eye = torch.eye(n, dtype=torch.bool, device=q.device)
        parts = []
        for start in range(0, n, step):
            rows = slice(start, min(n, start + step))
            d = [qt[:, c, None, :] - qt[:, c, rows, None] for c in range(dim)]  # (B, r, n) each
            r2 = sum(dc * dc for dc in d) + self.params.softening**2
            w = gm * r2.masked_fill(eye[rows], math.inf).pow(-1.5)  # 0 for j == i
            parts.append(torch.stack([(w * dc).sum(-1) for dc in d], dim=-1))  # (B, r, dim)
        a = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=-2)).reshape(*lead, n * dim)
        if u is not None:
            a = a + u
        return a

    def potential_energy(self, x: torch.Tensor) -> torch.Tensor:
        """``-G sum_{i<j} m_i m_j / r_ij`` of states ``x: (..., D)``, shape ``(...)``.

        Each pair once, one coordinate at a time, in chunks of states and of bodies ``i`` (pairs
        ``j > i``) of at most about ``PAIR_BUDGET`` distances, so that memory stays bounded.
        """
        lead = x.shape[:-1]
        q = self._bodies(x[..., : self.position_dim]).reshape(-1, self.params.n_bodies, self.params.dim)
        q = q.transpose(-1, -2).contiguous()  # (B, dim, n): each coordinate contiguous
        m = self.masses(q)
        batch, dim, n = q.shape
        states = max(1, min(batch, PAIR_BUDGET // n))
        step = max(1, PAIR_BUDGET // (states * n))
        blocks = []
        for first in range(0, max(batch, 1), states):  # one empty block when there are no states
            block, total = q[first : first + states], 0.0
            for start in range(0, n, step):
                stop = min(n, start + step)
                r2 = self.params.softening**2 + sum(
                    (block[:, c, None, start:] - block[:, c, start:stop, None]) ** 2 for c in range(dim)
                )  # (states, rows, n - start)
                lower = torch.ones(stop - start, n - start, dtype=torch.bool, device=q.device).tril_()  # j <= i
                inv_r = r2.masked_fill(lower, float("inf")).rsqrt()
                total = total + (m[start:stop] * (inv_r @ m[start:])).sum(-1)
            blocks.append(total)
        total = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
        return -self.params.gravity * total.reshape(lead)

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
        n = self._sample_count(n)
        gen = rng(seed)
        if self.params.n_bodies <= RING_MAX_BODIES:
            return self._ring_states(n, gen)
        return self._cluster_states(n, gen)

    def _ring_states(self, n: int, gen: np.random.Generator) -> torch.Tensor:
        """``n`` perturbed rotating rings ``(n, D)`` (see the class docstring)."""
        p = self.params
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

    def _cluster_states(self, n: int, gen: np.random.Generator) -> torch.Tensor:
        """``n`` Plummer-like clusters on a jittered lattice ``(n, D)`` (see the class docstring)."""
        k, dim = self.params.n_bodies, self.params.dim
        sites = _lattice_candidates(k, dim)  # (M, dim): every site that can be among the k nearest a centre
        centre = gen.uniform(-0.5, 0.5, (n, 1, dim))
        dist2 = ((sites - centre) ** 2).sum(-1)  # (n, M)
        nearest = np.sort(np.argpartition(dist2, k - 1, axis=1)[:, :k], axis=1)  # a set: no ties almost surely
        order = np.argsort(gen.random((n, k)), axis=1)  # which body takes which site
        nearest = np.take_along_axis(nearest, order, axis=1)
        del dist2
        p = sites[nearest] - centre + gen.uniform(-LATTICE_JITTER, LATTICE_JITTER, (n, k, dim))
        r2 = (p**2).sum(-1)
        rho2 = r2.max(1, keepdims=True)
        s2 = PLUMMER_CUT**2 / (1 + PLUMMER_CUT**2)
        stretch = 1 / np.sqrt(1 - s2 * r2 / rho2)  # >= 1, radial slope >= 1 too: distances only grow
        p *= stretch[..., None]
        a2 = rho2 / s2  # squared Plummer radius
        sigma = (1 + r2 * stretch**2 / a2) ** -0.25
        basis, tri = np.linalg.qr(gen.standard_normal((n, dim, dim)))
        basis *= np.sign(np.diagonal(tri, axis1=-2, axis2=-1))[:, None, :]  # uniform on O(dim)
        q = p @ basis
        del p
        m = self.masses().numpy()
        q -= (m[:, None] * q).sum(1, keepdims=True) / m.sum()
        v = gen.standard_normal((n, k, dim))
        v *= sigma[..., None]
        v -= (m[:, None] * v).sum(1, keepdims=True) / m.sum()
        ratio = gen.uniform(*VIRIAL_RANGE, n)
        x = torch.from_numpy(np.concatenate([q.reshape(n, -1), v.reshape(n, -1)], axis=1))
        del q, v
        potential = self.potential_energy(x)
        kinetic = self.kinetic_energy(x)
        x[:, self.position_dim :] *= torch.sqrt(torch.from_numpy(ratio) * potential.abs() / (2 * kinetic))[:, None]
        unbound = self.kinetic_energy(x) + potential >= 0
        if bool(unbound.any()):  # pragma: no cover - 2K = |W| (0.9-1.1) makes K + W < 0
            raise PhysodeError("sampled an unbound n-body state; report this with the parameters and seed")
        return x


@functools.lru_cache(maxsize=16)
def _lattice_candidates(k: int, dim: int) -> np.ndarray:
    """Integer lattice points ``(M, dim)`` that can be among the ``k`` nearest a centre in ``[-1/2, 1/2]^dim``.

    With ``R`` the distance of the ``k``-th nearest point to the origin, the ``k`` nearest a centre ``c``
    lie within ``R + 2 |c| <= R + sqrt(dim)`` of the origin; those are the candidates (about 1.2-2 k).
    With ``K = ceil(k^(1/dim))`` the cube ``[-h, h]^dim``, ``h = ceil((K - 1) / 2) <= K / 2``, holds ``>= k``
    points within ``K sqrt(dim) / 2`` of the origin, so ``R + sqrt(dim) <= K sqrt(dim) + 2``: the box searched.
    """
    half = int(np.ceil(np.ceil(k ** (1 / dim)) * np.sqrt(dim))) + 2
    axis = np.arange(-half, half + 1, dtype=np.float64)
    grid = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    norm = np.linalg.norm(grid, axis=-1)
    reach = np.sort(norm)[k - 1] + np.sqrt(dim)
    sites = grid[norm <= reach]
    sites.setflags(write=False)
    return sites

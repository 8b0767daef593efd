"""The Lorenz-63 system: convection rolls reduced to three modes, the classic strange attractor."""

from __future__ import annotations

import dataclasses
import math

import torch

from ..simulate import simulate
from .base import System, check_parameter, rng, store

#: The classic parameters (Lorenz 1963) at which the published largest Lyapunov exponent applies.
CLASSIC = (10.0, 28.0, 8.0 / 3.0)

#: Largest Lyapunov exponent at the classic parameters, 1 / time unit: 0.9056 (Sprott, *Chaos and Time-Series
#: Analysis*, Oxford 2003, appendix of common chaotic systems; Viswanath, PhD thesis, Cornell 1998: 0.9056).
CLASSIC_LYAPUNOV_EXPONENT = 0.9056

#: Time over which sampled box points relax onto the attractor: they reach its neighbourhood within a few time
#: units and are then pulled in at the rate of the most negative Lyapunov exponent (-14.57 at the classic
#: parameters, Sprott 2003), so after this transient their distance to it is far below any tolerance used here.
TRANSIENT = 10.0


@dataclasses.dataclass(frozen=True)
class LorenzParams:
    """Prandtl number sigma, Rayleigh number over its critical value rho and the convection cell's geometric factor
    beta = 4 / (1 + a^2) (a: its aspect ratio), all > 0 and dimensionless, as is Lorenz's scaled time."""

    sigma: float = 10.0
    rho: float = 28.0
    beta: float = 8.0 / 3.0

    def __post_init__(self):
        for name in ("sigma", "rho", "beta"):
            store(self, name, check_parameter(name, getattr(self, name)))


class Lorenz(System):
    """The Lorenz-63 system (E. N. Lorenz, "Deterministic nonperiodic flow", J. Atmos. Sci. 20, 130, 1963).

    State ``(x, y, z)``:

        x' = sigma (y - x)
        y' = x (rho - z) - y
        z' = x y - beta z

    without control (``control_dim = 0``). At the classic parameters ``sigma = 10, rho = 28, beta = 8/3`` the
    motion is chaotic on the butterfly attractor, with largest Lyapunov exponent 0.9056 (:attr:`lyapunov_exponent`;
    Sprott 2003, Viswanath 1998); for other parameters :attr:`lyapunov_exponent` is None. The flow is bounded:
    ``V = x^2 + y^2 + (z - sigma - rho)^2`` decreases outside an ellipsoid, so every trajectory enters and stays in
    the ball ``V <= beta^2 (sigma + rho)^2 / (4 (beta - 1))`` when ``beta >= 2`` and ``sigma >= 1`` (radius 39.2 at
    the classic parameters; Sparrow, *The Lorenz Equations*, 1982, app. C, gives bounds of this kind). No energy
    is defined.

    Initial states (:meth:`sample_initial_states`): points near the attractor. Uniform points of the box
    ``|x|, |y| <= 0.7 rho``, ``0 <= z <= 1.8 rho`` (``|x|, |y| <= 19.6``, ``0 <= z <= 50.4`` at ``rho = 28``) are each
    integrated for :data:`TRANSIENT` time units (dopri5, tolerance 1e-6: any point near the attractor will do), and
    the end points returned; reproducible from the seed. (For ``rho`` below about 24 at ``sigma = 10, beta = 8/3``
    trajectories settle on a stable fixed point instead, and the samples lie near those.)
    """

    name = "lorenz"
    Params = LorenzParams
    state_names = ("x", "y", "z")
    control_dim = 0

    def __init__(self, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0):
        super().__init__(LorenzParams(sigma, rho, beta))

    @property
    def lyapunov_exponent(self) -> float | None:
        p = self.params
        classic = all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip((p.sigma, p.rho, p.beta), CLASSIC, strict=True))
        return CLASSIC_LYAPUNOV_EXPONENT if classic else None

    def vector_field(self, t, x, u=None):
        self._check_inputs(x, u)
        p = self.params
        a, b, c = x.unbind(-1)
        return torch.stack([(b - a) * p.sigma, a * (p.rho - c) - b, a * b - c * p.beta], dim=-1)

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        rho, gen = self.params.rho, rng(seed)
        box = gen.uniform(0.0, 1.0, (n, 3)) * [1.4 * rho, 1.4 * rho, 1.8 * rho] - [0.7 * rho, 0.7 * rho, 0.0]
        x0 = torch.from_numpy(box)
        times = torch.tensor([0.0, TRANSIENT], dtype=torch.float64)
        return simulate(self, x0, times, method="dopri5", rtol=1e-6, atol=1e-6, device="cpu")[:, -1].contiguous()

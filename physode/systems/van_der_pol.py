"""The Van der Pol oscillator: a limit cycle, and for large ``mu`` a stiff relaxation oscillation."""

from __future__ import annotations

import dataclasses

import torch

from .base import MechanicalSystem, check_parameter, rng, store

#: Above this ``mu`` the oscillator is :attr:`~VanDerPol.stiff`. On the slow branches of the relaxation cycle the
#: field's fast eigenvalue is about ``-mu (x^2 - 1)``, up to ``-3 mu``, while the cycle lasts about
#: ``(3 - 2 ln 2) mu``, so an explicit solver's stability-limited step count grows like ``mu^2`` per cycle
#: (scipy's RK45 at tolerance 1e-6: about 8,800 steps per cycle at ``mu = 100``, 870,000 at ``mu = 1000``).
STIFF_MU = 100.0


@dataclasses.dataclass(frozen=True)
class VanDerPolParams:
    """nonlinear damping strength mu >= 0 (dimensionless: time is in units of 1 / the linear angular frequency)."""

    mu: float = 1.0

    def __post_init__(self):
        store(self, "mu", check_parameter("mu", self.mu, allow_zero=True))


class VanDerPol(MechanicalSystem):
    """The Van der Pol oscillator (Van der Pol 1926, Phil. Mag. 2, 978), driven by an additive force.

    State ``(x, v)``:

        x' = v
        v' = mu (1 - x^2) v - x + u

    with an optional force ``u`` (``control_dim = 1``). The nonlinear damping pumps energy into small
    oscillations (``|x| < 1``) and drains it from large ones, so for ``mu > 0`` every state except the unstable
    origin approaches one limit cycle. At ``mu = 1`` it has period ``T = 6.6632868593231...`` and amplitude
    ``max x = 2.0086198608748...`` (the values of Hairer, Norsett & Wanner, *Solving Ordinary
    Differential Equations I*, 2nd ed. 1993, where this cycle is a standard test problem; the tests
    measure both). For large ``mu`` it is a relaxation oscillation of period about ``(3 - 2 ln 2) mu``
    (Strogatz, *Nonlinear Dynamics and Chaos*, sec. 7.5) and stiff (:attr:`stiff` above ``mu = 100``):
    integrate it with ``physode.simulate(..., method="radau")``. ``mu = 0`` is the harmonic oscillator.
    No energy is defined: for ``mu > 0`` nothing is conserved.

    Initial states (:meth:`sample_initial_states`): ``x ~ U(-3, 3)``, ``v ~ U(-3, 3)``, a box that holds
    states inside the ``mu = 1`` cycle (``|x| <= 2.01``, ``|v| <= 2.67``) and outside it.
    """

    name = "van_der_pol"
    Params = VanDerPolParams
    position_dim = 1
    control_dim = 1
    state_names = ("x", "v")

    def __init__(self, mu: float = 1.0):
        super().__init__(VanDerPolParams(mu))

    @property
    def conservative(self) -> bool:
        return self.params.mu == 0.0  # the base class reads a `damping` field, which this system does not have

    @property
    def stiff(self) -> bool:
        return self.params.mu > STIFF_MU

    @property
    def finite_everywhere(self) -> bool:
        return True  # a polynomial in the state plus the force

    def acceleration(self, t, q, v, u):
        a = (1 - q * q) * v * self.params.mu - q
        if u is not None:
            a = a + u
        return a

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        return torch.from_numpy(rng(seed).uniform(-3.0, 3.0, (n, 2)))

"""The :class:`System` interface that ground-truth simulators implement.

A system is a vector field ``dx/dt = f(t, x, u)`` batched over leading dimensions, with named states,
an optional control input, an energy where one is defined, a documented distribution of initial
states, and its parameters as a dataclass that round-trips through files (:meth:`System.spec`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch

from ..checks import affordable, positive_float, positive_int, seed_value
from ..errors import PhysodeError


def check_parameter(name: str, value, *, allow_zero: bool = False) -> float:
    """A physical parameter as a Python float: any real number (numpy's too) that is finite and > 0 (>= 0 with ``allow_zero``)."""
    return positive_float(value, f"parameter {name}", allow_zero=allow_zero)


def store(params, name: str, value) -> None:
    """Set field ``name`` of a frozen parameter dataclass to its checked value (from ``__post_init__``)."""
    object.__setattr__(params, name, value)


class System:
    """A ground-truth dynamical system ``dx/dt = f(t, x, u)``: the extension point for your own systems.

    Subclasses set ``name``, ``state_names`` (``state_dim`` follows from them unless set), ``control_dim``
    (default 0) and optionally ``Params`` (a frozen dataclass of the parameters), and implement
    :meth:`vector_field` and :meth:`sample_initial_states`; :meth:`energy` (and ``momentum``) where it
    applies. Without an ``__init__`` of their own they are built from keyword parameters,
    ``MySystem(alpha=2.0)``, which fill ``Params``. Register a subclass by name with
    :func:`physode.register_system` so that files naming it can be read with their true system.

    Attributes:
        params: the parameter dataclass (None for a system without parameters).
        state_dim: ``D``, the length of a state vector.
        control_dim: ``C``, the length of a control vector (0 when the system takes none).
        state_names: one name per state component.
        time_dependent: True when the field depends on ``t`` itself (e.g. a periodic forcing); learned models of
            it are then built with ``time_dependent=True``.
        lyapunov_exponent: the largest Lyapunov exponent (1 / time unit) where the system knows it (chaotic
            systems), else None; evaluation then also reports valid times in Lyapunov times.
        stiff: True when explicit solvers would crawl (simulate then asks for ``method="radau"``).
    """

    name: ClassVar[str]
    Params: ClassVar[type | None] = None
    control_dim: int = 0
    time_dependent: bool = False
    lyapunov_exponent: float | None = None

    def __init__(self, params=None, **values) -> None:
        if params is None and self.Params is not None:
            try:
                params = self.Params(**values)
            except TypeError as exc:  # an unknown or missing keyword
                raise PhysodeError(f"{type(self).__name__}: {exc}; its parameters are the fields of "
                                   f"{self.Params.__name__}") from None
        elif values:
            raise PhysodeError(f"{type(self).__name__} takes no parameters {sorted(values)} (it defines no Params dataclass)")
        self.params = params

    state_names: tuple[str, ...]

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def stiff(self) -> bool:
        """Whether explicit solvers would need impractically many steps (default False)."""
        return False

    def vector_field(self, t, x: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """``dx/dt`` at states ``x: (..., D)`` with controls ``u: (..., C)`` (zero when None).

        ``t`` is a scalar or broadcasts against ``x.shape[:-1]``. Works in float32 and float64.
        """
        raise NotImplementedError

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Total energy of states ``x: (..., D)``, shape ``(...)``."""
        raise NotImplementedError

    def sample_initial_states(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` initial states ``(n, D)`` in float64, drawn reproducibly from ``seed``."""
        raise NotImplementedError

    def _sample_count(self, n) -> int:
        """The ``n`` of :meth:`sample_initial_states`, checked: a whole number >= 1 whose states fit in memory."""
        n = positive_int(n, "n")
        affordable(4.0 * n * self.state_dim * 8, f"sample_initial_states({n})")  # float64, with room for temporaries
        return n

    def rollout(self, x0, t, u=None) -> torch.Tensor:
        """The true trajectories ``(N, T, D)`` from ``x0: (N, D)`` on ``t: (T,) | (N, T)``.

        The same call that every learned model answers; see :func:`physode.simulate` for ``u``. A tensor
        ``x0`` is integrated on its own device.
        """
        from ..simulate import simulate

        return simulate(self, x0, t, u=u, device=x0.device if isinstance(x0, torch.Tensor) else "auto")

    def spec(self) -> dict:
        """``{"name": ..., "params": {...}}``, plain JSON data that :func:`physode.system_from_spec` inverts."""
        values = {} if self.params is None else dataclasses.asdict(self.params)
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
        return {"name": self.name, "params": params}

    def _check_inputs(self, x: torch.Tensor, u: torch.Tensor | None) -> None:
        if x.shape[-1] != self.state_dim:
            raise PhysodeError(
                f"x must have last dimension {self.state_dim} for {self.name} "
                f"(states {', '.join(self.state_names)}), got shape {tuple(x.shape)}"
            )
        if u is not None and u.shape[-1] != self.control_dim:
            raise PhysodeError(
                f"u must have last dimension {self.control_dim} for {self.name}, got shape {tuple(u.shape)}"
            )

    def __repr__(self) -> str:
        values = {} if self.params is None else dataclasses.asdict(self.params)
        fields = ", ".join(f"{k}={v!r}" for k, v in values.items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.params == other.params

    def __hash__(self) -> int:
        return hash((type(self), self.params))


class MechanicalSystem(System):
    """A second-order system with state ``[q, v]`` (positions then velocities) and ``dq/dt = v``.

    Subclasses implement :meth:`acceleration`. When :attr:`conservative` is true the acceleration
    does not depend on ``v`` and the symplectic integrators of :func:`physode.simulate` apply.
    """

    position_dim: int

    @property
    def state_dim(self) -> int:
        return 2 * self.position_dim

    @property
    def conservative(self) -> bool:
        """True when the force depends on positions (and control) only: no damping."""
        return getattr(self.params, "damping", 0.0) == 0.0

    @property
    def finite_everywhere(self) -> bool:
        """True when the acceleration is finite at every finite state and control (no singularity); the
        default is the cautious False. With a speed clip, semi-implicit Euler then never leaves finite states."""
        return False

    def acceleration(self, t, q: torch.Tensor, v: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
        """``dv/dt`` for positions ``q: (..., P)``, velocities ``v: (..., P)``, controls ``u: (..., C)``."""
        raise NotImplementedError

    def vector_field(self, t, x, u=None):
        self._check_inputs(x, u)
        q, v = x[..., : self.position_dim], x[..., self.position_dim :]
        return torch.cat([v, self.acceleration(t, q, v, u)], dim=-1)


def rng(seed) -> np.random.Generator:
    """A numpy generator from an int seed (the one place systems turn seeds into randomness)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed_value(seed))


def defines_energy(system) -> bool:
    """Whether ``system.energy`` is defined (it raises NotImplementedError where not)."""
    try:
        system.energy(torch.zeros(1, system.state_dim, dtype=torch.float64))
    except NotImplementedError:
        return False
    return True

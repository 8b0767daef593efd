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
    """A ground-truth dynamical system ``dx/dt = f(t, x, u)``.

    Subclasses set ``name`` and ``Params`` (a dataclass) and implement :meth:`vector_field`,
    :meth:`energy` and :meth:`sample_initial_states`.

    Attributes:
        params: the parameter dataclass.
        state_dim: ``D``, the length of a state vector.
        control_dim: ``C``, the length of a control vector (0 when the system takes none).
        state_names: one name per state component.
    """

    name: ClassVar[str]
    Params: ClassVar[type]

    def __init__(self, params) -> None:
        self.params = params

    state_dim: int
    control_dim: int
    state_names: tuple[str, ...]

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
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.params).items()}
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
        fields = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.params).items())
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

"""A system from a plain function: :class:`ODESystem`, the short way to bring your own ODE."""

from __future__ import annotations

import inspect
import math

import numpy as np
import torch

from ..checks import as_float_tensor, check_interface
from ..errors import PhysodeError
from .base import System, rng


class ODESystem(System):
    """``dx/dt = f(t, x, u)`` from a function, with named states, usable wherever a built-in system is.

    Args:
        f: ``f(t, x, u) -> dx/dt`` written with torch operations on batched states ``x: (..., D)`` (float32 or
            float64: keep the states' dtype and device), ``t`` a number or a tensor broadcasting against
            ``x.shape[:-1]``, ``u: (..., C)`` or None (always None when ``control_dim = 0``).
        state_names: one name per state; ``D = len(state_names)``.
        control_dim: ``C``, the number of control inputs (default 0).
        energy: optional ``energy(x: (..., D)) -> (...)``, for energy-drift scores and figures.
        initial_states: how :meth:`sample_initial_states` draws starts: a box, one ``(low, high)`` pair per state
            (uniform in it), or a callable ``(n, generator: numpy.random.Generator) -> (n, D)``; None: starts must
            always be given (sampling then says so).
        name: the name files and the registry know it by (default: ``f.__name__``).
        time_dependent: True when ``f`` depends on ``t`` itself (learned models then take ``t`` as an input).
        lyapunov_exponent: its largest Lyapunov exponent, where known (valid times are then also reported in
            Lyapunov times).
        stiff: True when explicit solvers would crawl (the truth is then solved with ``"radau"``).

    An ODESystem has no parameters to rebuild it from, so a file records only its name: register it with
    :func:`physode.register_system` (or name it ``module:obj`` on the command line) to read such files with
    their true system.

    Example::

        def duffing(t, x, u):
            q, v = x[..., 0], x[..., 1]
            return torch.stack([v, -0.1 * v - q - q**3], dim=-1)

        system = physode.ODESystem(duffing, state_names=("q", "v"), initial_states=[(-1, 1), (-1, 1)])
    """

    def __init__(self, f, state_names, *, control_dim: int = 0, energy=None, initial_states=None, name: str | None = None,
                 time_dependent: bool = False, lyapunov_exponent: float | None = None, stiff: bool = False):
        super().__init__()
        if not callable(f):
            raise PhysodeError(f"f must be a function f(t, x, u) -> dx/dt written with torch operations, got {f!r}")
        self.f = f
        self.name = getattr(f, "__name__", None) if name is None else name
        self.state_names = tuple(state_names) if isinstance(state_names, (list, tuple)) else state_names
        self.control_dim = control_dim
        check_interface(self)
        self.energy_function = energy
        if energy is not None and not callable(energy):
            raise PhysodeError(f"energy must be a function energy(x) -> (...) or None, got {energy!r}")
        self.initial_states = _initial_states(initial_states, self.state_dim)
        self.time_dependent = bool(time_dependent)
        self._stiff = bool(stiff)
        exponent_ok = isinstance(lyapunov_exponent, (int, float)) and math.isfinite(lyapunov_exponent)
        if lyapunov_exponent is not None and not exponent_ok:
            raise PhysodeError(f"lyapunov_exponent must be a finite number or None, got {lyapunov_exponent!r}")
        self.lyapunov_exponent = None if lyapunov_exponent is None else float(lyapunov_exponent)
        try:
            inspect.signature(f).bind(0.0, None, None)
        except TypeError:
            raise PhysodeError(f"f must take three arguments f(t, x, u) (u is None without controls), got {f!r} with "
                               f"signature {inspect.signature(f)}") from None
        except ValueError:  # a builtin without a signature: found out at the first call
            pass

    @property
    def stiff(self) -> bool:
        return self._stiff

    def vector_field(self, t, x, u=None):
        self._check_inputs(x, u)
        return self.f(t, x, u)

    def energy(self, x):
        if self.energy_function is None:
            raise NotImplementedError(f"system {self.name!r} defines no energy")
        return self.energy_function(x)

    def sample_initial_states(self, n, seed=0):
        n = self._sample_count(n)
        if self.initial_states is None:
            raise PhysodeError(f"system {self.name!r} has no initial-state distribution to sample from; pass "
                               "initial_states=[(low, high), ...] (one pair per state) or a function (n, generator) -> "
                               "(n, D) to ODESystem, or give the initial states yourself")
        low_high, sampler = self.initial_states
        gen = rng(seed)
        if sampler is None:
            low, high = low_high
            return torch.from_numpy(gen.uniform(low, high, (n, self.state_dim)))
        drawn = as_float_tensor(sampler(n, gen), f"the initial_states function of {self.name!r}")
        if drawn.shape != (n, self.state_dim):
            raise PhysodeError(f"the initial_states function of system {self.name!r} returned shape {tuple(drawn.shape)} "
                               f"for n={n}; it must return (n, {self.state_dim})")
        return drawn

    def __repr__(self) -> str:
        return f"ODESystem({self.name!r}, state_names={self.state_names}, control_dim={self.control_dim})"

    def __eq__(self, other) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


def _initial_states(given, dim: int):
    """``(low_high, sampler)``: a box as ``((low (D,), high (D,)), None)``, a callable as ``(None, callable)``, or None."""
    if given is None:
        return None
    if callable(given):
        return None, given
    try:
        box = np.asarray(given, dtype=np.float64)
    except (TypeError, ValueError):
        box = None
    if box is None or box.shape != (dim, 2) or not np.isfinite(box).all() or (box[:, 0] > box[:, 1]).any():
        raise PhysodeError(f"initial_states must be a box of {dim} (low, high) pairs with low <= high, one per state, or a "
                           f"function (n, generator) -> (n, {dim}); got {given!r}")
    return (box[:, 0], box[:, 1]), None

"""Accurate, batched ground truth: integrate a :class:`~physode.systems.System` in float64.

:func:`simulate` checks its inputs, then integrates all trajectories in batched torchdiffeq solves
(see :mod:`physode.integrate`: per-trajectory error control, one grid per trajectory, exact output
steps, zero-order-hold controls), with tolerances tight enough for ground truth. For long runs of
conservative mechanical systems (n-body) the symplectic fixed-step methods ``"leapfrog"`` (2nd
order) and ``"yoshida4"`` (4th order) keep the energy error bounded.
"""

from __future__ import annotations

import contextlib

import torch
from tqdm.auto import tqdm

from .checks import all_finite, positive_float, positive_int, rollout_inputs
from .devices import resolve_device
from .errors import PhysodeError, SolverError, unknown_name
from .integrate import ADAPTIVE_METHODS, FIXED_METHODS, solve_on_grids, substeps

_YOSHIDA_W1 = 1 / (2 - 2 ** (1 / 3))
_YOSHIDA_W0 = -(2 ** (1 / 3)) / (2 - 2 ** (1 / 3))
#: Symplectic drift-kick compositions: position-update weights, then velocity-update weights.
SYMPLECTIC_METHODS = {
    "leapfrog": ((0.5, 0.5), (1.0, 0.0)),
    "yoshida4": (
        (_YOSHIDA_W1 / 2, (_YOSHIDA_W0 + _YOSHIDA_W1) / 2, (_YOSHIDA_W0 + _YOSHIDA_W1) / 2, _YOSHIDA_W1 / 2),
        (_YOSHIDA_W1, _YOSHIDA_W0, _YOSHIDA_W1, 0.0),
    ),
}
METHODS = ADAPTIVE_METHODS + FIXED_METHODS + tuple(SYMPLECTIC_METHODS)

DEFAULT_METHOD = "dopri8"
DEFAULT_RTOL = 1e-14
DEFAULT_ATOL = 1e-14


def refuse_symplectic_misuse(system, method: str) -> None:
    """A PhysodeError when ``method`` is symplectic and ``system`` is not conservative (it would integrate the wrong ODE)."""
    if method in SYMPLECTIC_METHODS and not getattr(system, "conservative", False):
        raise PhysodeError(
            f"method {method!r} needs a conservative mechanical system (forces independent of velocity); "
            "set damping=0 or use an adaptive method such as 'dopri8'"
        )


def simulate(
    system,
    x0,
    t,
    u=None,
    *,
    method: str = DEFAULT_METHOD,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    step_size: float | None = None,
    batch_size: int = 1024,
    max_steps: int = 100_000,
    progress: bool = False,
    device="auto",
) -> torch.Tensor:
    """Integrate ``system`` from ``x0`` and return the states at times ``t``, in float64.

    Args:
        system: a :class:`~physode.systems.System` (anything with ``vector_field``, ``state_dim``,
            ``control_dim``; symplectic methods also need ``acceleration`` and ``conservative``).
        x0: initial states ``(N, D)``, or one state ``(D,)``.
        t: output times, one shared grid ``(T,)`` or one grid per trajectory ``(N, T)``; strictly
            increasing, ``x0`` is the state at the first time.
        u: controls, or None for none: ``(N, C)`` held for the whole run, or ``(N, T-1, C)`` with
            ``u[:, k]`` held constant over ``[t_k, t_{k+1})`` (zero-order hold). For one state ``x0: (D,)``
            drop the leading N.
        method: an adaptive torchdiffeq method (default ``"dopri8"``), a fixed-step one (``"rk4"`` ...)
            or a symplectic one (``"leapfrog"``, ``"yoshida4"``); see ``physode.simulate.METHODS``.
        rtol, atol: tolerances of adaptive methods, met by every trajectory on its own. The defaults
            (1e-14) give ground truth: measured against scipy's DOP853 at 3e-14, about 1e-11 max abs
            error over 10 time units on the pendulum and below 1e-8 on chaotic 3- and 4-body runs.
            They are tight because torchdiffeq's ``dopri8`` error estimate is optimistic on chaotic
            problems: at 1e-12 the 3-body runs were off by 4.2e-8 (experiments/ground_truth.py).
        step_size: the largest step of fixed-step and symplectic methods (required for them). Each output
            interval is split into equal substeps, as many as that needs.
        batch_size: trajectories integrated together per solve (bounds memory).
        max_steps: give up after this many adaptive steps within one output interval (a guard against
            stiff or colliding runs that would otherwise crawl forever).
        progress: show a progress bar over the output intervals of all batches.
        device: where to integrate (``"auto"``: the GPU when present, see :mod:`physode.devices`); the
            inputs are moved there once and the result stays there.

    Returns:
        ``(N, T, D)`` float64 trajectories (``(T, D)`` for one state) on ``device``, ``[:, 0] == x0``.

    Gradients: autograd records the solve only when they can flow (grad mode on, and ``x0``, ``t``, ``u`` or the
    parameters of a ``torch.nn.Module`` system require grad); otherwise it runs in ``torch.inference_mode``,
    which is faster. The result is an ordinary tensor either way.
    """
    if not all(hasattr(system, name) for name in ("vector_field", "state_dim", "control_dim")):
        raise PhysodeError(f"system must be a physode System (see physode.make_system), got {system!r}")
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    x0, times, u, single = rollout_inputs(x0, t, u, system.state_dim, system.control_dim)
    device = resolve_device(device)
    x0, times = x0.to(device), times.to(device)
    u = None if u is None else u.to(device)
    n = x0.shape[0]
    rtol = positive_float(rtol, "rtol")
    atol = positive_float(atol, "atol")
    batch_size = positive_int(batch_size, "batch_size")
    max_steps = positive_int(max_steps, "max_steps")
    if method not in ADAPTIVE_METHODS and step_size is None:
        raise PhysodeError(f"method {method!r} takes fixed steps: pass step_size (e.g. step_size=0.01)")
    step_size = None if step_size is None else positive_float(step_size, "step_size")
    refuse_symplectic_misuse(system, method)

    chunks = range(0, n, batch_size)
    intervals = times.shape[1] - 1
    out = []
    tracked = contextlib.nullcontext() if _gradients_flow(system, x0, times, u) else torch.inference_mode()
    with tracked, tqdm(total=len(chunks) * intervals, desc=f"simulate {getattr(system, 'name', '')}", unit="interval",
              disable=not progress) as bar:
        for start in chunks:
            part = slice(start, start + batch_size)
            uk = None if u is None else u[part]
            if method in SYMPLECTIC_METHODS:
                out.append(_symplectic(system, x0[part], times[part], uk, method, step_size, bar))
            else:
                out.append(solve_on_grids(system.vector_field, x0[part], times[part], uk, method=method, rtol=rtol,
                                          atol=atol, step_size=step_size, max_steps=max_steps,
                                          bar=bar if progress else None))  # no per-evaluation bookkeeping
    result = torch.cat(out)  # outside inference mode: an ordinary tensor, free to modify or differentiate later
    return result[0] if single else result


def _gradients_flow(system, x0, times, u) -> bool:
    """Whether autograd must record the solve: grad mode on and ``x0``, the times, ``u`` or the system's parameters
    need grad.

    Otherwise the solve runs in ``torch.inference_mode``, which skips autograd's bookkeeping on every small
    operation (about an eighth of a cheap field's solve time).
    """
    if not torch.is_grad_enabled():
        return False
    parameters = system.parameters() if isinstance(system, torch.nn.Module) else ()
    return (x0.requires_grad or times.requires_grad or (u is not None and u.requires_grad)
            or any(p.requires_grad for p in parameters))


def _symplectic(system, x0, times, u, method, step_size, bar):
    """Drift-kick composition (leapfrog or Yoshida's 4th-order) on each trajectory's own grid."""
    drifts, kicks = SYMPLECTIC_METHODS[method]
    per = substeps(times, step_size)
    p = system.position_dim
    q, v = x0[:, :p].clone(), x0[:, p:].clone()
    out = [x0]
    for k in range(times.shape[1] - 1):
        h = (times[:, k + 1] - times[:, k]).unsqueeze(1) / per
        uk = None if u is None else u[:, k]
        for j in range(per):
            t = times[:, k : k + 1] + j * h
            for c, d in zip(drifts, kicks, strict=True):
                q = q + c * h * v
                if d:
                    v = v + d * h * system.acceleration(t.squeeze(1), q, v, uk)
        out.append(torch.cat([q, v], dim=1))
        bar.update(1)
    y = torch.stack(out, dim=1)
    if not all_finite(y):
        raise SolverError(f"the {method} run produced non-finite states; use a smaller step_size")
    return y

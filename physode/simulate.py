"""Accurate, batched ground truth: integrate a :class:`~physode.systems.System` in float64.

:func:`simulate` checks its inputs, then integrates all trajectories in batched torchdiffeq solves
(see :mod:`physode.integrate`: per-trajectory error control, one grid per trajectory, exact output
steps, zero-order-hold controls), with tolerances tight enough for ground truth. For long runs of
conservative mechanical systems (n-body) the symplectic fixed-step methods ``"leapfrog"`` (2nd
order) and ``"yoshida4"`` (4th order) keep the energy error bounded. Stiff systems (``system.stiff``, e.g. the
Van der Pol oscillator at large ``mu``) are integrated by ``"radau"``: scipy's implicit Radau IIA method of order 5
(Hairer & Wanner, *Solving Ordinary Differential Equations II*, 1996, sec. IV.8), one trajectory at a time,
with the Jacobian from torch's autodiff of the system's field.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from scipy.integrate import Radau
from tqdm.auto import tqdm

from .checks import all_finite, check_field, positive_float, positive_int, rollout_inputs
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
#: Implicit methods for stiff systems, solved by scipy (float64, on the CPU, no gradients).
IMPLICIT_METHODS = ("radau",)
METHODS = ADAPTIVE_METHODS + FIXED_METHODS + tuple(SYMPLECTIC_METHODS) + IMPLICIT_METHODS

DEFAULT_METHOD = "dopri8"
DEFAULT_RTOL = 1e-14
DEFAULT_ATOL = 1e-14
#: radau's tolerances when the caller gives none. Tighter ones are honoured but cost more: on the Van der Pol
#: oscillator at mu = 1000 each factor of 100 in the tolerance costs scipy's Radau about 3 times the field
#: evaluations, and at 1e-10 its error at the output times stays near 1e-10 against a 1e-13 reference.
RADAU_RTOL = 1e-10
RADAU_ATOL = 1e-10
#: The smallest rtol that scipy's Radau accepts (100 machine epsilons); smaller ones are raised to it.
RADAU_MIN_RTOL = 100 * float(np.finfo(np.float64).eps)


def refuse_symplectic_misuse(system, method: str) -> None:
    """A PhysodeError when ``method`` is symplectic and ``system`` is not conservative (it would integrate the wrong ODE)."""
    if method in SYMPLECTIC_METHODS and not getattr(system, "conservative", False):
        raise PhysodeError(
            f"method {method!r} needs a conservative mechanical system (forces independent of velocity); "
            "set damping=0 or use an adaptive method such as 'dopri8'"
        )


def default_method(system) -> str:
    """The method :func:`simulate` uses for ``system`` when the caller names none: ``"radau"`` for a stiff
    system, ``"dopri8"`` (``DEFAULT_METHOD``) otherwise."""
    return IMPLICIT_METHODS[0] if getattr(system, "stiff", False) else DEFAULT_METHOD


def default_tolerances(method: str) -> tuple[float, float]:
    """``(rtol, atol)`` that :func:`simulate` uses with ``method`` when the caller gives none."""
    return (RADAU_RTOL, RADAU_ATOL) if method in IMPLICIT_METHODS else (DEFAULT_RTOL, DEFAULT_ATOL)


def refuse_stiff_misuse(system, method: str) -> None:
    """A PhysodeError when ``system`` is stiff and ``method`` is explicit (it would crawl through tiny steps)."""
    if method not in IMPLICIT_METHODS and getattr(system, "stiff", False):
        raise PhysodeError(
            f"system {system!r} is stiff: the explicit method {method!r} would need impractically many steps; "
            'pass method="radau"'
        )


def simulate(
    system,
    x0,
    t,
    u=None,
    *,
    method: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
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
        method: None (the default: ``"radau"`` for a stiff system, else ``"dopri8"``; see :func:`default_method`),
            an adaptive torchdiffeq method, a fixed-step one (``"rk4"`` ...),
            a symplectic one (``"leapfrog"``, ``"yoshida4"``) or the implicit ``"radau"`` for stiff systems;
            see ``physode.simulate.METHODS``. A system whose ``stiff`` is true takes ``"radau"`` only: any
            other method raises a PhysodeError before integrating.
        rtol, atol: tolerances of adaptive methods and of ``"radau"``, met by every trajectory on its own.
            None (the default) means 1e-14 (``DEFAULT_RTOL``, ``DEFAULT_ATOL``) for the torchdiffeq methods and
            1e-10 (``RADAU_RTOL``, ``RADAU_ATOL``) for ``"radau"``, whose rtol is at least ``RADAU_MIN_RTOL``
            (2.2e-14, scipy's floor). The torchdiffeq defaults give ground truth: measured against scipy's DOP853
            at 3e-14, about 1e-11 max abs error over 10 time units on the pendulum and below 1e-8 on chaotic 3-
            and 4-body runs. They are tight because torchdiffeq's ``dopri8`` error estimate is optimistic on
            chaotic problems: at 1e-12 the 3-body runs were off by 4.2e-8 (experiments/ground_truth.py).
        step_size: the largest step of fixed-step and symplectic methods (required for them). Each output
            interval is split into equal substeps, as many as that needs. Adaptive methods and ``"radau"``
            ignore it.
        batch_size: trajectories integrated together per solve (bounds memory); ``"radau"`` solves one
            trajectory at a time (scipy) and uses it for the progress bar only.
        max_steps: give up after this many adaptive (or radau) steps within one output interval (a guard
            against stiff or colliding runs that would otherwise crawl forever).
        progress: show a progress bar over the output intervals of all batches.
        device: where to integrate (``"auto"``: the GPU when present, see :mod:`physode.devices`); the
            inputs are moved there once and the result stays there. ``"radau"`` evaluates the field on the
            CPU (in scipy's loop) and returns its result on ``device``.

    Returns:
        ``(N, T, D)`` float64 trajectories (``(T, D)`` for one state) on ``device``, ``[:, 0] == x0``.

    Gradients: autograd records the solve only when they can flow (grad mode on, and ``x0``, ``t``, ``u`` or the
    parameters of a ``torch.nn.Module`` system require grad); otherwise it runs in ``torch.inference_mode``,
    which is faster. The result is an ordinary tensor either way. ``"radau"`` records no gradients (scipy) and
    refuses inputs that need them.
    """
    if not all(hasattr(system, name) for name in ("vector_field", "state_dim", "control_dim")):
        raise PhysodeError(f"system must be a physode System (see physode.make_system), got {system!r}")
    if method is None:
        method = default_method(system)
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    refuse_stiff_misuse(system, method)  # at once, before any checks or set-up
    x0, times, u, single = rollout_inputs(x0, t, u, system.state_dim, system.control_dim)
    device = resolve_device(device)
    x0, times = x0.to(device), times.to(device)
    u = None if u is None else u.to(device)
    n = x0.shape[0]
    implicit = method in IMPLICIT_METHODS
    default_rtol, default_atol = default_tolerances(method)
    rtol = positive_float(default_rtol if rtol is None else rtol, "rtol")
    atol = positive_float(default_atol if atol is None else atol, "atol")
    batch_size = positive_int(batch_size, "batch_size")
    max_steps = positive_int(max_steps, "max_steps")
    if method not in ADAPTIVE_METHODS + IMPLICIT_METHODS and step_size is None:
        raise PhysodeError(f"method {method!r} takes fixed steps: pass step_size (e.g. step_size=0.01)")
    step_size = None if step_size is None else positive_float(step_size, "step_size")
    refuse_symplectic_misuse(system, method)
    if not getattr(system, "__dict__", {}).get("_field_checked"):  # once per system: a bad field fails here
        check_field(system, times[0, 0], x0[:4], None if u is None else u[:4, 0])

    chunks = range(0, n, batch_size)
    intervals = times.shape[1] - 1
    out = []
    flow = _gradients_flow(system, x0, times, u)
    if implicit and flow:
        raise PhysodeError(f"method {method!r} solves with scipy and records no gradients; pass inputs that do not "
                           "require grad (e.g. x0.detach()), or use an explicit method such as 'dopri8'")
    tracked = contextlib.nullcontext() if flow else torch.inference_mode()
    with tracked, tqdm(total=len(chunks) * intervals, desc=f"simulate {getattr(system, 'name', '')}", unit="interval",
              disable=not progress) as bar:
        for start in chunks:
            part = slice(start, start + batch_size)
            uk = None if u is None else u[part]
            if method in SYMPLECTIC_METHODS:
                out.append(_symplectic(system, x0[part], times[part], uk, method, step_size, bar))
            elif implicit:
                out.append(_radau(system, x0[part], times[part], uk, max(rtol, RADAU_MIN_RTOL), atol, max_steps))
                bar.update(intervals)
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
            elapsed = 0.0
            for c, d in zip(drifts, kicks, strict=True):
                q = q + c * h * v
                elapsed += c
                if d:
                    # time drifts with the positions (t is a coordinate of the extended phase space), so a forcing
                    # that depends on t is kicked at the time the drifts have reached: the method keeps its order
                    v = v + d * h * system.acceleration((t + elapsed * h).squeeze(1), q, v, uk)
        out.append(torch.cat([q, v], dim=1))
        bar.update(1)
    y = torch.stack(out, dim=1)
    if not all_finite(y):
        raise SolverError(f"the {method} run produced non-finite states; use a smaller step_size")
    return y


def _radau(system, x0, times, u, rtol, atol, max_steps):
    """scipy's Radau IIA (order 5) on each trajectory's own grid, ``x0: (N, D)``, ``times: (N, T)``,
    ``u: (N, T-1, C) | None``; the states ``(N, T, D)`` in float64 on ``x0``'s device.

    Without controls (or with one control for all intervals) each trajectory is one solve whose outputs come
    from the method's continuous extension between steps (as ``solve_ivp``'s ``t_eval``). Controls that change
    between intervals are held over each: one solve per interval, from the state the last one reached.
    """
    x0n, tn = x0.detach().cpu().numpy(), times.detach().cpu().numpy()
    un = None if u is None else u.detach().cpu().numpy()
    out = np.empty((*tn.shape, x0n.shape[1]))
    for i in range(len(x0n)):
        if un is None or (un[i] == un[i, :1]).all():
            out[i] = _radau_solve(system, tn[i], x0n[i], None if un is None else un[i, 0], rtol, atol, max_steps)
            continue
        out[i, 0] = x0n[i]
        for k in range(tn.shape[1] - 1):
            out[i, k + 1] = _radau_solve(system, tn[i, k : k + 2], out[i, k], un[i, k], rtol, atol, max_steps)[-1]
    return torch.from_numpy(out).to(x0.device)


def _radau_solve(system, t, y0, u, rtol, atol, max_steps):
    """One trajectory from ``y0: (D,)`` over the times ``t: (T,)`` with the control ``u: (C,) | None`` held; ``(T, D)``."""
    dim = len(y0)
    ut = None if u is None else torch.from_numpy(u)
    many = None if u is None else ut.expand(dim, len(u))
    eye = torch.eye(dim, dtype=torch.float64)

    def fun(s, y):
        return system.vector_field(s, torch.from_numpy(y), ut).numpy()

    def jac(s, y):
        # one batched backward pass: D copies of the state, the field's row j weighted by e_j, give row j of J.
        # Reverse mode: cheaper per call than torch.func's forward mode, whose first use also loads a large module
        with torch.inference_mode(False), torch.enable_grad():
            rows = torch.from_numpy(y).repeat(dim, 1).requires_grad_()
            controls = None if many is None else many.clone()  # made in inference mode: autograd cannot save it
            return torch.autograd.grad(system.vector_field(s, rows, controls), rows, eye.clone())[0].numpy()

    solver = Radau(fun, float(t[0]), np.array(y0), float(t[-1]), rtol=rtol, atol=atol, jac=jac)
    out = np.empty((len(t), dim))
    out[0], k, steps = y0, 1, 0
    while k < len(t):
        message = solver.step()
        if solver.status == "failed" or not np.isfinite(solver.y).all():
            raise SolverError(f"the radau solve failed at t={solver.t:.6g} ({message or 'non-finite state'}); the "
                              "system may blow up there: check x0 and the parameters, or loosen rtol/atol")
        reached = int(np.searchsorted(t, solver.t, side="right"))  # the output times up to the step's end
        if reached > k:
            out[k:reached] = solver.dense_output()(t[k:reached]).T
            if t[reached - 1] == solver.t:  # on the step itself: its own state, not the continuous extension
                out[reached - 1] = solver.y
            k, steps = reached, 0
        else:
            steps += 1
            if steps >= max_steps:
                raise SolverError(f"the radau solve took more than max_steps={max_steps} steps within one output "
                                  f"interval (near t={solver.t:.6g}); raise max_steps or loosen rtol/atol")
    return out

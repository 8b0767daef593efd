"""Problems with exact solutions and independent references, shared by the tests.

Nothing here calls physode's solvers: these are the yardsticks physode is measured against.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import ellipj, ellipk


def spring_mass_exact(stiffness, mass, damping, n_masses, x0, t):
    """Closed-form (normal-mode) solution of the walled spring chain, ``x0: (N, 2n)``, ``t: (T,)`` -> ``(N, T, 2n)``.

    In the modes ``z = V^T q`` of ``K = (k/m) tridiag(-1, 2, -1)`` each mode is a damped oscillator
    ``z'' + c z' + lambda z = 0`` (underdamped: ``c^2 < 4 lambda``).
    """
    n = n_masses
    idx = np.arange(1, n + 1)
    modes = np.sqrt(2 / (n + 1)) * np.sin(np.outer(idx, idx) * np.pi / (n + 1))  # orthonormal, symmetric
    lam = 4 * stiffness / mass * np.sin(idx * np.pi / (2 * (n + 1))) ** 2
    gamma = damping / 2
    omega = np.sqrt(lam - gamma**2)
    z0, w0 = x0[:, :n] @ modes, x0[:, n:] @ modes
    b = (w0 + gamma * z0) / omega
    tt = t[None, :, None]
    decay = np.exp(-gamma * tt)
    cos, sin = np.cos(omega * tt), np.sin(omega * tt)
    z = decay * (z0[:, None] * cos + b[:, None] * sin)
    w = decay * ((-gamma * z0[:, None] + b[:, None] * omega) * cos + (-gamma * b[:, None] - z0[:, None] * omega) * sin)
    return np.concatenate([z @ modes.T, w @ modes.T], axis=-1)


def pendulum_exact(gravity, length, theta0, t):
    """Undamped pendulum released at rest from ``theta0`` (|theta0| < pi): ``(T, 2)``.

    ``theta = 2 arcsin(k cd(w t | m))``, ``omega = -2 k w sqrt(1 - m) sn / dn``, ``k = sin(theta0 / 2)``, ``m = k^2``.
    """
    k = np.sin(theta0 / 2)
    m = k**2
    w = np.sqrt(gravity / length)
    sn, cn, dn, _ = ellipj(w * t, m)
    theta = 2 * np.arcsin(k * cn / dn)
    omega = -2 * k * w * np.sqrt(1 - m) * sn / dn
    return np.stack([theta, omega], axis=-1)


def pendulum_period(gravity, length, theta0):
    """Exact period ``4 K(m) / sqrt(g / l)`` with ``m = sin^2(theta0 / 2)``."""
    return 4 * ellipk(np.sin(theta0 / 2) ** 2) / np.sqrt(gravity / length)


def kepler_circular(masses, separation, gravity, t, dim=2):
    """Two bodies on circular orbits about their centre of mass at the origin: initial state and ``(T, 4 dim)`` exact."""
    m1, m2 = masses
    w = np.sqrt(gravity * (m1 + m2) / separation**3)
    r1, r2 = separation * m2 / (m1 + m2), separation * m1 / (m1 + m2)
    c, s = np.cos(w * t), np.sin(w * t)
    pad = [np.zeros_like(t)] * (dim - 2)
    q1 = np.stack([r1 * c, r1 * s, *pad], -1)
    q2 = -q1 * r2 / r1
    v1 = np.stack([-r1 * w * s, r1 * w * c, *pad], -1)
    v2 = -v1 * r2 / r1
    path = np.concatenate([q1, q2, v1, v2], axis=-1)
    return path[0], path


def scipy_reference(system, x0, t, u=None, rtol=1e-12, atol=1e-12):
    """Per-trajectory scipy DOP853 solutions, ``x0: (N, D)``, ``t: (T,) | (N, T)``, ``u: (N, T-1, C) | None``.

    Controls are held constant over each interval (zero-order hold), one solve per interval.
    """
    import torch

    x0 = np.asarray(x0, dtype=np.float64)
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (len(x0), np.shape(t)[-1]))
    out = np.empty((len(x0), t.shape[1], x0.shape[1]))
    for i, xi in enumerate(x0):
        def field(time, x, ui=None):
            uu = None if ui is None else torch.from_numpy(ui)
            return system.vector_field(time, torch.from_numpy(x), uu).numpy()

        if u is None:
            sol = solve_ivp(field, (t[i, 0], t[i, -1]), xi, method="DOP853", t_eval=t[i], rtol=rtol, atol=atol)
            out[i] = sol.y.T
            continue
        out[i, 0] = xi
        for k in range(t.shape[1] - 1):
            ui = np.asarray(u[i, k], dtype=np.float64)
            sol = solve_ivp(field, (t[i, k], t[i, k + 1]), out[i, k], method="DOP853", rtol=rtol, atol=atol, args=(ui,))
            out[i, k + 1] = sol.y[:, -1]
    return out

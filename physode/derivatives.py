"""State derivatives estimated from observations, for fitting a vector field without an ODE solver.

:func:`estimate_derivatives` turns a dataset's training observations into samples ``(t, x, dx/dt, u)``:

* ``"stencil"``: a central finite-difference stencil of ``points`` observations (order ``points - 1``, one-sided
  near the ends with the same order), for regular, noise-free grids; its weights come from the Taylor
  conditions on the stencil's offsets (:func:`stencil_weights`), so any grid spacing and order work alike.
  Samples where it disagrees with the stencil two orders lower (the grid does not resolve the motion there,
  e.g. a close encounter of two bodies) are left out.
* ``"interpolate"``: scipy's cubic interpolating spline (:func:`scipy.interpolate.make_interp_spline`, ``k=3``)
  per trajectory and state, differentiated; for noise-free data on irregular grids (it follows noise wildly).
  Cubic rather than quintic: as accurate on dense grids, and on sparse random ones (two times close together)
  the quintic one swings far off between observations.
* ``"spline"``: scipy's smoothing spline (:func:`scipy.interpolate.make_smoothing_spline`, its smoothing chosen
  by generalised cross-validation) per trajectory and state, differentiated; for noisy data, and for recorded
  data, whose noise is unknown.
* ``"auto"`` (the default): on noise-free simulated data the stencil (regular grids) or the interpolating spline
  (irregular ones), else the smoothing spline.

Controls held per interval (zero-order hold) make the trajectory's derivative jump at every observation, so no
stencil or spline across observations is right there. With controls the samples are the interval midpoints
instead: ``dx/dt ~ (x_{k+1} - x_k) / (t_{k+1} - t_k)`` at ``x ~ (x_k + x_{k+1}) / 2`` with the interval's own control
``u_k``, which is second-order accurate and never mixes two controls.

Only the training part of each training trajectory (``t <= t_train``) is used, as by the trainer.
"""

from __future__ import annotations

import typing

import numpy as np
import torch
from scipy.interpolate import make_interp_spline, make_smoothing_spline

from .errors import PhysodeError, unknown_name

METHODS = ("auto", "stencil", "interpolate", "spline")
#: Observations per stencil (order 6): finer than any training window's solver error at the data's step.
STENCIL_POINTS = 7
#: The largest relative disagreement between the stencil and one of two orders lower at which a sample is kept.
STENCIL_AGREEMENT = 1e-2


#: The fewest observations per time scale of the motion (:meth:`~physode.TrajectoryDataset.time_scale`) at which
#: the automatic estimates are worth fitting a field to: on coarser grids every stencil and spline cuts across
#: the motion, and a field fitted to their error is a worse start for trajectory matching than none.
LEAST_RESOLUTION = 2.0


def coarse_grid(dataset) -> str | None:
    """Why ``dataset``'s training observations are too coarse for the automatic derivative estimates (None when
    they are not): fewer than :data:`LEAST_RESOLUTION` observations per time scale of the motion."""
    scale, spacing = dataset.time_scale(), dataset.spacing()
    if scale / spacing >= LEAST_RESOLUTION:
        return None
    return (f"the observations are too coarse for derivative estimates: {scale / spacing:.2g} per time scale of the "
            f"motion (spacing {spacing:.3g}, time scale {scale:.3g}), {LEAST_RESOLUTION:g} needed")


class DerivativeSamples(typing.NamedTuple):
    """Samples of the field: ``t (M,)``, ``x (M, D)``, ``dxdt (M, D)`` and ``u (M, C)`` or None, float64;
    ``trajectory (M,)`` (int64, or None) the row of the training split each sample comes from (what an ensemble's
    bootstrap resamples weigh them by)."""

    t: torch.Tensor
    x: torch.Tensor
    dxdt: torch.Tensor
    u: torch.Tensor | None
    trajectory: torch.Tensor | None = None


def stencil_weights(offsets) -> np.ndarray:
    """Weights ``w`` with ``f'(0) ~ sum_j w_j f(s_j)`` for the sample offsets ``s`` (in units of the spacing), exact
    for polynomials of degree ``len(s) - 1``: the solution of the Taylor conditions ``sum_j w_j s_j^m = [m == 1]``."""
    offsets = np.asarray(offsets, dtype=np.float64)
    powers = offsets[None, :] ** np.arange(len(offsets))[:, None]
    target = np.zeros(len(offsets))
    target[1] = 1.0
    return np.linalg.solve(powers, target)


def stencil_derivatives(x: torch.Tensor, dt: float, points: int = STENCIL_POINTS) -> torch.Tensor:
    """``dx/dt`` of observations ``x: (N, T, D)`` on a regular grid of spacing ``dt``, by a stencil of ``points``
    observations (order ``points - 1``): centred inside, shifted to one side within ``points // 2`` of the ends."""
    n_times = x.shape[1]
    if n_times < points:
        raise PhysodeError(f"a {points}-point stencil needs at least {points} observations per trajectory, got "
                           f"{n_times}; use method='spline', or fewer stencil points")
    half = points // 2
    out = torch.empty_like(x)
    for k in range(n_times):
        first = min(max(k - half, 0), n_times - points)  # the stencil's window, kept inside the grid
        weights = torch.as_tensor(stencil_weights(np.arange(first, first + points) - k), dtype=x.dtype)
        out[:, k] = torch.einsum("j,njd->nd", weights, x[:, first : first + points]) / dt
    return out


def spline_derivatives(t: np.ndarray, x: np.ndarray, smoothing: bool = True) -> np.ndarray:
    """``dx/dt`` of one trajectory ``x: (L, D)`` at its times ``t: (L,)`` through a spline per state: scipy's
    ``make_smoothing_spline`` (smoothing by generalised cross-validation), or with ``smoothing=False`` the cubic
    interpolating ``make_interp_spline(k=3)``."""
    return np.stack([spline.derivative()(t) for spline in _splines(t, x, smoothing)], axis=1)


def _splines(t: np.ndarray, x: np.ndarray, smoothing: bool) -> list:
    """One spline per state of ``x: (L, D)`` at ``t: (L,)`` (see :func:`spline_derivatives`)."""
    if len(t) < 6:
        raise PhysodeError(f"a spline needs at least 6 observations per trajectory, got {len(t)}; record longer "
                           "trajectories (or raise t_train), or leave the warm start out")
    make = make_smoothing_spline if smoothing else (lambda times, values: make_interp_spline(times, values, k=3))
    return [make(t, x[:, d]) for d in range(x.shape[1])]


def estimate_derivatives(dataset, method: str = "auto", points: int = STENCIL_POINTS) -> DerivativeSamples:
    """Field samples from the training observations of ``dataset`` (``t <= t_train`` of the train split); see the
    module doc for the methods. Returns :class:`DerivativeSamples` with one sample per observation (per interval
    with controls)."""
    if method not in METHODS:
        raise unknown_name("derivative method", method, METHODS)
    train = dataset.part("train")
    mask = train.train_time_mask  # (N, T): observed and within the training horizon
    lengths = mask.sum(1)
    if int(lengths.max()) < 2:
        raise PhysodeError("no training trajectory has 2 observations before t_train; derivatives cannot be "
                           "estimated: raise t_train or leave the warm start out")
    times, x = train.times, train.x
    if train.u is not None:
        return _midpoints(times, x, train.u, mask)
    regular = not train.irregular and not train.ragged and bool(
        torch.allclose(times[0].diff(), times[0, 1:2] - times[0, :1], rtol=1e-9, atol=0.0))
    noise_free = dataset.meta.get("noise_std") == 0.0 and dataset.system_spec is not None
    if method == "stencil" and not regular:
        raise PhysodeError("the stencil needs one regular grid shared by equally long trajectories; use "
                           "method='spline' for irregular grids or trajectories of different lengths")
    if method == "stencil" or (method == "auto" and regular and noise_free):
        count = int(lengths.min())
        if method == "auto":  # short training trajectories take the widest stencil they hold (3 points at least)
            points = max(min(points, count), 3)
        dt = float(times[0, 1] - times[0, 0])
        dxdt = stencil_derivatives(x[:, :count], dt, points)
        keep = mask[:, :count] & _stencils_agree(dxdt, stencil_derivatives(x[:, :count], dt, max(points - 2, 3)))
        return DerivativeSamples(times[:, :count][keep], x[:, :count][keep], dxdt[keep], None, _rows_of(keep))
    smoothing = method == "spline" or (method == "auto" and not noise_free)
    kept = [i for i, k in enumerate(lengths.tolist()) if k >= 2]  # the rows of the training split sampled
    rows = [(times[i, :k].numpy(), x[i, :k].numpy()) for i, k in enumerate(lengths.tolist()) if k >= 2]
    short = [len(t) for t, _ in rows if len(t) < 6]
    if method == "auto" and len(short) < len(rows):  # the trajectories long enough carry the estimate
        kept = [i for i, (t, _) in zip(kept, rows, strict=True) if len(t) >= 6]
        rows, short = [(t, states) for t, states in rows if len(t) >= 6], []
    if short:
        raise PhysodeError(f"{len(short)} training trajectories have fewer than 6 observations before t_train "
                           f"(e.g. {short[0]}); a spline needs 6: raise t_train or drop the short ones")
    splines = [_splines(t, states, smoothing) for t, states in rows]
    dxdt = [np.stack([spline.derivative()(t) for spline in per_state], axis=1)
            for (t, _), per_state in zip(rows, splines, strict=True)]
    if smoothing:
        _check_signal(rows, splines, dataset.state_names)
    cat = np.concatenate
    trajectory = torch.cat([torch.full((len(t),), i, dtype=torch.int64) for i, (t, _) in zip(kept, rows, strict=True)])
    return DerivativeSamples(*(torch.from_numpy(cat(part)) for part in ([t for t, _ in rows], [s for _, s in rows], dxdt)),
                             None, trajectory)


#: The least share of the observations' variance (about each trajectory's mean) that the smoothing splines must
#: follow in some state: below it, what the splines keep of the data is no more than a trend through noise.
LEAST_SIGNAL = 0.2


def _check_signal(rows, splines, names) -> None:
    """Refuse derivatives of data whose noise leaves nothing: where the smoothing splines (their smoothing chosen by
    cross-validation) follow less than ``LEAST_SIGNAL`` of the variance in every state, their slopes are those of
    trends through noise, and a field fitted to them would be fitted to nothing."""
    residual = sum(((states - np.stack([s(t) for s in per_state], axis=1)) ** 2).sum(0)
                   for (t, states), per_state in zip(rows, splines, strict=True))
    spread = sum(((states - states.mean(0)) ** 2).sum(0) for _, states in rows)
    followed = 1.0 - residual / np.maximum(spread, 1e-300)
    if float(followed.max()) < LEAST_SIGNAL:
        shares = ", ".join(f"{name} {100 * max(share, 0.0):.0f}%" for name, share in zip(names, followed, strict=True))
        raise PhysodeError(f"the data are too noisy for derivatives: the smoothing splines find a signal in no state "
                           f"(the share of the variance they follow: {shares}; at least {100 * LEAST_SIGNAL:.0f}% is "
                           "needed); use less noisy data or longer, denser trajectories")


def _stencils_agree(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """``(N, T)`` True where two stencils of different orders agree to ``STENCIL_AGREEMENT`` in every component
    (relative to the estimate plus 1% of the component's spread): their difference estimates the truncation error,
    which is large only where the grid does not resolve the motion (a close encounter), and those samples would
    pull a fit more than all the others."""
    spread = fine.flatten(0, 1).std(0)
    discrepancy = ((fine - coarse).abs() / (fine.abs() + 0.01 * spread)).amax(-1)
    return discrepancy <= STENCIL_AGREEMENT


def _midpoints(times: torch.Tensor, x: torch.Tensor, u: torch.Tensor, mask: torch.Tensor) -> DerivativeSamples:
    """Second-order samples at the interval midpoints, each with its interval's own held control."""
    both = mask[:, 1:] & mask[:, :-1]  # intervals whose two ends are observed within the horizon
    steps = times.diff(dim=1)
    dxdt = x.diff(dim=1) / steps.unsqueeze(-1)
    middle = (x[:, 1:] + x[:, :-1]) / 2
    t_mid = times[:, :-1] + steps / 2
    return DerivativeSamples(t_mid[both], middle[both], dxdt[both], u[both], _rows_of(both))


def _rows_of(keep: torch.Tensor) -> torch.Tensor:
    """The row of each True entry of ``keep: (N, T)``, in the order that boolean indexing takes them: ``(M,)``."""
    return torch.arange(keep.shape[0]).unsqueeze(1).expand_as(keep)[keep]



def step_differences(dataset, dt: float) -> DerivativeSamples:
    """Forward differences ``(x_{k+1} - x_k) / dt`` at ``x_k`` (with the interval's control ``u_k``) of the training
    observations: the targets of a step model of step ``dt``, whose implied field ``(step(x) - x) / dt`` they are
    exactly when the data's step is ``dt``. Intervals of another length are left out (none on the grid a
    step model was built for)."""
    train = dataset.part("train")
    mask = train.train_time_mask
    steps = train.times.diff(dim=1)
    both = mask[:, 1:] & mask[:, :-1] & ((steps - dt).abs() <= 1e-9 * max(dt, 1.0))
    if not bool(both.any()):
        raise PhysodeError(f"no interval of the training data is dt={dt:g} long, the step model's step; build the model "
                           "with the data's step (physode.build_model does)")
    dxdt = train.x.diff(dim=1) / dt
    u = None if train.u is None else train.u[both]
    return DerivativeSamples(train.times[:, :-1][both], train.x[:, :-1][both], dxdt[both], u, _rows_of(both))

"""Figures: vector fields, phase portraits, error against horizon, energy, training curves, n-body orbits, and an
ensemble's calibration and error band.

Every function returns a matplotlib Figure and, given ``path``, also writes it as a PNG (atomically).
Import this module with matplotlib's Agg backend in scripts and tests (``matplotlib.use("Agg")``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import LogFormatter
import numpy as np
import torch

from .checks import positive_float, positive_int
from .errors import FileFormatError, PhysodeError, unknown_name
from .files import atomic_write


def save(fig, path) -> None:
    """Write ``fig`` to ``path`` as a PNG, atomically."""
    with atomic_write(path, "figure") as handle:
        fig.savefig(handle, format="png", dpi=110)


def _log_y(ax) -> None:
    """A log-scale y axis labelled in plain text (``1e-03``).

    matplotlib's default log labels (``10^-3``) go through mathtext, and drawing mathtext keeps 2-8 KiB
    per figure for the life of the process (measured with matplotlib 3.11: glibc's in-use bytes
    grow by that much per figure drawn, for good; see matplotlib issue #13019), so a long sweep that draws
    figures in one process would grow for ever. Plain labels do not.
    """
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def _index(value, size: int, name: str, what: str) -> int:
    """``value`` checked as an index into ``size`` ``what`` (negative counts from the end, as in numpy)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not -size <= value < size:
        raise PhysodeError(f"{name} must be a whole number from 0 to {size - 1} (there are {size} {what}), got {value!r}")
    return int(value)


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig


def vector_field_figure(system, model, data_states, points: int = 25, margin: float = 0.25, path=None):
    """True field, learned field and their relative error, side by side on the same axes (2-D states only).

    ``data_states: (M, 2)`` are the training states: their bounding box is drawn as a dashed rectangle,
    and the axes extend ``margin`` of its size beyond it so the reader sees the field outside the data.
    """
    points = positive_int(points, "points", minimum=2)
    margin = positive_float(margin, "margin", allow_zero=True)
    data_states = torch.as_tensor(data_states, dtype=torch.float64)
    if data_states.ndim == 0 or data_states.shape[-1] != 2:
        raise PhysodeError(f"vector-field plots need 2-D states, got data_states of shape {tuple(data_states.shape)}; "
                           "use phase portraits")
    data_states = data_states.reshape(-1, 2)
    if len(data_states) == 0:
        raise PhysodeError("data_states is empty; pass the training states (M, 2), at least one")
    low, high = data_states.min(0).values, data_states.max(0).values
    half = torch.where(high > low, 0.0, 0.1 * low.abs().clamp_min(1.0))  # one value: a small box around it
    low, high = low - half, high + half
    pad = margin * (high - low)
    xs, ys = (np.linspace(float(lo - p), float(hi + p), points) for lo, hi, p in zip(low, high, pad, strict=True))
    grid = torch.tensor(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))
    with torch.no_grad():
        truth = system.vector_field(0.0, grid)
        # a model on a GPU answers there (it moves its inputs to its device itself); the truth is on the CPU
        learned = model.vector_field(0.0, grid.to(getattr(model, "torch_dtype", torch.float64))).detach().double().cpu()
    error = ((learned - truth).norm(dim=-1) / truth.norm(dim=-1).clamp_min(1e-9)).reshape(points, points)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True)
    names = getattr(system, "state_names", ("x1", "x2"))
    for ax, field, title in ((axes[0], truth, "true field"), (axes[1], learned, "learned field")):
        f = field.reshape(points, points, 2).numpy()
        ax.streamplot(xs, ys, f[..., 0], f[..., 1], density=1.0, color=np.hypot(f[..., 0], f[..., 1]), cmap="viridis")
        ax.set_title(title)
    mesh = axes[2].pcolormesh(xs, ys, np.log10(error.numpy() + 1e-12), shading="auto", cmap="magma")
    fig.colorbar(mesh, ax=axes[2], label="log10 relative error")
    axes[2].set_title("|learned - true| / |true|")
    for ax in axes:
        ax.add_patch(plt.Rectangle((float(low[0]), float(low[1])), float(high[0] - low[0]), float(high[1] - low[1]),
                                   fill=False, ls="--", lw=1, ec="white" if ax is axes[2] else "black"))
        ax.set_xlabel(names[0])
    axes[0].set_ylabel(names[1])
    return _finish(fig, path)


def phase_portrait_figure(times, truth, predictions: dict, dims=(0, 1), n: int = 8, t_train=None, names=None, path=None):
    """Learned rollouts (dashed) over the true ones (solid) from the same initial states, in the plane ``dims``
    (two state indices), or one state against time with ``dims=(i,)`` (for one-dimensional systems).

    ``times: (T,) | (N, T)``, ``truth: (N, T, D)``, ``predictions``: name -> ``(N, T, D)``; the first ``n``
    trajectories are drawn, one panel per model (with no predictions, one panel of the truth alone).
    Points after ``t_train`` (extrapolation) are drawn thinner.
    """
    truth = np.asarray(truth)
    if truth.ndim != 3:
        raise PhysodeError(f"truth must have shape (N, T, D), got {truth.shape}")
    try:
        times = np.broadcast_to(np.asarray(times), truth.shape[:2])  # one grid per trajectory
    except ValueError:
        raise PhysodeError(f"times must have shape (T,) or (N, T) = {truth.shape[:2]} to match truth, "
                           f"got {np.shape(times)}") from None
    if not isinstance(dims, (tuple, list)) or len(dims) not in (1, 2):
        raise PhysodeError(f"dims must be two state indices, such as (0, 1), or one, such as (0,), to draw it against "
                           f"time; got {dims!r}")
    indices = [_index(d, truth.shape[2], "dims", "state dimensions") for d in dims]
    panels = {name: np.asarray(pred) for name, pred in predictions.items()} or {"truth": None}
    for name, pred in panels.items():
        if pred is not None and pred.shape != truth.shape:
            raise PhysodeError(f"predictions[{name!r}] must have the shape of truth {truth.shape}, got {pred.shape}")

    def axes_of(states, i):  # the (horizontal, vertical) coordinates of trajectory i
        if len(indices) == 1:
            return times[i], states[i, :, indices[0]]
        return states[i, :, indices[0]], states[i, :, indices[1]]

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    colors = plt.cm.tab10(np.arange(n) % 10)
    for ax, (name, pred) in zip(axes[0], panels.items(), strict=True):
        for i in range(min(n, len(truth))):
            ax.plot(*axes_of(truth, i), color=colors[i], lw=1.5, alpha=0.6)
            if pred is None:
                continue
            inside = times[i] <= (t_train if t_train is not None else times[i, -1])
            h, v = axes_of(pred, i)
            ax.plot(h[inside], v[inside], color=colors[i], ls="--", lw=1.2)
            ax.plot(h[~inside], v[~inside], color=colors[i], ls=":", lw=0.8)
        ax.set_title("truth" if pred is None else f"{name} (dashed) vs truth")
        if names is not None:
            labels = ["t", names[indices[0]]] if len(indices) == 1 else [names[k] for k in indices]
            ax.set(xlabel=labels[0], ylabel=labels[1])
    return _finish(fig, path)


def error_horizon_figure(report, statistic: str = "median", path=None):
    """Rollout error against time for every model of a :class:`~physode.evaluate.Report`, log scale."""
    models = {name: curves for name, curves in report.curves.items() if name != "true system"}
    valid = set.intersection(*(set(curves) for curves in models.values())) if models else set()
    if statistic not in valid:
        raise unknown_name("statistic", statistic, valid)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, curves in models.items():
        ax.plot(report.times, np.maximum(curves[statistic], 1e-12), label=name)
    _log_y(ax)
    ax.axvline(report.meta["t_train"], color="gray", ls="--", lw=1, label="training horizon")
    ax.set(xlabel="time", ylabel=f"{statistic} relative error", title="Rollout error against horizon")
    ax.legend()
    return _finish(fig, path)


def _ensembles(report, name):
    """The ensembles of ``report`` scored with spread (their names), checked against ``name`` (None: all)."""
    scored = list(report.uncertainty)
    if not scored:
        raise PhysodeError("the report holds no ensemble of 2 or more members; compare an ensemble (ensemble=K) to "
                           "draw its calibration and error band")
    if name is not None and name not in scored:
        raise unknown_name("name", name, scored)
    return scored if name is None else [name]


def calibration_figure(report, path=None):
    """Nominal against observed coverage of every ensemble's prediction intervals in a
    :class:`~physode.evaluate.Report` (over all test states), as the members' spread says (dotted) and
    recalibrated (solid); a calibrated ensemble lies on the diagonal."""
    names = _ensembles(report, None)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="gray", lw=1, ls="--", label="calibrated")
    for name, color in zip(names, plt.cm.tab10(np.arange(len(names)) % 10), strict=True):
        curves = report.rows[name]["uncertainty"]["calibration_curve"]
        ax.plot(curves["raw"]["levels"], curves["raw"]["observed"], color=color, ls=":", marker=".", label=f"{name} (raw)")
        ax.plot(curves["recalibrated"]["levels"], curves["recalibrated"]["observed"], color=color, marker="o", ms=3,
                label=f"{name} (recalibrated)")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal coverage", ylabel="observed coverage on the test states",
           title="Calibration of the prediction intervals")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def error_band_figure(report, name=None, index: int = 0, names=None, path=None):
    """An ensemble's mean rollout and its recalibrated prediction interval (the band) over the reference (the truth
    or the recorded data) for test trajectory ``index``, one panel per state coordinate (at most 4), with the
    trajectory's predicted trust horizon and valid time marked. ``name``: the ensemble (default: the report's first)."""
    name = _ensembles(report, name)[0]
    kept = report.uncertainty[name]
    truth = np.asarray(report.truth)
    i = _index(index, len(truth), "index", "test trajectories")
    times = np.broadcast_to(np.asarray(report.truth_times), truth.shape[:2])[i]
    mean, lower, upper = (np.asarray(v)[i] for v in (report.trajectories[name], kept["lower"], kept["upper"]))
    dims = min(truth.shape[2], 4)
    fig, axes = plt.subplots(dims, 1, figsize=(7, 1.9 * dims + 0.6), sharex=True, squeeze=False)
    level = 100 * report.meta.get("level", 0.9)
    for d, ax in enumerate(axes[:, 0]):
        seen = np.isfinite(truth[:, :, d][i])
        ax.fill_between(times[seen], lower[seen, d], upper[seen, d], color="C0", alpha=0.25, lw=0,
                        label=f"{level:g}% interval")
        ax.plot(times[seen], mean[seen, d], color="C0", lw=1.2, label=f"{name} (mean)")
        ax.plot(times[seen], truth[i, seen, d], color="k", lw=1, ls="--",
                label="truth" if report.meta.get("reference") == "system" else "recorded data")
        ax.axvline(report.meta["t_train"], color="gray", lw=0.8, ls="--")
        ax.axvline(kept["trust_horizons"][i], color="C3", lw=1, ls=":", label="predicted trust horizon")
        ax.axvline(kept["valid_times"][i], color="C2", lw=1, ls="-.", label="valid time")
        ax.set_ylabel(names[d] if names is not None else f"x[{d}]")
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper left")
    axes[-1, 0].set_xlabel("time")
    axes[0, 0].set_title(f"{name}: error band of test trajectory {i}")
    return _finish(fig, path)


def energy_figure(system, times, rollouts: dict, path=None):
    """Median relative energy drift ``|E(t) - E(0)| / |E(0)|`` against time for each rollout ``(N, T, D)``."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, x in rollouts.items():
        energy = system.energy(torch.as_tensor(x, dtype=torch.float64))
        drift = ((energy - energy[:, :1]).abs() / energy[:, :1].abs().clamp_min(1e-12)).nanmedian(0).values  # NaN: ended
        ax.plot(np.asarray(times), np.maximum(drift.numpy(), 1e-16), label=name)
    _log_y(ax)
    ax.set(xlabel="time", ylabel="median relative energy drift", title="Energy along rollouts")
    ax.legend()
    return _finish(fig, path)


def training_figure(metrics, path=None):
    """Loss and validation error, and forward/backward NFE, against step, from ``metrics.jsonl`` (path or records)."""
    if isinstance(metrics, (str, Path)):
        from .train import read_metrics

        try:
            metrics = read_metrics(metrics)
        except OSError as exc:
            raise FileFormatError(f"cannot read metrics file {str(metrics)!r} ({exc.strerror}); pass the "
                                  "metrics.jsonl that training wrote in its output folder, or a list of its records") from None
    metrics = [m for m in metrics if "event" not in m]  # rollbacks are recorded too
    if not [m for m in metrics if m.get("phase") != "warm_start"]:
        raise PhysodeError("no metrics to plot; train first (metrics.jsonl is empty)")
    warm = [m for m in metrics if m.get("phase") == "warm_start"]  # the warm start: one record, drawn at step 0
    metrics = [m for m in metrics if m.get("phase") != "warm_start"]
    steps = [m["step"] for m in metrics]
    marker = "o" if len(steps) < 2 else None  # a line through one point draws nothing
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(steps, [m["loss"] for m in metrics], marker=marker, label="training loss")
    left.plot(steps, [m["val_error"] for m in metrics], marker=marker, label="validation error")
    for m in warm:
        left.plot([0], [m["val_error"]], marker="*", ms=12, ls="none", label="after the warm start")
    _log_y(left)
    left.set(xlabel="step (trajectory matching)", title="Loss")
    left.legend()
    right.plot(steps, [m["nfe_forward"] for m in metrics], marker=marker, label="forward NFE")
    right.plot(steps, [m["nfe_backward"] for m in metrics], marker=marker, label="backward NFE")
    right.set(xlabel="step", ylabel="function evaluations", title="NFE per step")
    right.legend()
    return _finish(fig, path)


def orbits_figure(system, truth, prediction, index: int = 0, path=None):
    """n-body orbits in the plane (first two coordinates): true (solid) against learned (dashed), one trajectory."""
    n, dim = system.params.n_bodies, system.params.dim
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    index = _index(index, min(len(truth), len(prediction)), "index", "trajectories")
    true_q = truth[index, :, : n * dim].reshape(-1, n, dim)
    pred_q = prediction[index, :, : n * dim].reshape(-1, n, dim)
    fig, ax = plt.subplots(figsize=(5, 5))
    for body in range(n):
        line = ax.plot(true_q[:, body, 0], true_q[:, body, 1], lw=1.5)[0]
        ax.plot(pred_q[:, body, 0], pred_q[:, body, 1], ls="--", lw=1.2, color=line.get_color())
        ax.plot(*true_q[0, body, :2], "o", color=line.get_color())
    ax.set(aspect="equal", xlabel="x", ylabel="y", title="Orbits: true (solid) vs learned (dashed)")
    return _finish(fig, path)

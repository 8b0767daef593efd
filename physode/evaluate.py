"""Rollout evaluation: how good is each learned vector field, and how far can its rollouts be trusted?

:func:`compare` rolls every model out from the test split's initial states, next to the true system,
on one evaluation grid that runs to the largest horizon, and scores them against a reference:

* ``reference="system"`` (the default): the truth is simulated on a regular grid with the data's mean
  spacing, so extrapolation can be scored however far the data went (default horizons 1x, 2x, 4x t_train);
* ``reference="data"``: the test split's own clean trajectories are the truth, on their shared grid, so
  no horizon may reach beyond the data's end (default horizons 1x t_train and the data's end). Use it
  to score against what was recorded rather than against a re-simulation.

The scores:

* rollout error against time, per trajectory ``e_i(t) = ||x_hat_i(t) - x_i(t)|| / ||x_i(t)||``: median,
  mean and 90th percentile over trajectories, and the normalised MSE
  ``sum_i ||x_hat_i(t) - x_i(t)||^2 / sum_i ||x_i(t)||^2``, read off at the horizons (multiples of t_train);
* valid prediction time: the median over trajectories of the first time ``e_i(t)`` exceeds a threshold, and
  for a system that gives its largest Lyapunov exponent ``lambda`` also in Lyapunov times ``lambda * t``;
* vector-field error ``||f_hat - f|| / ||f||`` on the test states (at their own times) and on a grid over the
  data's bounding box (at t = 0) (ResNet step models through their implied field);
* energy drift ``|E(t) - E(0)| / |E(0)|`` (median over trajectories, at the horizons) where the system
  defines an energy, and total-momentum drift for n-body;
* cost: parameters, NFE per rollout, wall time of the batched rollout, training time when known.

The true system is scored too, as the reference row (zero error by construction).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import refuse_other_system
from .checks import affordable, positive_float, seed_value
from .data import TrajectoryDataset
from .devices import resolve_device
from .errors import PhysodeError, SolverError, unknown_name
from .files import atomic_write
from .models import DynamicsModel
from .simulate import simulate
from .systems import System
from .systems.base import defines_energy

HORIZONS = (1.0, 2.0, 4.0)
REFERENCES = ("system", "data")
#: The most output times per trajectory of a simulated reference: more than any error curve needs, and a slip
#: such as horizons (1, 1e6) would otherwise run for hours before saying anything.
MAX_EVALUATION_TIMES = 100_000


class Report:
    """Scores per model (``rows``) and error-against-time curves (``curves``); writes JSON and Markdown.

    ``trajectories`` keeps the rollouts ``(N, T, D)`` behind the scores (name -> tensor, the truth under
    ``"true system"``) for figures; it is not written to the files.
    """

    def __init__(self, rows: dict, curves: dict, times: np.ndarray, meta: dict, trajectories: dict | None = None):
        self.rows, self.curves, self.times, self.meta = rows, curves, times, meta
        self.trajectories = trajectories or {}

    def to_dict(self) -> dict:
        return {"meta": self.meta, "rows": self.rows, "times": self.times.tolist(),
                "curves": {name: {k: v.tolist() for k, v in c.items()} for name, c in self.curves.items()}}

    def to_markdown(self) -> str:
        horizons = self.meta["horizons"]
        t_train = self.meta["t_train"]
        exponent = self.meta.get("lyapunov_exponent")
        head = ["model", "params", *(f"median err @ t={h * t_train:g}" for h in horizons),
                "valid time" + (" (Lyapunov times)" if exponent else ""),
                "field err (test)", "field err (grid)", "energy drift @ end", "NFE", "rollout s"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, r in self.rows.items():
            cells = [name, str(r["parameters"]), *(f"{r['median_error'][str(h)]:.2e}" for h in horizons),
                     f"{r['valid_time']:.2f}" + (f" ({r['valid_lyapunov_times']:.2f})" if exponent else ""),
                     f"{r['field_error_test']:.2e}", f"{r['field_error_grid']:.2e}",
                     "" if r.get("energy_drift") is None else f"{r['energy_drift'][str(horizons[-1])]:.2e}",
                     "" if r["nfe"] is None else str(r["nfe"]), f"{r['rollout_seconds']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def save(self, out_dir) -> Path:
        """Write ``report.json`` and ``report.md`` into ``out_dir`` (atomically); returns the folder."""
        out = Path(out_dir)
        with atomic_write(out / "report.json", "report") as handle:
            handle.write((json.dumps(self.to_dict(), indent=1) + "\n").encode())
        with atomic_write(out / "report.md", "report") as handle:
            handle.write((self.to_markdown() + "\n").encode())
        return out


def compare(models: dict, dataset: TrajectoryDataset, system: System | None = None, *,
            horizons=None, reference: str = "system", threshold: float = 0.1, grid_points: int = 32, seed: int = 0,
            progress: bool = False, device="auto") -> Report:
    """Score ``models`` (name -> object with ``rollout``) on ``dataset``'s test split; see the module doc.

    ``horizons`` are multiples of the training horizon ``t_train`` (default ``HORIZONS`` against the
    system, ``(1, data end / t_train)`` against the data); ``reference`` is ``"system"`` or ``"data"``.
    ``system`` defaults to the dataset's own and is added as the row ``"true system"``.
    The truth and every rollout run on ``device`` (``"auto"``: the GPU when present; models that are
    ``torch.nn.Module`` are moved there); each rollout comes back to the CPU once for the scores.
    """
    device = resolve_device(device)
    system = dataset.system if system is None else system
    if system.spec() != dataset.system_spec:
        raise PhysodeError(f"system {system.spec()} is not the dataset's {dataset.system_spec}; pass the matching one")
    if not models:
        raise PhysodeError("models is empty; pass a dict of name -> model")
    horizons = evaluation_horizons(dataset, horizons, reference)
    threshold = positive_float(threshold, "threshold")
    seed = seed_value(seed)
    for name, model in models.items():
        if getattr(model, "state_dim", dataset.state_dim) != dataset.state_dim:
            raise PhysodeError(f"model {name!r} has state_dim {model.state_dim}, the dataset {dataset.state_dim}")
        refuse_other_system(model, dataset.system_spec, "the dataset", "compare it on data of its own system",
                            name=f"model {name!r}")
        if isinstance(model, DynamicsModel) and model.control_dim:
            raise PhysodeError(f"model {name!r} takes controls; compare scores uncontrolled rollouts only")
    test = dataset.part_or("test", "all", "the evaluation")
    t_end = max(horizons) * dataset.t_train
    if reference == "system":
        times = _evaluation_grid(dataset, horizons)
        affordable(8.0 * (len(models) + 1) * len(test) * len(times) * dataset.state_dim, "the evaluation grid (horizons)")
        x0 = test.x_clean[:, 0]
        truth = simulate(system, x0, times, device=device).cpu()
    else:  # the test trajectories themselves, cut at the largest horizon
        keep = test.times[0] <= t_end * (1 + 1e-9)
        times, truth = test.times[0, keep].contiguous(), test.x_clean[:, keep]
        x0 = truth[:, 0]
    states = test.x_clean[test.train_time_mask]  # test states within the training horizon, at their own times
    state_times = test.times[test.train_time_mask]  # (a time-dependent field is compared where the data were)
    grid = _box_grid(dataset.x_clean.reshape(-1, dataset.state_dim), grid_points, seed)
    exponent = getattr(system, "lyapunov_exponent", None)

    rows, curves, trajectories = {}, {}, {}
    x0_device, times_device, states_device, grid_device = (v.to(device) for v in (x0, times, states, grid))
    state_times_device = state_times.to(device)
    for name, model in tqdm({"true system": system, **models}.items(), desc="evaluate", unit="model", disable=not progress):
        if isinstance(model, torch.nn.Module):
            model.to(device)
        start = time.perf_counter()
        try:
            with torch.no_grad():
                pred = model.rollout(x0_device, times_device).double().cpu()
        except SolverError as exc:
            raise SolverError(f"the rollout of {name!r} to t={t_end:g} failed, so nothing was scored: {exc}. A learned "
                              "model that blows up this far out: compare it to smaller horizons, or leave it out") from None
        seconds = time.perf_counter() - start
        trajectories[name] = pred
        err = ((pred - truth).norm(dim=-1) / truth.norm(dim=-1).clamp_min(1e-12)).numpy()  # (N, T)
        curves[name] = {"median": np.median(err, 0), "mean": err.mean(0), "p90": np.percentile(err, 90, axis=0),
                        "nmse": (((pred - truth) ** 2).sum((0, 2)) / (truth**2).sum((0, 2)).clamp_min(1e-30)).numpy()}
        at = {str(h): int(torch.argmin((times - h * dataset.t_train).abs())) for h in horizons}
        rows[name] = {
            "parameters": int(getattr(model, "num_parameters", 0)),
            "median_error": {h: float(curves[name]["median"][i]) for h, i in at.items()},
            "mean_error": {h: float(curves[name]["mean"][i]) for h, i in at.items()},
            "p90_error": {h: float(curves[name]["p90"][i]) for h, i in at.items()},
            "nmse": {h: float(curves[name]["nmse"][i]) for h, i in at.items()},
            "valid_time": _valid_time(err, times.numpy(), threshold),
            "field_error_test": _field_error(model, system, states_device, state_times_device),
            "field_error_grid": _field_error(model, system, grid_device, 0.0),
            "energy_drift": _energy_drift(system, pred, at),
            "momentum_drift": _momentum_drift(system, pred),
            "nfe": _evaluations(model, t_end),
            "rollout_seconds": seconds,
            "training_seconds": (getattr(model, "training_info", None) or {}).get("seconds"),
        }
        if exponent:
            rows[name]["valid_lyapunov_times"] = rows[name]["valid_time"] * exponent
    meta = {"system": dataset.system_spec, "t_train": dataset.t_train, "horizons": list(horizons),
            "threshold": threshold, "n_test": len(x0), "t_end": t_end, "reference": reference,
            "lyapunov_exponent": exponent}
    return Report(rows, curves, times.numpy(), meta, trajectories)


def evaluation_horizons(dataset: TrajectoryDataset, horizons=None, reference: str = "system") -> tuple:
    """Check ``horizons`` and ``reference`` for :func:`compare` on ``dataset`` (cheap: call it before training).

    Returns the horizons (the defaults filled in). Against the data, every horizon must lie within the
    test trajectories' shared time grid.
    """
    if reference not in REFERENCES:
        raise unknown_name("reference", reference, REFERENCES)
    test = dataset.part_or("test", "all", None)  # compare itself warns when there is no test split
    if reference == "data":
        if dataset.u is not None:
            raise PhysodeError("reference='data' compares uncontrolled rollouts with the recorded trajectories, and this "
                               "dataset was recorded with controls; use reference='system' (the truth is then "
                               "simulated without controls)")
        grid = test.times[0]
        if not bool((test.times == grid).all()):
            raise PhysodeError("reference='data' needs one time grid shared by every test trajectory, and this "
                               "dataset has irregular grids; use reference='system' (the truth is then simulated)")
        data_end = float(grid[-1]) / dataset.t_train
        horizons = (1.0, data_end) if horizons is None else horizons
    horizons = tuple(sorted({positive_float(h, "horizons[i]") for h in (HORIZONS if horizons is None else horizons)}))
    if not horizons:
        raise PhysodeError("horizons is empty; pass multiples of t_train such as (1, 2, 4)")
    if reference == "data" and max(horizons) > data_end * (1 + 1e-9):
        raise PhysodeError(f"horizons {list(horizons)} reach t={max(horizons) * dataset.t_train:g}, beyond the data, "
                           f"which end at t={data_end * dataset.t_train:g} ({data_end:g} x t_train); pass horizons up "
                           f"to {data_end:g}, or reference='system' to simulate the truth further")
    if reference == "data":
        off = [h for h in horizons if float((grid - h * dataset.t_train).abs().min()) > 1e-9 * max(1.0, h * dataset.t_train)]
        if off:
            raise PhysodeError(f"horizons {off} fall between the data's times (t_train = {dataset.t_train:g}, times "
                               f"{float(grid[1] - grid[0]):g} apart); against the data pass horizons whose times are on "
                               "its grid, or reference='system'")
    if reference == "system" and (n_times := _evaluation_times(dataset, max(horizons) * dataset.t_train)) > MAX_EVALUATION_TIMES:
        raise PhysodeError(f"horizons {list(horizons)} reach t={max(horizons) * dataset.t_train:g}: {n_times:,} output times "
                           f"at the data's spacing, more than {MAX_EVALUATION_TIMES:,}; pass smaller horizons "
                           f"(multiples of t_train = {dataset.t_train:g})")
    return horizons


def _spacing(dataset: TrajectoryDataset) -> float:
    """The data's mean time between observations: the spacing of a simulated reference's output times."""
    return float(dataset.times.diff(dim=1).mean())


def _evaluation_times(dataset: TrajectoryDataset, t_end: float) -> int:
    """About how many output times a simulated reference has on ``[0, t_end]`` (see :func:`_evaluation_grid`)."""
    return round(t_end / _spacing(dataset)) + 1


def _evaluation_grid(dataset: TrajectoryDataset, horizons) -> torch.Tensor:
    """The simulated reference's output times: ``0, s, 2s, ...`` at the data's mean spacing ``s``, and every
    horizon's time exactly (errors at a horizon are read at that time, whatever the spacing)."""
    spacing = _spacing(dataset)
    marks = torch.tensor([h * dataset.t_train for h in horizons], dtype=torch.float64)
    regular = torch.arange(0.0, float(marks[-1]), spacing, dtype=torch.float64)
    regular = regular[(regular[:, None] - marks[None]).abs().min(1).values > 1e-6 * spacing]  # no near-duplicates
    return torch.cat([regular, marks]).sort().values


def _box_grid(states: torch.Tensor, points: int, seed: int) -> torch.Tensor:
    """A regular ``points x points`` grid over the bounding box of 2-D states; 4096 uniform samples in it otherwise."""
    low, high = states.min(0).values, states.max(0).values
    if states.shape[1] == 2:
        axes = [torch.linspace(float(lo), float(hi), points, dtype=torch.float64) for lo, hi in zip(low, high, strict=True)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 2)
    gen = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(4096, states.shape[1], generator=gen, dtype=torch.float64)


def _field_error(model, system, states, t) -> float:
    """``||f_hat - f|| / ||f||`` over ``states: (M, D)`` at times ``t`` (a number or ``(M,)``)."""
    with torch.no_grad():
        truth = system.vector_field(t, states)
        learned = model.vector_field(t, states)  # float64, as the states, whatever the model's dtype
    return float((learned - truth).norm() / truth.norm().clamp_min(1e-30))


def _evaluations(model, t_end: float) -> int | None:
    """Field evaluations of the last rollout (continuous models), steps for step models, else None."""
    if hasattr(model, "nfe_forward"):
        return int(model.nfe_forward)
    if hasattr(model, "step") and hasattr(model, "dt"):
        return int(np.ceil(t_end / model.dt - 1e-9))
    return None


def _valid_time(err: np.ndarray, times: np.ndarray, threshold: float) -> float:
    over = err > threshold
    first = np.where(over.any(1), over.argmax(1), len(times) - 1)
    return float(np.median(times[first]))


def _energy_drift(system, pred, at):
    if not defines_energy(system):
        return None
    energy = system.energy(pred)
    drift = ((energy - energy[:, :1]).abs() / energy[:, :1].abs().clamp_min(1e-12)).numpy()
    return {h: float(np.median(drift[:, i])) for h, i in at.items()}


def _momentum_drift(system, pred):
    if not hasattr(system, "momentum"):
        return None
    momentum = system.momentum(pred)
    change = momentum - momentum[:, :1]  # (N, T) for a scalar momentum (the cart-pole's), (N, T, d) for a vector one
    return float((change.abs() if change.ndim == 2 else change.norm(dim=-1)).max())

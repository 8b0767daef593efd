"""Rollout evaluation: how good is each learned vector field, and how far can its rollouts be trusted?

:func:`compare` rolls every model out from the test split's initial states, next to the true system,
on one evaluation grid that runs to the largest horizon, and scores them against a reference:

* ``reference="system"`` (the default): the truth is simulated on a regular grid with the data's mean
  spacing, so extrapolation can be scored however far the data went (default horizons 1x, 2x, 4x t_train);
* ``reference="data"`` (the default for recorded data, which have no true system): the test split's own
  clean trajectories are the truth, each on its own grid, to its own end and driven by its recorded
  controls, so no horizon may reach beyond the data's end (default horizons 1x t_train and the data's end).
  Use it to score against what was recorded rather than against a re-simulation. On per-trajectory grids
  the error curves are interpolated onto one time axis; at each time they are over the trajectories
  observed then.

The scores:

* rollout error against time, per trajectory ``e_i(t) = ||x_hat_i(t) - x_i(t)|| / ||x_i(t)||``: median,
  mean and 90th percentile over trajectories, and the normalised MSE
  ``sum_i ||x_hat_i(t) - x_i(t)||^2 / sum_i ||x_i(t)||^2``, read off at the horizons (multiples of t_train);
* valid prediction time: the median over trajectories of the first time ``e_i(t)`` exceeds a threshold, and
  for a system that gives its largest Lyapunov exponent ``lambda`` also in Lyapunov times ``lambda * t``;
* one-step and k-step prediction errors: the median relative error of a prediction ``k`` observations ahead
  from every observed test state (up to the largest horizon);
* vector-field error ``||f_hat - f|| / ||f||`` (where a true system is at hand) on the test states (at their
  own times) and on a grid over the data's bounding box (at t = 0) (ResNet step models through their implied field);
* energy drift ``|E(t) - E(0)| / |E(0)|`` (median over trajectories, at the horizons) where the system
  defines an energy, and total-momentum drift for n-body;
* cost: parameters, NFE per rollout, wall time of the batched rollout, training time when known.

The true system, where there is one, is scored too, as the reference row (zero error by construction).
Scores that need it (field errors, energy drift) are None without it, "n/a" in the Markdown table.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from .checkpoint import refuse_other_system
from .checks import affordable, positive_float, positive_int, seed_value
from .data import SPLITS, TrajectoryDataset
from .devices import resolve_device
from .errors import PhysodeError, SolverError, unknown_name
from .files import atomic_write
from .models import DynamicsModel, Ensemble
from .simulate import simulate
from .uncertainty import Calibration, calibration_curve, check_level, coverage, predicted_errors, prediction_interval
from .systems import System
from .systems.base import defines_energy

HORIZONS = (1.0, 2.0, 4.0)
#: The ``k`` of the k-step prediction error (one-step errors are reported too).
K_STEPS = 10
#: Bands of time an ensemble's recalibration on the validation split maps separately (equal shares of its states):
#: the members' spread and their mean's error need not grow at one rate.
CALIBRATION_BANDS = 4
#: The most starts of one-step and k-step predictions scored (drawn with the seed where there are more).
MAX_STEP_WINDOWS = 4096
REFERENCES = ("system", "data")
#: The most output times per trajectory of a simulated reference: more than any error curve needs, and a slip
#: such as horizons (1, 1e6) would otherwise run for hours before saying anything.
MAX_EVALUATION_TIMES = 100_000


class Report:
    """Scores per model (``rows``) and error-against-time curves (``curves``, on the axis ``times``); writes JSON
    and Markdown.

    ``trajectories`` keeps the rollouts ``(N, T, D)`` behind the scores (name -> tensor, NaN past a trajectory's
    end), ``truth`` the reference they were scored against (the simulated truth or the recorded test
    trajectories) at ``truth_times`` (``(T,)`` or ``(N, T)``), and ``uncertainty`` an ensemble's calibration,
    interval bounds ``lower, upper (N, T, D)``, ``trust_horizons`` and ``valid_times`` ``(N,)`` (name -> dict), for
    figures; none of them is written to the files.
    A score that cannot be computed (a field error without a true system) is None, "n/a" in the Markdown table.
    """

    def __init__(self, rows: dict, curves: dict, times: np.ndarray, meta: dict, trajectories: dict | None = None, *,
                 truth: torch.Tensor | None = None, truth_times: torch.Tensor | None = None,
                 uncertainty: dict | None = None):
        self.rows, self.curves, self.times, self.meta = rows, curves, times, meta
        self.trajectories = trajectories or {}
        self.truth, self.truth_times = truth, truth_times
        self.uncertainty = uncertainty or {}

    def to_dict(self) -> dict:
        """Plain JSON data (a curve's NaN, where no trajectory is observed, becomes None)."""
        return {"meta": self.meta, "rows": self.rows, "times": self.times.tolist(),
                "curves": {name: {k: [_number(v) for v in values] for k, values in c.items()}
                           for name, c in self.curves.items()}}

    def to_markdown(self) -> str:
        horizons = self.meta["horizons"]
        t_train = self.meta["t_train"]
        exponent = self.meta.get("lyapunov_exponent")
        k = self.meta.get("k_steps", K_STEPS)
        head = ["model", "params", *(f"median err @ t={h * t_train:g}" for h in horizons),
                "valid time" + (" (Lyapunov times)" if exponent else ""), "1-step err", f"{k}-step err",
                "field err (test)", "field err (grid)", "energy drift @ end", "NFE", "rollout s"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, r in self.rows.items():
            energy = r.get("energy_drift")
            cells = [name, str(r["parameters"]), *(_cell(r["median_error"][str(h)]) for h in horizons),
                     f"{r['valid_time']:.2f}" + (f" ({r['valid_lyapunov_times']:.2f})" if exponent else ""),
                     _cell(r.get("one_step_error")), _cell(r.get("k_step_error")),
                     _cell(r["field_error_test"]), _cell(r["field_error_grid"]),
                     "" if energy is None else _cell(energy[str(horizons[-1])]),
                     "" if r["nfe"] is None else str(r["nfe"]),
                     "failed" if r.get("failed") else f"{r['rollout_seconds']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += self._uncertainty_table()
        for name, r in self.rows.items():
            if r.get("failed"):
                lines += ["", f"{name}: {r['failed']}"]
            if r.get("equations"):
                lines += ["", f"Equations learned by {name}:", "", *(f"    {line}" for line in r["equations"])]
        return "\n".join(lines)

    def _uncertainty_table(self) -> list[str]:
        """The ensembles' trust scores (none: no lines): coverage of their intervals at each horizon, recalibrated
        (and as the spread says), and the median predicted trust horizon next to the median valid time."""
        scored = {name: r["uncertainty"] for name, r in self.rows.items() if r.get("uncertainty")}
        if not scored:
            return []
        horizons, t_train = self.meta["horizons"], self.meta["t_train"]
        level = 100 * self.meta.get("level", 0.9)
        head = ["model", "members", *(f"{level:g}% coverage @ t={h * t_train:g} (raw)" for h in horizons),
                "predicted trust horizon", "valid time", "rank correlation"]
        lines = ["", f"Trust without the truth: {level:g}% prediction intervals recalibrated on the validation split "
                     "(as the members' spread says, raw); median predicted trust horizon and valid time (error "
                     f"threshold {self.meta['threshold']:g}); their rank correlation over the test trajectories.", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, u in scored.items():
            cells = [name, str(u["members"]),
                     *(f"{_percent(u['coverage'][str(h)])} ({_percent(u['coverage_raw'][str(h)])})" for h in horizons),
                     f"{u['trust_horizon']:.2f}", f"{self.rows[name]['valid_time']:.2f}",
                     "n/a" if u["trust_rank_correlation"] is None else f"{u['trust_rank_correlation']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    def save(self, out_dir) -> Path:
        """Write ``report.json`` and ``report.md`` into ``out_dir`` (atomically); returns the folder."""
        out = Path(out_dir)
        with atomic_write(out / "report.json", "report") as handle:
            handle.write((json.dumps(self.to_dict(), indent=1) + "\n").encode())
        with atomic_write(out / "report.md", "report") as handle:
            handle.write((self.to_markdown() + "\n").encode())
        return out


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _cell(value) -> str:
    """A score in the Markdown table: ``1.23e-02``, or ``n/a`` where it is not defined."""
    return "n/a" if value is None else f"{value:.2e}"


def compare(models: dict, dataset: TrajectoryDataset, system: System | None = None, *,
            horizons=None, reference: str | None = None, threshold: float = 0.1, grid_points: int = 32, seed: int = 0,
            k_steps: int = K_STEPS, level: float = 0.9, progress: bool = False, device="auto") -> Report:
    """Score ``models`` (name -> object with ``rollout``) on ``dataset``'s test split; see the module doc.

    ``horizons`` are multiples of the training horizon ``t_train`` (default ``HORIZONS`` against the
    system, ``(1, data end / t_train)`` against the data); ``reference`` is ``"system"`` or ``"data"``
    (default: the system where the dataset has one, else the data). ``system`` defaults to the dataset's own
    (if any) and is added as the row ``"true system"``; without one, the scores that need the true field
    (field errors, energy drift) are None. ``k_steps``: the ``k`` of the k-step prediction error.
    An :class:`~physode.Ensemble` of two or more members is scored by its mean and gets a row ``"uncertainty"``
    too (see :mod:`physode.uncertainty`): the coverage of its prediction intervals at nominal ``level``,
    recalibrated on the validation split, and its predicted trust horizon against its valid time.
    The truth and every rollout run on ``device`` (``"auto"``: the GPU when present; models that are
    ``torch.nn.Module`` are moved there); each rollout comes back to the CPU once for the scores.
    """
    device = resolve_device(device)
    reference = default_reference(dataset) if reference is None else reference
    if system is None and (reference == "system" or dataset.has_system):
        system = dataset.system  # against the system, a dataset without one says here how to register it
    if system is not None and system.spec() != dataset.system_spec:
        raise PhysodeError(f"system {system.spec()} is not the dataset's {dataset.system_spec}; pass the matching one")
    if not models:
        raise PhysodeError("models is empty; pass a dict of name -> model")
    horizons = evaluation_horizons(dataset, horizons, reference)
    threshold = positive_float(threshold, "threshold")
    seed = seed_value(seed)
    k_steps = positive_int(k_steps, "k_steps")
    level = check_level(level)
    controlled = reference == "data" and dataset.u is not None  # recorded controls drive the rollouts
    for name, model in models.items():
        if getattr(model, "state_dim", dataset.state_dim) != dataset.state_dim:
            raise PhysodeError(f"model {name!r} has state_dim {model.state_dim}, the dataset {dataset.state_dim}")
        refuse_other_system(model, dataset.system_spec, "the dataset", "compare it on data of its own system",
                            name=f"model {name!r}")
        controls = getattr(model, "control_dim", 0)
        if controlled and controls != dataset.u.shape[-1]:
            raise PhysodeError(f"model {name!r} takes {controls} controls and the data were recorded with "
                               f"{dataset.u.shape[-1]}; against the data, models are driven by the recorded controls")
        if not controlled and isinstance(model, DynamicsModel) and model.control_dim:
            raise PhysodeError(f"model {name!r} takes controls; against the system, compare scores uncontrolled rollouts "
                               "only (reference='data' drives models with a dataset's recorded controls)")
    test = dataset.part_or("test", "all", "the evaluation")
    t_end = max(horizons) * dataset.t_train
    u = None
    if reference == "system":
        axis = _evaluation_grid(dataset, horizons)
        affordable(8.0 * (len(models) + 1) * len(test) * len(axis) * dataset.state_dim, "the evaluation grid (horizons)")
        x0 = test.x_clean[:, 0]
        times, observed = axis, torch.ones(len(test), len(axis), dtype=torch.bool)
        truth = simulate(system, x0, times, device=device).cpu()
    else:  # the test trajectories themselves, cut at the largest horizon
        columns = int((test.times <= t_end * (1 + 1e-9)).sum(1).max())
        times = test.t[..., :columns].contiguous()
        observed = test.mask[:, :columns] & (test.times[:, :columns] <= t_end * (1 + 1e-9))
        truth = torch.where(observed.unsqueeze(-1), test.x_clean[:, :columns], math.nan)
        x0 = truth[:, 0]
        u = None if test.u is None else test.u[:, : columns - 1].contiguous()
        axis = times if times.ndim == 1 else _evaluation_grid(dataset, horizons, start=float(times[:, 0].min()))
    own_times = times.expand(len(test), -1) if times.ndim == 1 else times
    fields = system is not None
    states = test.x_clean[test.train_time_mask]  # test states within the training horizon, at their own times
    state_times = test.times[test.train_time_mask]  # (a time-dependent field is compared where the data were)
    grid = _box_grid(dataset.x_clean[dataset.mask], grid_points, seed)
    exponent = getattr(system, "lyapunov_exponent", None)
    steps = _step_windows(test, k_steps, t_end, seed)

    rows, curves, trajectories, uncertainty = {}, {}, {}, {}
    x0_device, times_device, states_device, grid_device = (v.to(device) for v in (x0, times, states, grid))
    u_device = None if u is None else u.to(device)
    state_times_device = state_times.to(device)
    candidates = ({"true system": system} if system is not None else {}) | models
    for name, model in tqdm(candidates.items(), desc="evaluate", unit="model", disable=not progress):
        if isinstance(model, torch.nn.Module):
            model.to(device)
        start = time.perf_counter()
        spread = isinstance(model, Ensemble) and model.size >= 2  # scored by its mean, with its spread
        args = () if u_device is None else (u_device,)
        try:
            with torch.no_grad():
                if spread:
                    prediction = _on_cpu(model.predict(x0_device, times_device, *args))
                    pred = prediction.mean
                else:
                    pred = model.rollout(x0_device, times_device, *args).double().cpu()
        except SolverError as exc:
            if name == "true system":
                raise
            rows[name] = _failed_row(model, horizons, f"its rollout to t={t_end:g} failed ({exc})")
            continue
        seconds = time.perf_counter() - start
        pred = torch.where(observed.unsqueeze(-1), pred, math.nan)  # nothing past a trajectory's end
        trajectories[name] = pred
        squared_error, squared_norm = ((pred - truth) ** 2).sum(-1), (truth**2).sum(-1)  # (N, T), NaN unobserved
        err = (squared_error.sqrt() / squared_norm.sqrt().clamp_min(1e-12)).numpy()
        on_axis = [_on_axis(values, own_times, observed, axis) for values in (err, squared_error.numpy(),
                                                                              squared_norm.numpy())]
        curves[name] = _curves(*on_axis)
        at = {str(h): int(torch.argmin((axis - h * dataset.t_train).abs())) for h in horizons}
        rows[name] = {
            "parameters": int(getattr(model, "num_parameters", 0)),
            "median_error": {h: _number(curves[name]["median"][i]) for h, i in at.items()},
            "mean_error": {h: _number(curves[name]["mean"][i]) for h, i in at.items()},
            "p90_error": {h: _number(curves[name]["p90"][i]) for h, i in at.items()},
            "nmse": {h: _number(curves[name]["nmse"][i]) for h, i in at.items()},
            "valid_time": float(np.median(valid := crossing_times(err, own_times.numpy(), observed.numpy(), threshold))),
            "one_step_error": _step_error(model, steps, 1, device),
            "k_step_error": _step_error(model, steps, k_steps, device),  # (finite where the whole rollout was)
            "field_error_test": _field_error(model, system, states_device, state_times_device) if fields else None,
            "field_error_grid": _field_error(model, system, grid_device, 0.0) if fields else None,
            "energy_drift": _energy_drift(system, pred, at) if fields else None,
            "momentum_drift": _momentum_drift(system, pred) if fields else None,
            "nfe": _evaluations(model, t_end),
            "rollout_seconds": seconds,
            "training_seconds": (getattr(model, "training_info", None) or {}).get("seconds"),
        }
        if exponent:
            rows[name]["valid_lyapunov_times"] = rows[name]["valid_time"] * exponent
        if spread:
            rows[name]["uncertainty"], uncertainty[name] = _uncertainty(
                model, prediction, truth, observed, own_times, axis, at, valid, dataset, level, threshold, controlled,
                device)
        if hasattr(model, "equations"):  # a sparse-regression model: its fitted equations are part of its score
            rows[name]["equations"] = model.equations(dataset.state_names)
    meta = {"system": dataset.system_spec, "source": dataset.name, "t_train": dataset.t_train, "horizons": list(horizons),
            "threshold": threshold, "n_test": len(x0), "t_end": t_end, "reference": reference, "k_steps": k_steps,
            "lyapunov_exponent": exponent, "level": level}
    return Report(rows, curves, axis.numpy(), meta, trajectories, truth=truth, truth_times=times,
                  uncertainty=uncertainty)


def _on_cpu(prediction):
    """An ensemble's prediction in float64 on the CPU, where the scores are computed."""
    return type(prediction)(*(v.double().cpu() for v in prediction))


def _uncertainty(model, prediction, truth, observed, own_times, axis, at, valid, dataset, level, threshold, controlled,
                 device):
    """An ensemble's scores of trust: ``(row, kept)``. ``row`` (JSON) holds the observed coverage of its intervals at
    nominal ``level`` at each horizon, before (``coverage_raw``) and after recalibration on the validation split
    (``coverage``); the median predicted trust horizon, the rank correlation of the trajectories' predicted trust
    horizons with their valid times (``valid: (N,)``), and nominal against observed coverage at every level
    (``calibration_curve``, over all test states). ``kept`` holds what figures draw: the calibration, the
    interval's bounds ``(N, T, D)`` and both horizons per trajectory."""
    calibration = _calibration(model, dataset, controlled, device)
    row = {"members": int(model.size), "level": level, "recalibrated": not calibration.identity}
    for key, way in (("coverage_raw", Calibration()), ("coverage", calibration)):
        lower, upper = prediction_interval(prediction, level, way, own_times)
        inside = _on_axis(coverage(lower, upper, truth, observed), own_times, observed, axis)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # times no trajectory reaches
            curve = np.nanmean(inside, 0)
        row[key] = {h: _number(curve[i]) for h, i in at.items()}
    horizons = crossing_times(predicted_errors(prediction, calibration, own_times).numpy(), own_times.numpy(),
                              observed.numpy(), threshold)
    row["trust_horizon"] = float(np.median(horizons))
    row["trust_rank_correlation"] = _rank_correlation(horizons, valid)
    row["calibration_curve"] = {"raw": calibration_curve(prediction, truth, observed),
                                "recalibrated": calibration_curve(prediction, truth, observed, calibration,
                                                                  times=own_times)}
    return row, {"calibration": calibration, "lower": lower, "upper": upper, "trust_horizons": horizons,
                 "valid_times": valid}


def _calibration(model, dataset: TrajectoryDataset, controlled: bool, device) -> Calibration:
    """The ensemble's recalibration on the validation trajectories (their observed clean states, with their
    recorded controls where the rollouts take them); the identity where there are none to fit it on (no validation
    split, or data driven by controls that the rollouts leave out)."""
    if not (dataset.split == SPLITS.index("val")).any() or (dataset.u is not None and not controlled):
        return Calibration()
    val = dataset.val
    args = () if not controlled else (val.u.to(device),)
    with torch.no_grad():
        prediction = _on_cpu(model.predict(val.x_clean[:, 0].to(device), val.t.to(device), *args))
    for bands in (CALIBRATION_BANDS, 1):  # too few validation times for the bands: one map for all
        try:
            return Calibration.fit(prediction, val.x_clean, val.mask, val.times, bands)
        except PhysodeError:
            continue
    return Calibration()  # validation trajectories of one observation: nothing to fit


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two ``(N,)`` arrays; None where either is constant (no ranks to compare)."""
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(spearmanr(a, b).statistic)


def _failed_row(model, horizons, why: str) -> dict:
    """The row of a model whose rollout blew up: no scores ("n/a"), valid time 0, and why (``"failed"``)."""
    none = {str(h): None for h in horizons}
    return {"parameters": int(getattr(model, "num_parameters", 0)), "median_error": none, "mean_error": none,
            "p90_error": none, "nmse": none, "valid_time": 0.0, "one_step_error": None, "k_step_error": None,
            "field_error_test": None, "field_error_grid": None, "energy_drift": None, "momentum_drift": None,
            "nfe": None, "rollout_seconds": None, "training_seconds": None, "failed": why}


def default_reference(dataset: TrajectoryDataset) -> str:
    """What :func:`compare` scores against by default: ``"system"`` where the dataset's true system is at hand
    (or named but not registered: it then says how to register it), else ``"data"`` (recorded data)."""
    return "system" if dataset.system_spec is not None else "data"


def evaluation_horizons(dataset: TrajectoryDataset, horizons=None, reference: str = "system") -> tuple:
    """Check ``horizons`` and ``reference`` for :func:`compare` on ``dataset`` (cheap: call it before training).

    Returns the horizons (the defaults filled in). Against the data, every horizon must lie within the
    test trajectories' shared time grid.
    """
    reference = default_reference(dataset) if reference is None else reference
    if reference not in REFERENCES:
        raise unknown_name("reference", reference, REFERENCES)
    test = dataset.part_or("test", "all", None)  # compare itself warns when there is no test split
    if reference == "data":
        data_end = float(test.end_times.max()) / dataset.t_train
        grid = test.times[0, : int(test.lengths.max())]
        shared = bool((test.times == test.times[0]).all())  # one grid: horizons must fall on it
        horizons = (min(1.0, data_end), data_end) if horizons is None else horizons
    horizons = tuple(sorted({positive_float(h, "horizons[i]") for h in (HORIZONS if horizons is None else horizons)}))
    if not horizons:
        raise PhysodeError("horizons is empty; pass multiples of t_train such as (1, 2, 4)")
    if reference == "data" and max(horizons) > data_end * (1 + 1e-9):
        raise PhysodeError(f"horizons {list(horizons)} reach t={max(horizons) * dataset.t_train:g}, beyond the data, "
                           f"which end at t={data_end * dataset.t_train:g} ({data_end:g} x t_train); pass horizons up "
                           f"to {data_end:g}, or reference='system' to simulate the truth further")
    if reference == "data" and shared:
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
    return float(dataset.times.diff(dim=1)[dataset.mask[:, 1:]].mean())


def _evaluation_times(dataset: TrajectoryDataset, t_end: float) -> int:
    """About how many output times a simulated reference has on ``[0, t_end]`` (see :func:`_evaluation_grid`)."""
    return round(t_end / _spacing(dataset)) + 1


def _evaluation_grid(dataset: TrajectoryDataset, horizons, start: float = 0.0) -> torch.Tensor:
    """The simulated reference's output times (and the axis of error curves on per-trajectory grids): ``start,
    start + s, ...`` at the data's mean spacing ``s``, and every horizon's time exactly (errors at a horizon are
    read at that time, whatever the spacing)."""
    spacing = _spacing(dataset)
    marks = torch.tensor([h * dataset.t_train for h in horizons], dtype=torch.float64)
    regular = torch.arange(start, float(marks[-1]), spacing, dtype=torch.float64)
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


def crossing_times(err: np.ndarray, times: np.ndarray, observed: np.ndarray, threshold: float) -> np.ndarray:
    """``(N,)``: per trajectory, the first observed time whose error ``err: (N, T)`` exceeds ``threshold``; a
    trajectory that stays within it gets its last observed time (``times, observed: (N, T)``). Of the actual errors
    these are the valid times; of an ensemble's predicted errors, the predicted trust horizons."""
    over = (err > threshold) & observed
    last = observed.sum(1) - 1
    first = np.where(over.any(1), over.argmax(1), last)
    return times[np.arange(len(times)), first]


def _on_axis(values: np.ndarray, times: torch.Tensor, observed: torch.Tensor, axis: torch.Tensor) -> np.ndarray:
    """Per-trajectory ``values: (N, T)`` at their own ``times: (N, T)`` (where ``observed``) brought onto the shared
    ``axis: (A,)`` of the error curves: as they are where a trajectory's times are the axis, else interpolated
    linearly within each trajectory's observed span; NaN outside it. Returns ``(N, A)``."""
    if times.shape[1] == len(axis) and bool((times == axis).all()):
        return np.where(observed.numpy(), values, np.nan)
    out = np.full((len(values), len(axis)), np.nan)
    grid = axis.numpy()
    for i in range(len(values)):
        own, seen = times[i].numpy(), observed[i].numpy()
        inside = (grid >= own[seen][0]) & (grid <= own[seen][-1])
        out[i, inside] = np.interp(grid[inside], own[seen], values[i, seen])
    return out


def _curves(err: np.ndarray, squared_error: np.ndarray, squared_norm: np.ndarray) -> dict:
    """The error curves ``(A,)`` over the trajectories at each time (NaN-aware: the trajectories observed then):
    median, mean and 90th percentile of the relative error, and the normalised MSE; NaN where none is observed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # times that no trajectory reaches: all-NaN columns
        seen = ~np.isnan(err).all(0)
        nmse = np.where(seen, np.nansum(squared_error, 0) / np.maximum(np.nansum(squared_norm, 0), 1e-30), np.nan)
        return {"median": np.nanmedian(err, 0), "mean": np.nanmean(err, 0), "p90": np.nanpercentile(err, 90, axis=0),
                "nmse": nmse}


def _number(value) -> float | None:
    """A score as a float, None where it is not defined (NaN: no trajectory reaches that time)."""
    return None if not np.isfinite(value) else float(value)


def _step_windows(test: TrajectoryDataset, k_steps: int, t_end: float, seed: int, limit: int = MAX_STEP_WINDOWS):
    """The starts of the one-step and k-step predictions: every observation ``(trajectory, index)`` of the test
    trajectories that has ``k_steps`` more observations up to ``t_end`` (at most ``limit`` of them, drawn with
    ``seed``); with fewer observations, as many steps as the trajectories have. Returns ``(test, rows, starts, reach,
    k)``: the starts' trajectories and indices ``(M,)``, the observations up to ``t_end`` per trajectory ``(N,)``, and
    the largest ``k`` they allow."""
    reach = (test.mask & (test.times <= t_end * (1 + 1e-9))).sum(1)  # observations up to t_end per trajectory
    k = max(1, min(k_steps, int(reach.max()) - 1))
    pairs = [(i, j) for i in range(len(test)) for j in range(int(reach[i]) - 1)]  # one step at least
    if len(pairs) > limit:
        order = np.random.default_rng([seed, 5]).permutation(len(pairs))[:limit]
        pairs = [pairs[j] for j in sorted(order)]
    rows, starts = (torch.tensor(v, dtype=torch.long) for v in zip(*pairs, strict=True))
    return test, rows, starts, reach, k


def _step_error(model, steps, k: int, device) -> float | None:
    """The median relative error ``||x_hat(t_{j+k}) - x(t_{j+k})|| / ||x(t_{j+k})||`` of ``k``-step predictions from
    the observed states ``x(t_j)`` of :func:`_step_windows` (with the recorded controls); None without such pairs."""
    test, rows, starts, reach, most = steps
    k = min(k, most)
    keep = starts + k < reach[rows]
    if not bool(keep.any()):
        return None
    rows, starts = rows[keep], starts[keep]
    index = starts[:, None] + torch.arange(k + 1)
    times = test.times[rows[:, None], index]
    target = test.x_clean[rows, starts + k]
    if test.u is not None and not getattr(model, "control_dim", 0):
        return None  # data driven by controls, a model without them: no like-for-like prediction
    args = () if test.u is None else (test.u[rows[:, None], index[:, :-1]].to(device),)
    with torch.no_grad():
        pred = model.rollout(test.x_clean[rows, starts].to(device), times.to(device), *args)[:, -1].double().cpu()
    return float(((pred - target).norm(dim=-1) / target.norm(dim=-1).clamp_min(1e-12)).median())


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

"""The main job behind ``physode compare SYSTEM``: simulate, train every model, evaluate, draw; and
``physode evaluate``, which scores models trained elsewhere on a given dataset.

Everything lands in one run folder (default ``runs/<system>-<timestamp>/``):

    data.npz                      the simulated dataset
    <model>/model.pt, ...         one training run per model (checkpoint.pt, metrics.jsonl)
    report.json, report.md        the comparison (physode.compare)
    figures/*.png                 vector fields (2-D systems) or orbits (n-body), phase portraits,
                                  error against horizon, energy, training curves

Any stage whose output already exists in the folder is reused instead of recomputed, and a training
that was interrupted (Ctrl-C, SIGTERM) or killed resumes from its ``checkpoint.pt``, so rerunning the same
command continues where the job stopped; ``physode plot RUN_DIR`` redraws from the files. A job holds its
folder's lock (:mod:`physode.lock`) throughout: a second job or command writing there is refused at once.
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import load_model
from .checks import positive_int
from .data import TrajectoryDataset
from .devices import resolve_device
from .errors import DataMisfitError, PhysodeError, unknown_name
from .evaluate import compare, evaluation_horizons
from .lock import folder_lock
from .models import MODELS
from .signals import STOPPED, Terminated
from .systems import BUILTIN_SYSTEMS, System, resolve_system
from .systems.base import defines_energy
from .train import TrainConfig, build_model, fit, model_misfit, particles_of
from .uncertainty import check_level

#: Dataset and training size per preset: "smoke" checks the plumbing in seconds (tests), "quick" runs in a
#: few minutes on 2 CPU cores, "full" makes the README's figures.
PRESETS = {
    "smoke": {"n_trajectories": 16, "t_end": 2.0, "dt": 0.1, "steps": 10, "time_limit": 10.0, "hidden": 8,
              "warm_start_steps": 50},
    "quick": {"n_trajectories": 64, "t_end": 10.0, "dt": 0.1, "steps": 300, "time_limit": 15.0, "hidden": 32,
              "warm_start_steps": 3000},
    "full": {"n_trajectories": 256, "t_end": 10.0, "dt": 0.1, "steps": 3000, "time_limit": 120.0, "hidden": 64,
             "warm_start_steps": 5000},
}
#: Per built-in system, the parameters of the default comparison (n-body: three bodies in the plane; Duffing: the
#: forced, chaotic double well of Guckenheimer & Holmes), and grid settings that replace the preset's where the
#: dynamics are faster than its step (``dt``) resolves.
SYSTEM_DEFAULTS = {
    "pendulum": {},
    "spring_mass": {"params": {"n_masses": 1}},
    "nbody": {"params": {"n_bodies": 3, "dim": 2}},
    "double_pendulum": {"dt": 0.05},
    "cart_pole": {},
    "van_der_pol": {},
    "duffing": {"params": {"alpha": -1.0, "beta": 1.0, "delta": 0.3, "gamma": 0.5, "omega": 1.2}},
    "lorenz": {"dt": 0.02},
}


def comparison_system(system) -> tuple[System, dict]:
    """The system of ``physode compare SYSTEM`` and the grid settings that replace the preset's: a System as it is,
    a built-in's name with its comparison defaults (:data:`SYSTEM_DEFAULTS`), or any other name or import path
    ``module:Class`` that :func:`~physode.systems.resolve_system` takes."""
    named = not isinstance(system, System)
    if named:
        system = resolve_system(system)
    defaults = SYSTEM_DEFAULTS.get(system.name, {}) if type(system) in BUILTIN_SYSTEMS else {}
    if named and defaults.get("params"):
        system = type(system)(**defaults["params"])
    return system, {key: value for key, value in defaults.items() if key != "params"}


def run_compare(system_name=None, preset: str = "quick", out_dir=None, models=None, seed: int = 0,
                horizons=None, reference: str | None = None, progress: bool = False, device="auto", log=print,
                data=None, ensemble: int | None = None, level: float = 0.9) -> Path:
    """Run (or continue) the comparison job; returns the run folder.

    ``system_name``: see :func:`comparison_system`; or, instead, ``data``: a dataset file (``.npz``, e.g. recorded
    data from ``physode import`` or ``physode collect``) to train and score on, copied into the run folder (the
    preset then sets only the training). ``models``: names from ``MODELS``; None: every model that can represent
    the dynamics (:func:`physode.train.model_misfit` says why one cannot, e.g. an HNN on an odd number of
    states). ``ensemble``: train each model as an ensemble of that many members (None: one model each), whose
    report adds the trust scores of :mod:`physode.uncertainty`. ``horizons``, ``reference`` and ``level`` are passed
    to :func:`physode.compare`; every stage runs on ``device``.
    """
    device = resolve_device(device)
    if ensemble is not None:
        positive_int(ensemble, "ensemble")
    check_level(level)
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    for name in models or ():
        if name not in MODELS:
            raise unknown_name("model", name, MODELS)
    if models is not None and not models:  # refused here, before anything is simulated or written
        raise PhysodeError(f"models is empty: name at least one of {', '.join(MODELS)}")
    if (system_name is None) == (data is None):
        raise PhysodeError("compare needs a system to simulate or a dataset (data=...), and not both; e.g. "
                           "`physode compare pendulum` or `physode compare --data data.npz`")
    if data is not None:
        given = TrajectoryDataset.load(data)
        system, settings = None, dict(PRESETS[preset])
        label, dims, time_dependent = given.name, given.state_dim, given.time_dependent
        controls, particles = (0 if given.u is None else given.u.shape[2]), particles_of(given)
    else:
        system, grid = comparison_system(system_name)
        settings = {**PRESETS[preset], **grid}
        label, dims, time_dependent = system.name, system.state_dim, system.time_dependent
        controls = 0  # the comparison simulates without controls
        particles = (system.params.n_bodies, system.params.dim) if system.name == "nbody" else None
    stamp = time.strftime('%Y%m%d-%H%M%S')
    out = Path(out_dir) if out_dir is not None else Path("runs") / f"{_folder_name(label)}-{stamp}"
    misfits = {name: model_misfit(name, dims, time_dependent, label, controls, particles) for name in MODELS}
    chosen = models is not None
    if models is None:
        models = tuple(name for name in MODELS if misfits[name] is None)
        for name in MODELS:
            if misfits[name] is not None:
                log(f"leaving out {name}: {misfits[name]}")
    else:
        for name in models:
            if misfits[name] is not None:
                raise PhysodeError(misfits[name])

    # held from before the first stage is looked at to the end: another job or training here is refused at once
    with folder_lock(out, "run folder"):
        data_path = out / "data.npz"
        if data is not None:
            dataset = given
            if data_path.exists():
                if TrajectoryDataset.load(data_path).fingerprint() != dataset.fingerprint():
                    raise PhysodeError(f"{out} holds a run on other data than {data}; choose another output folder")
                log(f"reusing {data_path}: {dataset.summary()}")
            horizons = evaluation_horizons(dataset, horizons, reference)  # refuse bad horizons before writing anything
            if not data_path.exists():
                dataset.save(data_path)
                log(f"copied {data} to {data_path}: {dataset.summary()}")
        elif data_path.exists():
            dataset = TrajectoryDataset.load(data_path)
            if dataset.system_spec != system.spec():
                held_params = dataset.system_spec["params"] if dataset.system_spec else ""
                raise PhysodeError(f"{out} holds a run of {dataset.name} {held_params}, not of {system.name} "
                                   f"{system.spec()['params']}; choose another output folder")
            held = (len(dataset), dataset.meta.get("t_end"), dataset.meta.get("seed"))
            if held != (settings["n_trajectories"], settings["t_end"], seed):  # its models were trained on that data
                raise PhysodeError(f"{out} holds a run of {held[0]} trajectories to t = {held[1]} with seed {held[2]}, not the "
                                   f"{preset} preset's {settings['n_trajectories']} to t = {settings['t_end']} with seed "
                                   f"{seed}; continue it with the same --preset and --seed, or choose another output folder")
            log(f"reusing {data_path}: {dataset.summary()}")
            horizons = evaluation_horizons(dataset, horizons, reference)  # refuse bad horizons before training
        else:
            dataset = TrajectoryDataset.generate(system, settings["n_trajectories"], settings["t_end"], settings["dt"],
                                                 seed=seed, progress=progress, device=device)
            horizons = evaluation_horizons(dataset, horizons, reference)  # ... and before writing anything
            dataset.save(data_path)
            log(f"simulated {data_path}: {dataset.summary()}")
        trained, data_id = {}, dataset.fingerprint()
        for name in models:
            model_path = out / name / "model.pt"
            if model_path.exists():
                trained[name] = trained_on(data_id, model_path, device)
                if getattr(trained[name], "size", None) != ensemble:
                    held = getattr(trained[name], "size", None)
                    raise PhysodeError(f"{model_path} holds {'one model' if held is None else f'an ensemble of {held}'}, "
                                       f"not {'one' if ensemble is None else f'an ensemble of {ensemble}'}; continue the "
                                       f"run with {'no --ensemble' if held is None else f'--ensemble {held}'}, or choose "
                                       "another output folder")
                log(f"reusing {model_path}")
                continue
            torch.manual_seed(seed)
            sized = {"hidden": settings["hidden"]} if "hidden" in inspect.signature(MODELS[name]).parameters else {}
            if ensemble is not None:
                sized["ensemble"] = ensemble
            model = build_model(name, dataset, **sized)
            config = TrainConfig(steps=settings["steps"], time_limit=settings["time_limit"], seed=seed,
                                 warm_start_steps=settings["warm_start_steps"])
            resume = (out / name / "checkpoint.pt").exists()  # a training stopped by Ctrl-C or a crash continues
            try:
                result = fit(model, dataset, config, out_dir=out / name, progress=progress, resume=resume,
                             device=device)
            except DataMisfitError as error:  # a row the user did not ask for by name is left out, saying why
                if chosen:
                    raise
                log(f"leaving out {name}: {error}")
                continue
            if result.stopped in STOPPED:  # stopped by SIGINT or SIGTERM: the job stops as it would on either
                stop = Terminated if result.stopped == "terminated" else KeyboardInterrupt
                raise stop(f"training {name} {result.stopped} at step {result.steps}")
            trained[name] = load_model(model_path, map_location=device)
            log(f"trained {name}: {result.steps} steps in {result.seconds:.0f}s, validation error {result.best_val_error:.3g}")

        report = compare(trained, dataset, horizons=horizons, reference=reference, level=level, progress=progress,
                         device=device)
        report.save(out)
        draw(out, dataset, trained, report, progress=progress, log=log)
        log(report.to_markdown())
        log(f"wrote {out}/report.md, report.json and figures/")
        return out


def evaluate_models(data_path, model_paths, out_dir, horizons=None, reference: str | None = None, level: float = 0.9,
                    progress: bool = False, device="auto", log=print) -> Path:
    """``physode evaluate``: score trained models on the dataset at ``data_path``; returns ``out_dir``.

    ``model_paths``: ``model.pt`` files or the run folders that hold them; each model is named after its
    folder (``runs/pend/node/model.pt`` is ``node``). Unlike the models of :func:`run_compare`, they may have
    been trained on other data (e.g. scored on held-out trajectories of their system): only the system must
    match. Writes ``report.json``, ``report.md`` and ``figures/`` (with each model's training curves from the
    ``metrics.jsonl`` beside its ``model.pt``) into ``out_dir``, holding its lock throughout (another command
    writing there is refused at once; a failed evaluation leaves no folder it made).
    """
    device = resolve_device(device)
    check_level(level)
    with folder_lock(out_dir, "output folder") as out:
        dataset = TrajectoryDataset.load(data_path)
        models, runs = {}, {}
        for given in model_paths:
            path = Path(given) / "model.pt" if Path(given).is_dir() else Path(given)
            name = path.resolve().parent.name or "model"
            if name in models:
                raise PhysodeError(f"two models would both be named {name!r} (after their folders: {runs[name]} and "
                                   f"{path.parent}); give each model.pt its own folder name")
            models[name], runs[name] = load_model(path, map_location=device), path.parent
        report = compare(models, dataset, horizons=horizons, reference=reference, level=level, progress=progress,
                         device=device)
        report.save(out)
        draw(out, dataset, models, report, progress=progress, runs=runs, log=log)
        log(report.to_markdown())
        log(f"wrote {out}/report.md, report.json and figures/")
        return out


def draw(out: Path, dataset: TrajectoryDataset, models: dict, report, progress: bool = False,
         runs: dict | None = None, log=print) -> None:
    """Write every figure of a run into ``out/figures``; ``runs`` maps model names to the folders holding their
    ``metrics.jsonl`` (default ``out/<name>``). Without the true system (recorded data) the figures that need its
    field (vector fields, energy, orbits) are left out, with a line to ``log`` that says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plot

    figures = out / "figures"
    for old in figures.glob("*_*.png"):  # a model's figures from an earlier run of the job without that model
        model_name = old.stem.rsplit("_", 1)[1]
        if model_name in MODELS and model_name not in models:
            old.unlink()
    system = dataset.system if dataset.has_system else None
    # the rollouts compare already made (none of a model whose rollout failed: the report says so)
    rollouts = {name: report.trajectories[name] for name in models if name in report.trajectories}
    plot.error_horizon_figure(report, path=figures / "error_vs_horizon.png")
    plane = (0,) if dataset.state_dim == 1 else (0, dataset.state_dim // 2)  # one state is drawn against time
    plot.phase_portrait_figure(report.truth_times, report.truth, rollouts, t_train=dataset.t_train,
                               names=dataset.state_names, dims=plane, path=figures / "phase_portraits.png")
    if report.uncertainty:  # ensembles: how well their spread predicts their error
        plot.calibration_figure(report, path=figures / "calibration.png")
        for name in report.uncertainty:
            plot.error_band_figure(report, name, names=dataset.state_names, path=figures / f"error_band_{name}.png")
    if system is None:
        log(f"no true system for {dataset.name}: the vector-field and energy figures, which need its field, are left out")
    elif defines_energy(system) and report.truth_times.ndim == 1:  # (one shared time axis)
        plot.energy_figure(system, report.truth_times, {"truth": report.truth, **rollouts}, path=figures / "energy.png")
    for name, model in tqdm(models.items(), desc="figures", unit="model", disable=not progress):
        if system is not None and dataset.state_dim == 2:
            seen = dataset.part_or("train", "all", None)  # evaluate's held-out data may have no train split
            train_states = seen.x_clean[seen.train_time_mask]
            plot.vector_field_figure(system, model, train_states, path=figures / f"vector_field_{name}.png")
        elif system is not None and dataset.system_spec["name"] == "nbody" and name in rollouts:
            plot.orbits_figure(system, report.truth, rollouts[name], path=figures / f"orbits_{name}.png")
        metrics = (runs or {}).get(name, out / name) / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().strip():
            plot.training_figure(metrics, path=figures / f"training_{name}.png")
        plt.close("all")


def redraw(run_dir) -> Path:
    """``physode plot RUN_DIR``: rebuild the report and every figure from a run folder's files (its lock held, so
    that it never draws from a job that is still writing there)."""
    out = Path(run_dir)
    if not (out / "data.npz").exists():
        raise PhysodeError(f"{out} is not a run folder (no data.npz); run `physode compare SYSTEM --out {out}` first")
    with folder_lock(out, "run folder"):
        dataset = TrajectoryDataset.load(out / "data.npz")
        settings, names = _last_report(out)
        paths = [out / name / "model.pt" for name in names if (out / name / "model.pt").exists()]
        data_id = dataset.fingerprint()
        models = {p.parent.name: trained_on(data_id, p) for p in paths or sorted(out.glob("*/model.pt"))}
        if not models:
            raise PhysodeError(f"{out} holds no trained models (*/model.pt)")
        report = compare(models, dataset, **settings)
        report.save(out)
        draw(out, dataset, models, report)
        return out


def _folder_name(label: str) -> str:
    """``label`` (a system's name, or recorded data's source such as a file name or an env id) as a folder name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(label).stem or label) or "data"


def trained_on(data_id: str, model_path: Path, device="cpu"):
    """The model at ``model_path``, refused when it was trained on other data than the run's data.npz (whose
    :meth:`~physode.TrajectoryDataset.fingerprint` is ``data_id``).

    Models from before checkpoints recorded their data's fingerprint are taken as they are.
    """
    model = load_model(model_path, map_location=device)
    recorded = (model.training_info or {}).get("data") if isinstance(model.training_info, dict) else None
    if recorded is not None and recorded != data_id:
        raise PhysodeError(f"{model_path} was trained on other data than {model_path.parent.parent / 'data.npz'}; "
                           f"remove {model_path.parent} to train it afresh on this data, or choose another output folder")
    return model


def _last_report(out: Path) -> tuple[dict, list]:
    """The horizons and reference of the run's last report, and the models it scored, so that a redraw scores
    the same models the same way (``({}, [])`` without a readable report.json)."""
    try:
        report = json.loads((out / "report.json").read_text())
        meta = report["meta"]
        names = [name for name in report["rows"] if name in MODELS]
        return {"horizons": meta["horizons"], "reference": meta.get("reference")}, names
    except (OSError, ValueError, KeyError, TypeError):
        return {}, []

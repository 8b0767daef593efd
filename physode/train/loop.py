"""The training loop: :func:`fit` sets a run up, runs its phases in order (trajectory matching, then the L-BFGS
polish) and writes its results; one step, its rollback after a failure, and validation."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import save_checkpoint
from ..checks import affordable
from ..collocation import field_samples, fit_field
from ..derivatives import coarse_grid
from ..data import TrajectoryDataset
from ..devices import resolve_device
from ..distributed import World
from ..errors import PhysodeError, SolverError
from ..files import make_folder
from ..lock import folder_lock
from ..models import DynamicsModel, Ensemble, SINDy
from ..signals import STOPPED, StopSignals
from .config import TrainConfig, TrainResult
from .factory import check_compatible
from .metrics import append_metrics, write_metrics
from .resume import resume_state, save_run
from .run import Run, TrainingSolver
from .state import TrainerState
from .windows import WindowLoss, WindowSampler, curriculum_window, relative_errors


def fit(model: DynamicsModel, dataset: TrajectoryDataset, config: TrainConfig | None = None, *, out_dir=None,
        progress: bool = False, resume: bool = False, overwrite: bool = False, device="auto") -> TrainResult:
    """Train ``model`` on ``dataset`` (its train split; the val split for early stopping).

    With ``out_dir``, appends one JSON line per validation to ``metrics.jsonl``, writes the full trainer
    state to ``checkpoint.pt`` every ``checkpoint_every`` steps (atomically: a run killed at any moment
    leaves the last complete one) and the best model to ``model.pt`` at the end; ``resume=True``
    continues from ``checkpoint.pt`` exactly: model, optimiser, schedule, window sampler, step,
    curriculum, early-stopping and rollback state, so that a run killed and resumed ends with the same
    weights as an uninterrupted one (bit for bit on CPU, without ``time_limit``). Other settings are
    refused, except ``steps`` (to extend a run) and ``time_limit``. ``metrics.jsonl`` is rewritten from
    the checkpoint on resume (lines written after it are dropped and written again). Resuming on other data
    than the run's (another :meth:`~physode.TrajectoryDataset.fingerprint`) is refused.

    A fresh run (no ``resume``) into an ``out_dir`` that already holds a run (``model.pt`` or ``checkpoint.pt``)
    is refused, so that nothing trained is lost; ``overwrite=True`` replaces that run. The run holds the lock of
    ``out_dir`` (:func:`~physode.lock.folder_lock`; rank 0 in a distributed run) from before it changes anything
    there to its end: another run into that folder is refused at once. A checkpoint that cannot be written (a full
    disk) stops the run with a PhysodeError, the last one written left whole to resume from.

    SIGINT (Ctrl-C) and SIGTERM stop between two steps: with ``out_dir`` the state is checkpointed, ``model.pt``
    is not written, and the result says ``stopped="interrupted"`` (SIGINT) or ``"terminated"`` (SIGTERM);
    resume to continue.

    ``device``: where to train (``"auto"``: the GPU when present); the model is moved there and stays
    there, and so does the training data (once, before the first step). In a ``torch.distributed``
    process group the run is data parallel (see :mod:`physode.train`); only rank 0 writes to ``out_dir``.
    """
    config = config or TrainConfig()
    if not isinstance(dataset, TrajectoryDataset):
        raise PhysodeError(f"dataset must be a TrajectoryDataset, got {type(dataset).__name__}")
    check_compatible(model, dataset)
    writes = out_dir is not None and World.current("cpu").main  # (only its rank matters here)
    with folder_lock(out_dir) if writes else contextlib.nullcontext():
        if _sparse(model):
            return _fit_sparse(model, dataset, config, out_dir, resume, overwrite)
        return _fit_gradient(model, dataset, config, out_dir, progress, resume, overwrite, device)


def _fit_gradient(model: DynamicsModel, dataset: TrajectoryDataset, config: TrainConfig, out_dir, progress: bool,
                  resume: bool, overwrite: bool, device) -> TrainResult:
    """:func:`fit` of a model trained by gradient steps (all but the sparse regression), its run folder held."""
    device = resolve_device(device)
    world = World.current(device)
    train = dataset.train
    affordable(8.0 * config.batch_size * (config.window + 1) * max(dataset.state_dim, 64),
               f"a training batch of batch_size={config.batch_size} windows", "pass a smaller batch_size")
    # before the run folder: data too sparse for derivatives are refused with nothing written
    samples = _warm_start_samples(model, dataset, config) if config.warm_start else None
    coarse = coarse_grid(train) if samples is not None and config.derivatives == "auto" else None
    if coarse is not None:  # trajectory matching alone, from the initial weights, at its learning rate
        samples = None
    out = _run_folder(out_dir, resume, overwrite)
    data_id = None if out is None else dataset.fingerprint()  # recorded in the run's files only

    model.to(device)
    seen = train.x[train.train_time_mask]  # (M, D): the training trajectories up to t_train, as in the windows
    if not resume:
        model.set_normalization(seen.mean(0), seen.std(0).clamp_min(1e-6))
    windows = WindowSampler(train, model.torch_dtype, config.seed, device, world)
    lr = config.refine_lr if samples is not None else config.lr
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, config.steps) / config.steps))
    )
    if resume:
        state = resume_state(out, dataset, data_id, config, model, optimizer, schedule, windows)
        if world.main:
            write_metrics(out / "metrics.jsonl", state.history)  # drop lines written after the checkpoint
    else:
        state = TrainerState.fresh(model, optimizer, warm_start=samples is not None)
        if out is not None and world.main:  # a fresh run in an old folder: nothing of the old run may pass for this one's
            for name in ("metrics.jsonl", "checkpoint.pt", "model.pt"):
                (out / name).unlink(missing_ok=True)
    # after every input check, so that a warning never precedes an error
    val = dataset.part_or("val", "train", "validation (early stopping, the best model)")
    loss = WindowLoss(model)
    if world.size > 1:  # after the resume: it broadcasts rank 0's weights
        loss = torch.nn.parallel.DistributedDataParallel(loss, device_ids=[device] if device.type == "cuda" else None)
    shard = world.shard(len(val))  # this rank's validation trajectories
    run = Run(model=model, dataset=dataset, config=config, world=world, out=out, data_id=data_id, windows=windows,
              solver=TrainingSolver(model, dataset, config), optimizer=optimizer, schedule=schedule, loss=loss,
              val_x=val.x[shard].to(device), val_t=val.times[shard].to(device),
              val_mask=val.train_time_mask[shard].to(device), val_u=None if val.u is None else val.u[shard].to(device),
              samples=samples, start_time=time.perf_counter() - state.seconds,
              bar=tqdm(total=config.steps, initial=state.step, desc="train", disable=not (progress and world.main)))
    if coarse is not None and not resume:
        _log(run, state, {"step": 0, "event": "warm_start_skipped", "cause": coarse})

    model.train()
    # the training phases, in order: each returns how it stopped, and a later phase runs only after "steps"
    # (all done). SIGINT or SIGTERM stops them between two steps; the finish (L-BFGS polish, model.pt) runs
    # without the handlers
    with StopSignals() as stop:
        stopped = _warm_start(run, state, stop) if state.phase == "warm_start" else "steps"
        if stopped == "steps":
            stopped = _match_trajectories(run, state, stop)
    if stopped == "interrupted":  # the phases stop alike on either signal; the result names the one that came
        stopped = stop.stopped
    return _finish(run, state, stopped)


def _run_folder(out_dir, resume: bool, overwrite: bool) -> Path | None:
    """The run folder of ``out_dir`` (None without one), made for a fresh run; one that already holds a run is
    refused for a fresh run unless ``overwrite``. (Called with the folder's lock held: on rank 0 the lock made it,
    and removes it again if the run fails before writing anything.)"""
    if out_dir is None:
        return None
    # a resume needs the run's checkpoint: its folder is not made here
    out = Path(out_dir) if resume else make_folder(out_dir, "run folder")
    if not resume and not overwrite:
        held = [name for name in ("model.pt", "checkpoint.pt") if (out / name).exists()]
        if held:
            raise PhysodeError(f"{out} already holds a run ({', '.join(held)}); continue it with resume (--resume), "
                               "replace it with overwrite (--overwrite), or choose another output folder")
    return out


def _fit_sparse(model: SINDy | Ensemble, dataset: TrajectoryDataset, config: TrainConfig, out_dir, resume,
                overwrite) -> TrainResult:
    """A sparse-regression model is fitted once to the derivative estimates (no gradient steps, nothing to resume):
    validated like the others, written to ``model.pt`` with its equations (an ensemble's members each to their own
    bootstrap resample of the estimates, with a list of equations per member)."""
    start = time.perf_counter()
    samples = _warm_start_samples(model, dataset, config)
    model.fit_samples(samples)  # before the run folder: a library the data cannot determine leaves nothing
    out = _run_folder(out_dir, False, overwrite or resume)
    model.eval()
    val = dataset.part_or("val", "train", "validation")
    try:
        with torch.no_grad():
            pred = model.rollout(val.x[:, 0], val.times, val.u)
        val_error = float(relative_errors(pred.double(), val.x.double(), val.train_time_mask).median())
    except SolverError:  # the sparse field blows up within the training horizon: fitted, but of no use for rollouts
        val_error = math.inf
    seconds = time.perf_counter() - start
    record = {"phase": "sparse_regression", "step": 0, "val_error": val_error, "samples": len(samples.t),
              "equations": _equations(model, dataset.state_names), "seconds": round(seconds, 3)}
    if out is not None:
        save_checkpoint(out / "model.pt", model, system_spec=dataset.system_spec,
                        training={"steps": 0, "seconds": seconds, "best_val_error": val_error, "stopped": "steps",
                                  "data": dataset.fingerprint(), "equations": record["equations"]})
    return TrainResult(model, 0, seconds, val_error, "steps", [record])


def _sparse(model: DynamicsModel) -> bool:
    """Whether ``model`` is fitted by sparse regression (a SINDy model, or an ensemble of them) instead of by steps."""
    return isinstance(model, SINDy) or (isinstance(model, Ensemble) and isinstance(model.members[0], SINDy))


def _equations(model: SINDy | Ensemble, names) -> list:
    """A SINDy model's equations, or each member's of an ensemble of them."""
    if isinstance(model, Ensemble):
        return [member.equations(names) for member in model.members]
    return model.equations(names)


def _warm_start_samples(model, dataset, config):
    """The derivative samples of the warm start; data too sparse for them say so, with the way round it."""
    try:
        return field_samples(model, dataset, config.derivatives)
    except PhysodeError as exc:
        raise PhysodeError(f"the warm start cannot estimate derivatives: {exc}; or train without it "
                           "(TrainConfig(warm_start=False), physode train --no-warm-start)") from None


def _warm_start(run: Run, state: TrainerState, stop: StopSignals) -> str:
    """The first phase: fit the field to the estimated derivatives (:func:`~physode.collocation.fit_field`), from the
    initial weights (``state.good_model``, so that a run interrupted here and resumed repeats it exactly), then
    validate: its weights are the best so far, the ones trajectory matching starts from and must beat. A warm start
    that validates worse than the initial weights (derivatives too poor to estimate) is undone (``"kept": false``).

    Logs one metrics record ``{"phase": "warm_start", ...}``. Returns ``"steps"`` (done) or ``"interrupted"``.
    """
    config, model = run.config, run.model
    model.load_state_dict(state.good_model)
    before = run.validation_error()  # the initial weights': a warm start that does worse is not kept
    budget = None if config.time_limit is None else config.warm_start_share * config.time_limit
    losses = fit_field(model, run.samples, steps=config.warm_steps, lr=config.warm_start_lr, seed=config.seed,
                       time_limit=budget, stop=lambda: stop.raised)
    if stop.raised:
        return "interrupted"
    val_error = run.validation_error()
    kept = val_error < before  # derivatives too poor to estimate (very sparse data) can make a field worse than none
    if not kept:  # trajectory matching from the initial weights, at the learning rate for that
        model.load_state_dict(state.good_model)
        val_error = before
        run.schedule.base_lrs = [config.lr for _ in run.schedule.base_lrs]  # (the schedule is at its start)
        for group in run.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = config.lr
    weights = copy.deepcopy(model.state_dict())
    state.phase, state.best, state.best_weights, state.good_model = "trajectories", val_error, weights, weights
    _log(run, state, {"phase": "warm_start", "step": 0, "loss": losses[-1], "val_error": val_error, "kept": kept,
                      "warm_start_steps": len(losses), "samples": len(run.samples.t), "derivatives": config.derivatives,
                      "seconds": round(run.elapsed(), 3)})
    run.bar.set_postfix(warm=f"{val_error:.3g}")
    if run.writer is not None:  # a run killed later resumes after the warm start instead of repeating it
        state.seconds = run.elapsed()
        save_run(run, state)
    return "steps"


def _match_trajectories(run: Run, state: TrainerState, stop: StopSignals) -> str:
    """The main phase: AdamW steps on windows until ``config.steps``, checkpointing as it goes.

    Returns how it stopped: ``"steps"`` (all done), ``"early_stopping"``, ``"time_limit"`` or ``"interrupted"``
    (by either signal of ``stop``).
    """
    config = run.config
    # a run that ended by early stopping stays ended when resumed (its final files may not have been written)
    stopped = "early_stopping" if state.stopped == "early_stopping" else "steps"
    while stopped == "steps" and state.step < config.steps:
        late = config.time_limit is not None and run.elapsed() > config.time_limit
        interrupted, late = run.world.any(stop.raised, late)  # every rank stops at the same step
        if interrupted or late:
            stopped = "interrupted" if interrupted else "time_limit"
            break
        before = state.step
        stopped = _train_step(run, state)
        stepped = state.step != before  # not after a rollback
        if stopped == "steps" and stepped and run.writer is not None and state.step % config.checkpoint_every == 0:
            state.seconds = run.elapsed()
            save_run(run, state)
    return stopped


def _finish(run: Run, state: TrainerState, stopped: str) -> TrainResult:
    """Validate the last steps, save the final state, polish with L-BFGS where asked, and return the best weights
    (in ``model.pt`` too)."""
    model, config = run.model, run.config
    if stopped == "time_limit" and state.step and not any(r.get("step") == state.step for r in state.validations):
        # the steps since the last validation count too (before the first validation: they are all there is)
        _validation(run, state)
    run.bar.close()
    state.stopped = stopped
    if run.writer is not None:  # the current weights, so that a resume continues exactly here
        state.seconds = run.elapsed()
        save_run(run, state)
    if stopped in STOPPED:  # by a signal: resumed later, so no model.pt yet
        model.load_state_dict(state.best_weights)
        model.eval()
        return TrainResult(model, state.step, state.seconds, state.best, stopped, state.validations)
    if config.lbfgs_steps and stopped != "early_stopping":
        _lbfgs_polish(run, state)
    model.load_state_dict(state.best_weights)
    model.eval()
    seconds = run.elapsed()
    if run.writer is not None:
        save_checkpoint(run.out / "model.pt", model, system_spec=run.dataset.system_spec,
                        training={"steps": state.step, "seconds": seconds, "best_val_error": state.best,
                                  "stopped": stopped, "data": run.data_id})
    return TrainResult(model, state.step, seconds, state.best, stopped, state.validations)


def _train_step(run: Run, state: TrainerState) -> str:
    """One optimiser step (or one rollback after a failure), with validation and metrics when due.

    Returns ``"steps"`` to go on or ``"early_stopping"``. The loss (and so a failure) is averaged over the
    ranks, so that all of them roll back together.
    """
    config, model, optimizer = run.config, run.model, run.optimizer
    step = state.step
    window = min(curriculum_window(config, step), run.longest_window)
    x, t, u, mask, scale = run.windows.sample(config.batch_size, window)
    rows = run.windows.rows
    try:
        try:
            with run.solver:
                local = run.loss(x, t, u, mask, scale, rows)
            failure = None
        except SolverError as exc:  # this rank's rollout failed: tell the others through a NaN loss
            local, failure = torch.tensor(math.nan, device=x.device), exc
        loss = run.world.mean(local)
        if not torch.isfinite(loss):
            raise failure or SolverError(f"the loss is {loss.item()}")
        optimizer.zero_grad()
        local.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):  # one device sync
            raise SolverError("the gradients are not finite")
    except SolverError as exc:
        _roll_back(run, state, exc)
        return "steps"
    _clip_gradients(model, config.grad_clip)
    optimizer.step()
    run.schedule.step()
    _scale_learning_rate(optimizer, run.schedule, state.lr_factor)
    state.failures, state.step, state.loss, state.window = 0, step + 1, loss.item(), window
    run.bar.update(1)
    if state.step % config.val_every == 0 or state.step == config.steps:
        return _validation(run, state)
    return "steps"


def _roll_back(run: Run, state: TrainerState, cause: SolverError) -> None:
    """After a solver failure or a non-finite loss: back to the last validated model and optimiser, at half the
    learning rate; ``max_failures`` failures in a row stop training with a PhysodeError."""
    state.failures += 1
    if state.failures > run.config.max_failures:
        run.bar.close()
        _log(run, state, {"step": state.step, "event": "stopped", "cause": str(cause)})
        raise PhysodeError(
            f"training stopped at step {state.step} after {state.failures} failures in a row; the last: {cause}. "
            "Lower the learning rate (lr), the window, or the solver tolerances"
        ) from None
    run.model.load_state_dict(state.good_model)
    run.optimizer.load_state_dict(state.good_optimizer)
    state.lr_factor *= 0.5  # kept for the rest of the run: each failure halves it once more
    _scale_learning_rate(run.optimizer, run.schedule, state.lr_factor)
    _log(run, state, {"step": state.step, "event": "rollback", "cause": str(cause),
                      "lr": run.optimizer.param_groups[0]["lr"]})


def _validation(run: Run, state: TrainerState) -> str:
    """Validate the current weights after step ``state.step``: log it, keep them as the good state to roll back to
    and, when best, as the best; count patience.

    Returns ``"early_stopping"`` when patience has run out, else ``"steps"``.
    """
    model, optimizer, config = run.model, run.optimizer, run.config
    state.good_model, state.good_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    nfe = (getattr(model, "nfe_forward", 0), getattr(model, "nfe_backward", 0))  # of the last training step
    val_error = run.validation_error()
    record = {"step": state.step, "loss": state.loss, "val_error": val_error, "window": state.window,
              "lr": optimizer.param_groups[0]["lr"], "nfe_forward": nfe[0], "nfe_backward": nfe[1],
              "seconds": round(run.elapsed(), 3)}
    _log(run, state, record)
    run.bar.set_postfix(loss=f"{record['loss']:.2e}", val=f"{val_error:.3g}", nfe=record["nfe_forward"])
    if val_error < state.best:
        state.best, state.best_weights, state.since_best = val_error, copy.deepcopy(model.state_dict()), 0
    elif state.step > config.curriculum * config.steps:
        state.since_best += 1
        if state.since_best >= config.patience:
            return "early_stopping"
    return "steps"


def _lbfgs_polish(run: Run, state: TrainerState) -> None:
    """``lbfgs_steps`` L-BFGS iterations from the best weights on one fixed batch of full windows; the result
    becomes the best if it validates better (a solver failure in the polish leaves the weights as they were)."""
    model, config = run.model, run.config
    model.load_state_dict(state.best_weights)
    x, t, u, mask, scale = run.windows.sample(4 * config.batch_size, run.longest_window)
    rows = run.windows.rows
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=config.lbfgs_steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = run.loss(x, t, u, mask, scale, rows)
        loss.backward()
        return run.world.mean(loss)  # the line search decides alike on every rank

    before = copy.deepcopy(model.state_dict())
    try:
        with run.solver:
            optimizer.step(closure)
    except SolverError:
        model.load_state_dict(before)
    val_error = run.validation_error()
    if val_error < state.best:
        state.best, state.best_weights = val_error, copy.deepcopy(model.state_dict())


def _clip_gradients(model: DynamicsModel, max_norm: float) -> None:
    """Clip the gradient norm to ``max_norm``: an ensemble's for each member on its own, so that one member's large
    gradient does not shrink the others' steps (each member steps as it would alone)."""
    for part in model.members if isinstance(model, Ensemble) else (model,):
        torch.nn.utils.clip_grad_norm_(part.parameters(), max_norm)


def _scale_learning_rate(optimizer, schedule, factor: float) -> None:
    """Set the learning rate to the schedule's own (cosine decay) times ``factor`` (halved by each rollback)."""
    for group, scheduled in zip(optimizer.param_groups, schedule.get_last_lr(), strict=True):
        group["lr"] = scheduled * factor


def _log(run: Run, state: TrainerState, record: dict) -> None:
    """Keep ``record`` in the run's history and append it to ``metrics.jsonl``: a validation, or an event
    (``"event": "rollback"`` after a solver failure or non-finite loss, ``"stopped"`` when giving up,
    ``"warm_start_skipped"`` on a grid too coarse for derivative estimates)."""
    state.history.append(record)
    if run.writer is not None:
        append_metrics(run.writer / "metrics.jsonl", record)

"""The trainer: fit a dynamics model to a :class:`~physode.TrajectoryDataset` by trajectory matching.

Each step draws a batch of windows (``window + 1`` consecutive observations from random training
trajectories, within the training horizon ``t <= t_train``), rolls the model out from each window's
first state over its own times (irregular grids included, in one batched solve), and minimises the
mean squared error in normalised units. The window grows from ``window_start`` to ``window`` over the
first ``curriculum`` share of the steps (multiple shooting with a curriculum: short windows first
keep the early gradients tame). AdamW with cosine decay and gradient clipping, an optional L-BFGS
polish at the end, and early stopping on the validation rollout error over the training horizon.
Continuous models train (and validate) with fixed-step RK4 at the data's step by default
(``train_solver``); their own solver is used everywhere else.

A solver failure or a non-finite loss does not end in a traceback from inside torchdiffeq: the
trainer rolls back to the last good state, halves the learning rate, and after ``max_failures``
failures in a row stops with a PhysodeError naming the step and the cause.

Data parallel: in a ``torch.distributed`` process group (``torchrun``, see :mod:`physode.distributed`)
every rank keeps its shard of the training and validation trajectories (rows ``rank::size``) and
the model is wrapped in ``DistributedDataParallel``. All ranks draw the same global batch of windows
from one seeded generator and each rolls out the windows that fall on its own trajectories; each
rank's loss is scaled so that DDP's gradient average is the gradient of the mean over the whole
global batch, so N processes take the same steps as one process with the same ``batch_size`` and
seed (to float rounding). Validation errors are gathered from all ranks; only rank 0 writes
checkpoints, metrics and the progress bar, and every stop (early stopping, time limit, Ctrl-C,
failures) is agreed by all ranks.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import signal
import threading
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, refuse_other_system, save_checkpoint
from .checks import affordable, positive_float, positive_int, seed_value
from .data import TrajectoryDataset
from .devices import resolve_device
from .distributed import World
from .errors import FileFormatError, PhysodeError, SolverError, unknown_name
from .files import atomic_write, make_folder
from .integrate import ADAPTIVE_METHODS, FIXED_METHODS
from .models import ContinuousModel, DynamicsModel


@dataclasses.dataclass
class TrainConfig:
    """Trainer settings; the defaults train the default pendulum model in about two minutes on 2 cores."""

    steps: int = 3000  #: optimiser steps (AdamW)
    time_limit: float | None = None  #: stop after this many seconds of training
    batch_size: int = 128  #: windows per step
    window: int = 20  #: final window length, in observation intervals
    window_start: int | None = None  #: first window length of the curriculum (default min(4, window))
    curriculum: float = 0.5  #: share of the steps over which the window grows
    lr: float = 3e-3
    weight_decay: float = 1e-5
    grad_clip: float = 1.0  #: max gradient norm
    lbfgs_steps: int = 0  #: L-BFGS iterations after AdamW (small models), on one fixed batch
    train_solver: str | None = "rk4"  #: solver for training windows and validation; None: the model's own
    train_step: float | None = None  #: its step (default: the dataset's median observation spacing)
    val_every: int = 100  #: steps between validation rollouts (and metrics lines)
    patience: int = 10  #: validations without improvement, after the curriculum, before stopping
    checkpoint_every: int = 500  #: steps between checkpoints (with out_dir)
    max_failures: int = 5  #: solver failures / non-finite losses in a row before giving up
    seed: int = 0  #: seed of the window sampling

    def __post_init__(self):
        if self.window_start is None:
            self.window_start = min(4, self.window) if isinstance(self.window, int) else 4
        for name in ("steps", "batch_size", "window", "window_start", "val_every", "patience", "checkpoint_every",
                     "max_failures"):
            positive_int(getattr(self, name), name)
        positive_int(self.lbfgs_steps, "lbfgs_steps", minimum=0)
        seed_value(self.seed)
        for name in ("lr", "grad_clip"):
            positive_float(getattr(self, name), name)
        positive_float(self.weight_decay, "weight_decay", allow_zero=True)
        if positive_float(self.curriculum, "curriculum", allow_zero=True) > 1:
            raise PhysodeError(f"curriculum must be a share in [0, 1], got {self.curriculum!r}")
        if self.time_limit is not None:
            positive_float(self.time_limit, "time_limit")
        if self.train_solver is not None and self.train_solver not in ADAPTIVE_METHODS + FIXED_METHODS:
            raise unknown_name("train_solver", self.train_solver, ADAPTIVE_METHODS + FIXED_METHODS)
        if self.train_step is not None:
            positive_float(self.train_step, "train_step")
        if self.window_start > self.window:
            raise PhysodeError(f"window_start ({self.window_start}) must not exceed window ({self.window})")


@dataclasses.dataclass
class TrainResult:
    """What :func:`fit` returns: the model with its best weights, and how the run went."""

    model: DynamicsModel
    steps: int
    seconds: float
    best_val_error: float
    stopped: str  #: "steps", "time_limit", "early_stopping", "interrupted" (SIGINT: checkpoint.pt written, no model.pt)
    history: list  #: the validation records of metrics.jsonl (its events left out)


def build_model(name: str, dataset: TrajectoryDataset, **options) -> DynamicsModel:
    """The model called ``name`` (``node``, ``anode``, ``resnet``, ``hnn``) sized for ``dataset``.

    ``ResNetStep`` takes the dataset's step (``meta["dt"]``, else the median spacing of its times). On data of a
    time-dependent system (:attr:`TrajectoryDataset.time_dependent`) the models that take time as an input are
    built with ``time_dependent=True``; the others are refused (:func:`model_misfit`).
    """
    from .models import MODELS, ResNetStep

    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    cls = MODELS[name]
    problem = model_misfit(name, dataset.state_dim, dataset.time_dependent, dataset.name)
    if problem:
        raise PhysodeError(problem)
    if dataset.time_dependent and "time_dependent" not in options:
        options = {**options, "time_dependent": True}
    sizes = {"state_dim": dataset.state_dim, "control_dim": 0 if dataset.u is None else dataset.u.shape[2]}
    if cls is ResNetStep:
        sizes["dt"] = float(dataset.meta.get("dt") or dataset.times.diff(dim=1).median())
    return cls(**sizes, **options)


def model_misfit(name: str, state_dim: int, time_dependent: bool, system_name: str) -> str | None:
    """Why model ``name`` cannot represent the dynamics of ``system_name`` (``state_dim`` states, a field that depends
    on time itself or not): a one-line message with the fix, or None when it can."""
    from .models import MODELS

    if time_dependent and "time_dependent" not in inspect.signature(MODELS[name]).parameters:
        return (f"model {name!r} takes no time input, but {system_name} is time-dependent (its field depends on t); "
                "use a model that does (node or anode)")
    if name == "hnn" and state_dim % 2:
        return (f"model 'hnn' needs an even number of states (positions and momenta), and {system_name} has "
                f"{state_dim}; use node, anode or resnet")
    return None


def _check_compatible(model: DynamicsModel, dataset: TrajectoryDataset) -> None:
    if model.state_dim != dataset.state_dim:
        raise PhysodeError(
            f"the model has state_dim {model.state_dim} but the dataset ({dataset.name}) has {dataset.state_dim} states; "
            f"build the model with state_dim={dataset.state_dim}"
        )
    data_controls = 0 if dataset.u is None else dataset.u.shape[2]
    if model.control_dim != data_controls:
        raise PhysodeError(
            f"the model takes {model.control_dim} controls but the dataset has {data_controls}; "
            f"build the model with control_dim={data_controls}"
        )
    if dataset.time_dependent and not getattr(model, "time_dependent", False):
        raise PhysodeError(f"{dataset.name} is time-dependent (its field depends on t), and this {type(model).__name__} takes "
                           "no time input; build it with time_dependent=True (physode.build_model does), or use node or anode")
    refuse_other_system(model, dataset.system_spec, "the dataset", "train a fresh model for this system")
    if int((dataset.split == 0).sum()) == 0:
        raise PhysodeError("the dataset's training split is empty; regenerate it with a train share > 0")


def relative_errors(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-trajectory relative L2 error ``||pred - x|| / ||x||`` over time and states, ``(N,)`` (``mask: (N, T)``)."""
    diff, ref = (prediction - target) ** 2, target**2
    if mask is not None:  # where, not a product: unobserved targets are NaN
        keep = mask.unsqueeze(-1)
        diff, ref = torch.where(keep, diff, 0.0), torch.where(keep, ref, 0.0)
    return (diff.sum((1, 2)) / ref.sum((1, 2)).clamp_min(1e-30)).sqrt()


class _Windows:
    """Random training windows drawn with one torch.Generator (its state is saved for resuming).

    The generator draws the global batch (trajectory and start of every window) on the CPU, the same
    on every rank and every device; this rank keeps the windows of its own shard of trajectories,
    which lives on ``device`` (only the drawn indices move there each step). A window lies within its
    trajectory's observations up to ``t_train``; one of a trajectory shorter than the window runs past the
    trajectory's end on the grid's continuation, and its ``mask`` leaves those points out of the loss.
    """

    def __init__(self, train: TrajectoryDataset, dtype, seed: int, device, world: World):
        mask = train.train_time_mask
        self.counts = mask.sum(1)  # observations per trajectory within the training horizon (all ranks')
        self.longest = int(self.counts.max()) - 1
        if int(self.counts.min()) < 2 and not train.ragged or self.longest < 1:
            raise PhysodeError("some training trajectory has fewer than 2 observations before t_train; raise t_train")
        self.world, self.device = world, device
        shard = world.shard(len(train))
        self.x, self.t = train.x[shard].to(device, dtype), train.times[shard].to(device)
        self.u = None if train.u is None else train.u[shard].to(device, dtype)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch: int, window: int):
        """This rank's windows of a global batch of ``batch``: ``x (n, w+1, D)``, ``t (n, w+1)``, ``u (n, w, C)``,
        ``mask (n, w+1)`` (observed points, within ``t_train``) and the loss scale ``size / (observed points x D)``
        of :class:`_WindowLoss`."""
        window = min(window, self.longest)
        rows = torch.randint(len(self.counts), (batch,), generator=self.generator)
        counts = self.counts[rows]
        starts = (torch.rand(batch, generator=self.generator, dtype=torch.float64) * (counts - window).clamp_min(1)).long()
        index = starts[:, None] + torch.arange(window + 1)
        mask = index < counts[:, None]
        observed = int(mask.sum())
        if self.world.size > 1:
            mine = rows % self.world.size == self.world.rank
            rows, index, mask = rows[mine] // self.world.size, index[mine], mask[mine]
        index = index.clamp_max(self.t.shape[1] - 1).to(self.device)
        rows = rows[:, None].to(self.device)
        x = self.x[rows, index]
        t = self.t[rows, index]
        u = None if self.u is None else self.u[rows, index[:, :-1].clamp_max(self.u.shape[1] - 1)]
        return x, t, u, mask.to(self.device), self.world.size / (observed * self.x.shape[-1])


class _WindowLoss(torch.nn.Module):
    """The training loss as a module (what ``DistributedDataParallel`` wraps).

    ``forward(x, t, u, mask, scale)`` rolls the model out over this rank's windows and returns ``scale``
    times the sum of squared errors in normalised units over the observed points; ``scale = size / (observed
    elements of the global batch)`` makes DDP's average over ranks the mean over the global batch. A rank without windows this step
    returns a zero that still reaches every parameter, so that its gradient hooks take part.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, t, u, mask, scale: float):
        if x.shape[0] == 0:
            return sum((p * 0.0).sum() for p in self.model.parameters())
        prediction = self.model.rollout(x[:, 0], t, u)
        # unobserved targets (NaN) become the prediction itself: no error and, unlike masking the error, no NaN gradient
        target = torch.where(mask.unsqueeze(-1), x, prediction.detach())
        return (((prediction - target) / self.model.x_scale) ** 2).sum() * scale


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
    is refused, so that nothing trained is lost; ``overwrite=True`` replaces that run.

    SIGINT (Ctrl-C) stops between two steps: with ``out_dir`` the state is checkpointed, ``model.pt`` is
    not written, and the result says ``stopped="interrupted"``; resume to continue.

    ``device``: where to train (``"auto"``: the GPU when present); the model is moved there and stays
    there, and so does the training data (once, before the first step). In a ``torch.distributed``
    process group the run is data parallel (see the module doc); only rank 0 writes to ``out_dir``.
    """
    config = config or TrainConfig()
    if not isinstance(dataset, TrajectoryDataset):
        raise PhysodeError(f"dataset must be a TrajectoryDataset, got {type(dataset).__name__}")
    _check_compatible(model, dataset)
    device = resolve_device(device)
    world = World.current(device)
    train = dataset.train
    affordable(8.0 * config.batch_size * (config.window + 1) * max(dataset.state_dim, 64),
               f"a training batch of batch_size={config.batch_size} windows", "pass a smaller batch_size")
    # resuming needs the folder of the run (its checkpoint): not made here, so a failed resume leaves nothing behind
    out = None if out_dir is None else Path(out_dir) if resume else make_folder(out_dir, "run folder")
    if out is not None and not resume and not overwrite:
        held = [name for name in ("model.pt", "checkpoint.pt") if (out / name).exists()]
        if held:
            raise PhysodeError(f"{out} already holds a run ({', '.join(held)}); continue it with resume (--resume), "
                               "replace it with overwrite (--overwrite), or choose another output folder")
    data_id = None if out is None else dataset.fingerprint()  # recorded in the run's files only
    writer = out if world.main else None  # where this rank writes metrics and checkpoints

    model.to(device)
    seen = train.x[train.train_time_mask]  # (M, D): the training trajectories up to t_train, as in the windows
    if not resume:
        model.set_normalization(seen.mean(0), seen.std(0).clamp_min(1e-6))
    windows = _Windows(train, model.torch_dtype, config.seed, device, world)
    solver = _training_solver(model, dataset, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, config.steps) / config.steps))
    )
    state = {"step": 0, "best": math.inf, "best_weights": copy.deepcopy(model.state_dict()), "since_best": 0,
             "history": [], "seconds": 0.0, "failures": 0, "lr_factor": 1.0, "stopped": "steps", "loss": math.nan,
             "good": (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))}
    if resume:
        state = _resume(out, model, optimizer, schedule, windows, dataset, data_id, config)
        if writer is not None:
            write_metrics(out / "metrics.jsonl", state["history"])  # drop lines written after the checkpoint
    elif writer is not None:  # a fresh run in an old folder: nothing of the old run may pass for this one's
        for name in ("metrics.jsonl", "checkpoint.pt", "model.pt"):
            (out / name).unlink(missing_ok=True)
    # after every input check, so that a warning never precedes an error
    val = dataset.part_or("val", "train", "validation (early stopping, the best model)")
    loss = _WindowLoss(model)
    if world.size > 1:
        loss = torch.nn.parallel.DistributedDataParallel(loss, device_ids=[device] if device.type == "cuda" else None)

    shard = world.shard(len(val))  # this rank's validation trajectories
    val_x, val_t, val_mask = val.x[shard].to(device), val.times[shard].to(device), val.train_time_mask[shard].to(device)
    val_u = None if val.u is None else val.u[shard].to(device)

    def validate() -> float:
        """The median relative rollout error over the validation trajectories of all ranks."""
        with torch.no_grad(), solver:
            pred = model.rollout(val_x[:, 0], val_t, val_u) if len(val_x) else val_x
        return float(world.gather(relative_errors(pred.double(), val_x.double(), val_mask)).median())

    def window_length(step: int) -> int:
        grow = max(1, int(config.curriculum * config.steps))
        share = min(1.0, step / grow)
        return round(config.window_start + share * (config.window - config.window_start))

    # a run that ended by early stopping stays ended when resumed (its final files may not have been written)
    stopped = "early_stopping" if state["stopped"] == "early_stopping" else "steps"
    start_time = time.perf_counter() - state["seconds"]
    bar = tqdm(total=config.steps, initial=state["step"], desc="train", disable=not (progress and world.main))
    model.train()
    with _SigintFlag() as sigint:
        while stopped == "steps" and state["step"] < config.steps:
            late = config.time_limit is not None and time.perf_counter() - start_time > config.time_limit
            interrupted, late = world.any(sigint.raised, late)  # every rank stops at the same step
            if interrupted or late:
                stopped = "interrupted" if interrupted else "time_limit"
                break
            before = state["step"]
            stopped = _train_step(model, loss, config, windows, solver, optimizer, schedule, state, window_length,
                                  validate, writer, start_time, bar)
            stepped = state["step"] != before  # not after a rollback
            if stopped == "steps" and stepped and writer is not None and state["step"] % config.checkpoint_every == 0:
                state["seconds"] = time.perf_counter() - start_time
                _save_state(out, model, dataset, data_id, optimizer, schedule, windows, state, config)
    if stopped == "time_limit" and state["step"] and not any(r.get("step") == state["step"] for r in _validations(state)):
        # the steps since the last validation count too (before the first validation: they are all there is)
        _validation(model, optimizer, config, state, validate, writer, start_time, bar)
    bar.close()
    state["stopped"] = stopped
    if writer is not None:  # the current weights, so that a resume continues exactly here
        state["seconds"] = time.perf_counter() - start_time
        _save_state(out, model, dataset, data_id, optimizer, schedule, windows, state, config)
    if stopped == "interrupted":
        model.load_state_dict(state["best_weights"])
        model.eval()
        return TrainResult(model, state["step"], state["seconds"], state["best"], stopped, _validations(state))
    if config.lbfgs_steps and stopped != "early_stopping":
        model.load_state_dict(state["best_weights"])
        with solver:
            _lbfgs_polish(model, loss, windows, config)
        val_error = validate()
        if val_error < state["best"]:
            state.update(best=val_error, best_weights=copy.deepcopy(model.state_dict()))
    model.load_state_dict(state["best_weights"])
    model.eval()
    seconds = time.perf_counter() - start_time
    if writer is not None:
        save_checkpoint(out / "model.pt", model, system_spec=dataset.system_spec,
                        training={"steps": state["step"], "seconds": seconds, "best_val_error": state["best"],
                                  "stopped": stopped, "data": data_id})
    return TrainResult(model, state["step"], seconds, state["best"], stopped, _validations(state))


def _validations(state) -> list:
    return [record for record in state["history"] if "event" not in record]


def _train_step(model, loss_module, config, windows, solver, optimizer, schedule, state, window_length, validate, out,
                start_time, bar) -> str:
    """One optimiser step (or one rollback after a failure), with validation and metrics when due.

    Returns ``"steps"`` to go on or ``"early_stopping"``. ``state["good"]`` is the last validated
    model and optimiser, restored (with the learning rate halved) after a solver failure or a
    non-finite loss; ``max_failures`` of them in a row stop training with a PhysodeError. The loss
    (and so a failure) is averaged over the ranks, so that all of them roll back together.
    """
    step = state["step"]
    window = window_length(step)
    x, t, u, mask, scale = windows.sample(config.batch_size, window)
    world = windows.world
    try:
        try:
            with solver:
                local = loss_module(x, t, u, mask, scale)
            failure = None
        except SolverError as exc:  # this rank's rollout failed: tell the others through a NaN loss
            local, failure = torch.tensor(math.nan, device=x.device), exc
        loss = world.mean(local)
        if not torch.isfinite(loss):
            raise failure or SolverError(f"the loss is {loss.item()}")
        optimizer.zero_grad()
        local.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):  # one device sync
            raise SolverError("the gradients are not finite")
    except SolverError as exc:
        state["failures"] += 1
        if state["failures"] > config.max_failures:
            bar.close()
            _log(out, state, {"step": step, "event": "stopped", "cause": str(exc)})
            raise PhysodeError(
                f"training stopped at step {step} after {state['failures']} failures in a row; the last: {exc}. "
                "Lower the learning rate (lr), the window, or the solver tolerances"
            ) from None
        model.load_state_dict(state["good"][0])
        optimizer.load_state_dict(state["good"][1])
        state["lr_factor"] *= 0.5  # kept for the rest of the run: each failure halves it once more
        _scale_learning_rate(optimizer, schedule, state["lr_factor"])
        _log(out, state, {"step": step, "event": "rollback", "cause": str(exc), "lr": optimizer.param_groups[0]["lr"]})
        return "steps"
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    schedule.step()
    _scale_learning_rate(optimizer, schedule, state["lr_factor"])
    state.update(failures=0, step=step + 1, loss=loss.item(), window=window)
    bar.update(1)
    if state["step"] % config.val_every == 0 or state["step"] == config.steps:
        return _validation(model, optimizer, config, state, validate, out, start_time, bar)
    return "steps"


def _validation(model, optimizer, config, state, validate, out, start_time, bar) -> str:
    """Validate the current weights after step ``state["step"]``: log it, keep the best, count patience.

    Returns ``"early_stopping"`` when patience has run out, else ``"steps"``.
    """
    state["good"] = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))
    nfe = (getattr(model, "nfe_forward", 0), getattr(model, "nfe_backward", 0))  # of the last training step
    val_error = validate()
    record = {"step": state["step"], "loss": state["loss"], "val_error": val_error, "window": state["window"],
              "lr": optimizer.param_groups[0]["lr"], "nfe_forward": nfe[0], "nfe_backward": nfe[1],
              "seconds": round(time.perf_counter() - start_time, 3)}
    _log(out, state, record)
    bar.set_postfix(loss=f"{record['loss']:.2e}", val=f"{val_error:.3g}", nfe=record["nfe_forward"])
    if val_error < state["best"]:
        state.update(best=val_error, best_weights=copy.deepcopy(model.state_dict()), since_best=0)
    elif state["step"] > config.curriculum * config.steps:
        state["since_best"] += 1
        if state["since_best"] >= config.patience:
            return "early_stopping"
    return "steps"


def _scale_learning_rate(optimizer, schedule, factor: float) -> None:
    """Set the learning rate to the schedule's own (cosine decay) times ``factor`` (halved by each rollback)."""
    for group, scheduled in zip(optimizer.param_groups, schedule.get_last_lr(), strict=True):
        group["lr"] = scheduled * factor


class _SigintFlag:
    """Within the block, SIGINT (Ctrl-C) sets ``raised`` instead of interrupting (main thread only)."""

    def __enter__(self):
        self.raised, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _log(out, state, record: dict) -> None:
    """Keep ``record`` in the run's log and append it to ``metrics.jsonl``: a validation, or an event
    (``"event": "rollback"`` after a solver failure or non-finite loss, ``"stopped"`` when giving up)."""
    state["history"].append(record)
    if out is not None:
        with open(out / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")


def write_metrics(path, records) -> None:
    """Write ``metrics.jsonl`` (one JSON object per line) atomically."""
    with atomic_write(Path(path), "metrics") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in records).encode())


def read_metrics(path) -> list[dict]:
    """The records of ``metrics.jsonl``; a last line cut short by a killed process is skipped."""
    lines = Path(path).read_text().split("\n")
    records = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines) - 1:  # only the last line may be incomplete (it has no newline yet)
                raise FileFormatError(f"{str(path)!r} line {number + 1} is not JSON; the metrics file is damaged") from None
    return records


class _training_solver:
    """Context in which a continuous model integrates with the trainer's solver (restored on exit).

    Training windows are short and the data's step resolves them, so fixed-step RK4 at that step is
    several times faster than an adaptive solve at the same fit; evaluation keeps the model's solver.
    """

    def __init__(self, model, dataset, config):
        self.model = model
        self.active = config.train_solver is not None and isinstance(model, ContinuousModel)
        if self.active:
            step = config.train_step or float(dataset.times.diff(dim=1).median())
            self.settings = {"solver": config.train_solver, "step_size": step}

    def __enter__(self):
        if self.active:
            self.saved = {k: getattr(self.model, k) for k in self.settings}
            for key, value in self.settings.items():
                setattr(self.model, key, value)
        return self

    def __exit__(self, *exc):
        if self.active:
            for key, value in self.saved.items():
                setattr(self.model, key, value)
        return False


def _lbfgs_polish(model, loss_module, windows, config):
    x, t, u, mask, scale = windows.sample(4 * config.batch_size, config.window)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=config.lbfgs_steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = loss_module(x, t, u, mask, scale)
        loss.backward()
        return windows.world.mean(loss)  # the line search decides alike on every rank

    before = copy.deepcopy(model.state_dict())
    try:
        optimizer.step(closure)
    except SolverError:
        model.load_state_dict(before)


def _save_state(out, model, dataset, data_id, optimizer, schedule, windows, state, config):
    save_checkpoint(
        out / "checkpoint.pt", model, system_spec=dataset.system_spec, data=data_id,
        trainer={"step": state["step"], "best": state["best"], "since_best": state["since_best"],
                 "seconds": state["seconds"], "history": state["history"], "best_weights": state["best_weights"],
                 "failures": state["failures"], "good_model": state["good"][0], "good_optimizer": state["good"][1],
                 "lr_factor": state["lr_factor"], "stopped": state["stopped"], "loss": state["loss"],
                 "window": state.get("window"),
                 "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                 "generator": windows.generator.get_state(), "config": _resumable(config)},
    )


def _resumable(config) -> dict:
    """The settings a resumed run must share with the run it continues: all but ``time_limit`` and ``steps``
    (more steps extend a run; the cosine schedule then follows the new total, so the result is no longer
    that of any uninterrupted run)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("time_limit", "steps")}


def _resume(out, model, optimizer, schedule, windows, dataset, data_id, config):
    if out is None:
        raise PhysodeError("resume=True needs the out_dir of the run to continue")
    payload = load_checkpoint(out / "checkpoint.pt")
    if payload.get("system") != dataset.system_spec:
        raise PhysodeError(f"{out / 'checkpoint.pt'} was trained on another system ({payload.get('system')}); "
                           "resume with the same dataset")
    if payload.get("data", data_id) != data_id:  # checkpoints from before fingerprints are not checked
        raise PhysodeError(f"{out / 'checkpoint.pt'} was trained on other data than the {dataset.name} data given now "
                           f"(fingerprint {payload.get('data')} vs {data_id}); resume with the dataset it was trained on, "
                           "or start a fresh run (overwrite, or another output folder)")
    try:
        return _resumed_state(out, payload, model, optimizer, schedule, windows, config)
    except PhysodeError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:  # a damaged trainer state
        raise FileFormatError(f"{out / 'checkpoint.pt'} holds a damaged trainer state ({type(exc).__name__}: "
                              f"{str(exc)[:120]}); start the run afresh (overwrite, --overwrite) or restore the file") from None


def _resumed_state(out, payload, model, optimizer, schedule, windows, config) -> dict:
    """The trainer state of ``payload`` (a loaded checkpoint.pt), checked against this run and loaded into it."""
    trainer = payload.get("trainer")
    if not isinstance(trainer, dict):
        raise PhysodeError(f"{out / 'checkpoint.pt'} holds no trainer state to resume from")
    if payload["model"]["class"] != type(model).__name__ or payload["model"]["config"] != model.config():
        raise PhysodeError(f"{out / 'checkpoint.pt'} was written for another model ({payload['model']['class']}); "
                           "resume with the same model settings")
    saved = trainer.get("config")
    if saved is not None and saved != _resumable(config):
        changed = sorted(k for k in saved if saved[k] != _resumable(config).get(k))
        raise PhysodeError(f"{out / 'checkpoint.pt'} was trained with other settings ({', '.join(changed)}); "
                           "resume with the same TrainConfig (only steps and time_limit may change)")
    model.load_state_dict(payload["model"]["state_dict"])
    optimizer.load_state_dict(trainer["optimizer"])
    schedule.load_state_dict(trainer["schedule"])
    windows.generator.set_state(trainer["generator"])
    good = (trainer.get("good_model", payload["model"]["state_dict"]), trainer.get("good_optimizer", trainer["optimizer"]))
    state = {"step": trainer["step"], "best": trainer["best"], "best_weights": trainer["best_weights"],
             "since_best": trainer["since_best"], "history": list(trainer["history"]), "seconds": trainer["seconds"],
             "failures": trainer.get("failures", 0), "good": good, "lr_factor": trainer.get("lr_factor", 1.0),
             "stopped": trainer.get("stopped", "steps"), "loss": trainer.get("loss", math.nan),
             "window": trainer.get("window")}
    kinds = {"step": int, "since_best": int, "failures": int, "best": float, "seconds": float, "lr_factor": float,
             "loss": float, "history": list}
    wrong = [key for key, kind in kinds.items()
             if isinstance(state[key], bool) or not isinstance(state[key], (int, float) if kind is float else kind)]
    if wrong:
        raise TypeError(f"its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not of the right kind")
    return state

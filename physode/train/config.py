"""The trainer's settings (:class:`TrainConfig`, checked on construction) and what a run returns (:class:`TrainResult`)."""

from __future__ import annotations

import dataclasses

from ..checks import positive_float, positive_int, seed_value
from ..derivatives import METHODS as DERIVATIVE_METHODS
from ..errors import PhysodeError, unknown_name
from ..integrate import check_solver
from ..models import DynamicsModel


#: The default warm start's most steps: enough for a field error near the derivative estimates' own.
MAX_WARM_START_STEPS = 5000


@dataclasses.dataclass
class TrainConfig:
    """Trainer settings. Two phases: a warm start that fits the field to estimated state derivatives (derivative
    matching, :mod:`physode.collocation`: seconds, no ODE solve), then trajectory matching on windows, which removes
    the estimates' bias (noise, stencil error) and keeps the best validated weights of either phase."""

    steps: int = 3000  #: optimiser steps (AdamW)
    time_limit: float | None = None  #: stop after this many seconds of training
    batch_size: int = 128  #: windows per step
    #: final window length, in observation intervals (at most 7 time scales of the motion: see
    #: physode.train.run.WINDOW_TIME_SCALES)
    window: int = 20
    window_start: int | None = None  #: first window length of the curriculum (default min(4, window))
    curriculum: float = 0.5  #: share of the steps over which the window grows
    lr: float = 3e-3  #: AdamW's learning rate (cosine decay) when trajectory matching starts from scratch
    refine_lr: float = 3e-4  #: ... and after a warm start, whose weights need only refining
    weight_decay: float = 1e-5
    grad_clip: float = 1.0  #: max gradient norm
    lbfgs_steps: int = 0  #: L-BFGS iterations after AdamW (small models), on one fixed batch
    train_solver: str | None = "rk4"  #: solver for training windows and validation; None: the model's own
    #: its step (default: the median observation spacing, at most the motion's time scale / 2.5: see
    #: physode.train.run.STEPS_PER_TIME_SCALE)
    train_step: float | None = None
    val_every: int = 100  #: steps between validation rollouts (and metrics lines)
    patience: int = 10  #: validations without improvement, after the curriculum, before stopping
    checkpoint_every: int = 500  #: steps between checkpoints (with out_dir)
    max_failures: int = 5  #: solver failures / non-finite losses in a row before giving up
    seed: int = 0  #: seed of the window sampling (and of the warm start's minibatches)
    #: first fit the field to estimated derivatives (no ODE solve), then match trajectories; with automatic
    #: derivatives, skipped on grids too coarse for them (see physode.derivatives.LEAST_RESOLUTION)
    warm_start: bool = True
    warm_start_steps: int | None = None  #: Adam steps of the warm start (default: 2 x steps, at most 5000)
    warm_start_share: float = 0.5  #: the most of time_limit the warm start may take
    warm_start_lr: float = 1e-2  #: its learning rate (cosine decay)
    derivatives: str = "auto"  #: how the derivatives are estimated: see physode.derivatives.METHODS

    def __post_init__(self):
        if self.window_start is None:
            self.window_start = min(4, self.window) if isinstance(self.window, int) else 4
        for name in ("steps", "batch_size", "window", "window_start", "val_every", "patience", "checkpoint_every",
                     "max_failures"):
            positive_int(getattr(self, name), name)
        positive_int(self.lbfgs_steps, "lbfgs_steps", minimum=0)
        if self.warm_start_steps is not None:
            positive_int(self.warm_start_steps, "warm_start_steps")
        positive_float(self.warm_start_lr, "warm_start_lr")
        if not 0 < positive_float(self.warm_start_share, "warm_start_share") <= 1:
            raise PhysodeError(f"warm_start_share must be a share in (0, 1], got {self.warm_start_share!r}")
        if not isinstance(self.warm_start, bool):
            raise PhysodeError(f"warm_start must be True or False, got {self.warm_start!r}")
        if self.derivatives not in DERIVATIVE_METHODS:
            raise unknown_name("derivatives", self.derivatives, DERIVATIVE_METHODS)
        seed_value(self.seed)
        for name in ("lr", "refine_lr", "grad_clip"):
            positive_float(getattr(self, name), name)
        positive_float(self.weight_decay, "weight_decay", allow_zero=True)
        if positive_float(self.curriculum, "curriculum", allow_zero=True) > 1:
            raise PhysodeError(f"curriculum must be a share in [0, 1], got {self.curriculum!r}")
        if self.time_limit is not None:
            positive_float(self.time_limit, "time_limit")
        if self.train_solver is not None:  # fixed-step solvers default to the data's spacing
            check_solver(self.train_solver, self.train_step, name="train_solver", default_step=True)
        if self.train_step is not None:
            positive_float(self.train_step, "train_step")
        if self.window_start > self.window:
            raise PhysodeError(f"window_start ({self.window_start}) must not exceed window ({self.window})")

    @property
    def warm_steps(self) -> int:
        """The warm start's steps: ``warm_start_steps``, or by default twice ``steps``, at most 5000 (the budget
        follows the one asked for; left unresolved in the settings, so that a resume with more steps matches)."""
        return self.warm_start_steps or min(2 * self.steps, MAX_WARM_START_STEPS)

    def resumable(self) -> dict:
        """The settings a resumed run must share with the run it continues: all but ``time_limit`` and ``steps``
        (more steps extend a run; the cosine schedule then follows the new total, so the result is no longer
        that of any uninterrupted run)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("time_limit", "steps")}


@dataclasses.dataclass
class TrainResult:
    """What :func:`~physode.fit` returns: the model with its best weights, and how the run went."""

    model: DynamicsModel
    steps: int
    seconds: float
    best_val_error: float
    #: "steps", "time_limit", "early_stopping", "interrupted" (SIGINT) or "terminated" (SIGTERM); the last two
    #: wrote checkpoint.pt and no model.pt
    stopped: str
    history: list  #: the validation records of metrics.jsonl (its events left out)

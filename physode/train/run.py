"""The fixed context of one training run (:class:`Run`): what every phase and step of :func:`~physode.fit` takes
beside the changing :class:`~physode.train.state.TrainerState`, and the solver that training integrates with."""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import torch

from ..data import TrajectoryDataset
from ..derivatives import DerivativeSamples
from ..distributed import World
from ..models import ContinuousModel, DynamicsModel
from .config import TrainConfig
from .windows import WindowSampler, relative_errors


#: The training solver's default step is the observation spacing, but at most the motion's time scale
#: (:meth:`~physode.TrajectoryDataset.time_scale`) over this: trained with RK4 steps coarser than that (sparse
#: observations), a field learns to make up for the solver's error instead of following the true one.
STEPS_PER_TIME_SCALE = 2.5


#: A training window spans at most this many time scales of the motion: what the default window (20 observations)
#: spans on a grid that resolves a pendulum's swing. On a coarser grid a window of as many observations rolls out
#: over many swings, which makes each step slower and the loss harder to descend, with no more to learn from.
WINDOW_TIME_SCALES = 7.0


class TrainingSolver:
    """Context in which a continuous model integrates with the trainer's solver (restored on exit).

    Training windows are short and the data's step resolves them, so fixed-step RK4 at that step is
    several times faster than an adaptive solve at the same fit; evaluation keeps the model's solver.
    """

    def __init__(self, model: DynamicsModel, dataset: TrajectoryDataset, config: TrainConfig):
        self.model = model
        self.active = config.train_solver is not None and isinstance(model, ContinuousModel)
        if self.active:
            train = dataset.train
            step = config.train_step or min(train.spacing(), train.time_scale() / STEPS_PER_TIME_SCALE)
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


@dataclasses.dataclass(eq=False)
class Run:
    """What stays the same from the first step of a run to its last (the objects change inside: weights, moments).

    The validation tensors are this rank's shard of the validation trajectories, on the training device:
    ``val_x: (n, T, D)``, ``val_t: (n, T)``, ``val_mask: (n, T)`` (observed, within ``t_train``), ``val_u: (n, T-1, C)``.
    """

    model: DynamicsModel
    dataset: TrajectoryDataset  #: the whole dataset handed to fit (windows come from its train split)
    config: TrainConfig
    world: World  #: the process group (size 1 in a single process)
    out: Path | None  #: the run folder (None: nothing is written)
    data_id: str | None  #: the dataset's fingerprint, recorded in the run's files (with out)
    windows: WindowSampler
    solver: TrainingSolver
    optimizer: torch.optim.Optimizer  #: AdamW
    schedule: torch.optim.lr_scheduler.LRScheduler  #: cosine decay over config.steps
    loss: torch.nn.Module  #: the WindowLoss of model, in DistributedDataParallel within a process group
    val_x: torch.Tensor
    val_t: torch.Tensor
    val_mask: torch.Tensor
    val_u: torch.Tensor | None
    samples: DerivativeSamples | None  #: what the warm start fits the field to (None without one)
    start_time: float  #: time.perf_counter() when training began (on resume: as if it had run without a break)
    bar: object  #: the tqdm progress bar of the optimiser steps

    @functools.cached_property
    def longest_window(self) -> int:
        """The final window length, in observation intervals: ``config.window``, but at most
        :data:`WINDOW_TIME_SCALES` time scales of the motion on average (and at least ``config.window_start``)."""
        train, config = self.dataset.train, self.config
        span = round(WINDOW_TIME_SCALES * train.time_scale() / train.spacing("mean"))
        return max(config.window_start, min(config.window, span))

    @property
    def writer(self) -> Path | None:
        """Where this rank writes metrics and checkpoints: the run folder on rank 0, nowhere on the others."""
        return self.out if self.world.main else None

    def elapsed(self) -> float:
        """Seconds of training so far, those before a resume included."""
        return time.perf_counter() - self.start_time

    def validation_error(self) -> float:
        """The median relative rollout error over the validation trajectories of all ranks."""
        with torch.no_grad(), self.solver:
            pred = self.model.rollout(self.val_x[:, 0], self.val_t, self.val_u) if len(self.val_x) else self.val_x
        return float(self.world.gather(relative_errors(pred.double(), self.val_x.double(), self.val_mask)).median())

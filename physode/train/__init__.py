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

The package, one concept per module: :mod:`~physode.train.config` (the settings, the result),
:mod:`~physode.train.factory` (models for a dataset), :mod:`~physode.train.windows` (windows, their loss, the
error), :mod:`~physode.train.state` (the typed trainer state), :mod:`~physode.train.run` (a run's fixed context),
:mod:`~physode.train.metrics` (``metrics.jsonl``), :mod:`~physode.train.resume` (``checkpoint.pt``) and
:mod:`~physode.train.loop` (:func:`fit`: its phases, the step, rollback and validation).
"""

from .config import TrainConfig, TrainResult
from .factory import build_model, model_misfit, particles_of
from .loop import fit
from .metrics import read_metrics, write_metrics
from .windows import WindowLoss, WindowSampler, relative_errors

# the tests' names for the window sampler and loss (from when they lived in one private module)
_Windows, _WindowLoss = WindowSampler, WindowLoss

__all__ = ["TrainConfig", "TrainResult", "WindowLoss", "WindowSampler", "build_model", "fit", "model_misfit",
           "particles_of", "read_metrics", "relative_errors", "write_metrics"]

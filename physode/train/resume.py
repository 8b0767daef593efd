"""A run's ``checkpoint.pt``: the model with the trainer state and the run's optimiser, schedule and window
generator beside it, written during a run and read back to continue it exactly."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data import TrajectoryDataset
from ..errors import FileFormatError, PhysodeError
from ..models import DynamicsModel
from .config import TrainConfig
from .run import Run
from .state import TrainerState
from .windows import WindowSampler


#: The settings that checkpoints written before them lack, as those runs had them (no warm start); the warm start's
#: own settings then played no part.
WITHOUT_LATER_SETTINGS = {"warm_start": False}


def save_run(run: Run, state: TrainerState) -> None:
    """Write ``checkpoint.pt`` into the run folder (atomically: a kill leaves the previous one whole).

    A write that fails (a full disk) stops the run with a PhysodeError that says so and how to go on; it is not
    retried: the cause outlasts a retry, and the previous checkpoint, whole, is what a resume continues from.
    """
    path = run.out / "checkpoint.pt"
    try:
        save_checkpoint(
            path, run.model, system_spec=run.dataset.system_spec, data=run.data_id,
            trainer={**state.to_payload(), "optimizer": run.optimizer.state_dict(), "schedule": run.schedule.state_dict(),
                     "generator": run.windows.generator.get_state(), "config": run.config.resumable()},
        )
    except PhysodeError as exc:
        kept = ("then continue from the last checkpoint written, which is whole, with resume (--resume)"
                if path.exists() else "nothing was checkpointed yet")
        raise PhysodeError(f"training stopped at step {state.step}: {exc}; {kept}") from None


def resume_state(out: Path | None, dataset: TrajectoryDataset, data_id: str, config: TrainConfig, model: DynamicsModel,
                 optimizer: torch.optim.Optimizer, schedule, windows: WindowSampler) -> TrainerState:
    """Continue the run in ``out``: load its ``checkpoint.pt`` into ``model``, ``optimizer``, ``schedule`` and the
    generator of ``windows``, and return its trainer state. (A :class:`Run` is made after this: its loss and its
    validation set come after every check, and DistributedDataParallel takes the loaded weights.)

    Refused: no ``out``, another system, other data (fingerprint ``data_id``), another model or other settings
    than ``config`` (but for ``steps`` and ``time_limit``); a damaged state is a FileFormatError.
    """
    if out is None:
        raise PhysodeError("resume=True needs the out_dir of the run to continue")
    path = out / "checkpoint.pt"
    payload = load_checkpoint(path)
    if payload.get("system") != dataset.system_spec:
        raise PhysodeError(f"{path} was trained on another system ({payload.get('system')}); resume with the same dataset")
    if payload.get("data", data_id) != data_id:  # checkpoints from before fingerprints are not checked
        raise PhysodeError(f"{path} was trained on other data than the {dataset.name} data given now "
                           f"(fingerprint {payload.get('data')} vs {data_id}); resume with the dataset it was trained on, "
                           "or start a fresh run (overwrite, or another output folder)")
    try:
        trainer = payload.get("trainer")
        if not isinstance(trainer, dict):
            raise PhysodeError(f"{path} holds no trainer state to resume from")
        if payload["model"]["class"] != type(model).__name__ or payload["model"]["config"] != model.config():
            raise PhysodeError(f"{path} was written for another model ({payload['model']['class']}); "
                               "resume with the same model settings")
        saved = trainer.get("config")
        current = config.resumable()
        if saved is not None:  # a checkpoint from before a setting existed ran as that setting's absence says
            saved = {**WITHOUT_LATER_SETTINGS, **saved}
            current = {k: current.get(k) for k in saved}  # settings it does not know played no part in it
        if saved is not None and saved != current:
            changed = sorted(k for k in saved if saved[k] != current.get(k))
            raise PhysodeError(f"{path} was trained with other settings ({', '.join(changed)}); "
                               "resume with the same TrainConfig (only steps and time_limit may change)")
        model.load_state_dict(payload["model"]["state_dict"])
        optimizer.load_state_dict(trainer["optimizer"])
        schedule.load_state_dict(trainer["schedule"])
        windows.generator.set_state(trainer["generator"])
        return TrainerState.from_payload(trainer, payload["model"]["state_dict"])
    except PhysodeError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:  # a damaged trainer state
        raise FileFormatError(f"{path} holds a damaged trainer state ({type(exc).__name__}: "
                              f"{str(exc)[:120]}); start the run afresh (overwrite, --overwrite) or restore the file") from None

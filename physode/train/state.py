"""The trainer's state: everything about a run that changes from step to step, one typed object, and its form in
``checkpoint.pt`` (the ``"trainer"`` entry), which is written and read only here."""

from __future__ import annotations

import copy
import dataclasses
import math


@dataclasses.dataclass
class TrainerState:
    """The loop state of :func:`~physode.fit`, saved whole in every checkpoint so that a resumed run goes on exactly.

    The field names are the keys of ``payload["trainer"]`` in ``checkpoint.pt``. The optimiser, schedule and window
    generator there are not part of this state: they are the run's own objects, saved beside it
    (:mod:`physode.train.resume`).
    """

    step: int  #: optimiser steps taken
    best: float  #: the lowest validation error so far (inf before the first validation)
    since_best: int  #: validations since the best one (counted only once the curriculum is over)
    seconds: float  #: training time up to the last save (a resumed run's clock goes on from it)
    history: list  #: the records of metrics.jsonl, in order: validations and events ("rollback", "stopped")
    best_weights: dict  #: the model's state_dict at the best validation (what fit returns)
    failures: int  #: solver failures / non-finite losses in a row (0 after a step that went through)
    good_model: dict  #: the model's state_dict at the last validation, restored by a rollback
    good_optimizer: dict  #: the optimiser's state_dict at the last validation, restored with it
    lr_factor: float  #: factor on the schedule's learning rate, halved by each rollback for the rest of the run
    stopped: str  #: "steps" while the run goes on, else how it ended (as :attr:`TrainResult.stopped`)
    loss: float  #: the loss of the last step (NaN before the first)
    window: int | None  #: the window length of the last step (None before the first)
    phase: str = "trajectories"  #: "warm_start" until the warm start is done, then "trajectories"

    @classmethod
    def fresh(cls, model, optimizer, warm_start: bool = False) -> TrainerState:
        """The state before the first step of a new run of ``model`` with ``optimizer`` (``warm_start``: the run begins
        with one; ``good_model`` then holds the initial weights it starts from, also when a resumed run repeats it)."""
        return cls(step=0, best=math.inf, since_best=0, seconds=0.0, history=[],
                   best_weights=copy.deepcopy(model.state_dict()), failures=0,
                   good_model=copy.deepcopy(model.state_dict()), good_optimizer=copy.deepcopy(optimizer.state_dict()),
                   lr_factor=1.0, stopped="steps", loss=math.nan, window=None,
                   phase="warm_start" if warm_start else "trajectories")

    @property
    def validations(self) -> list:
        """The validation records of :attr:`history` (its events left out)."""
        return [record for record in self.history if "event" not in record]

    def to_payload(self) -> dict:
        """The state as ``checkpoint.pt`` keeps it (the tensors are not copied)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_payload(cls, trainer: dict, weights: dict) -> TrainerState:
        """The state of ``trainer`` (``payload["trainer"]`` of a loaded checkpoint.pt whose model's state_dict is
        ``weights``). Older checkpoints lack the later fields: a run without a failure, at the full learning rate.

        Raises KeyError or TypeError for a damaged state (the caller names the file).
        """
        state = cls(step=trainer["step"], best=trainer["best"], since_best=trainer["since_best"],
                    seconds=trainer["seconds"], history=list(trainer["history"]), best_weights=trainer["best_weights"],
                    failures=trainer.get("failures", 0), good_model=trainer.get("good_model", weights),
                    good_optimizer=trainer.get("good_optimizer", trainer["optimizer"]),
                    lr_factor=trainer.get("lr_factor", 1.0), stopped=trainer.get("stopped", "steps"),
                    loss=trainer.get("loss", math.nan), window=trainer.get("window"),
                    phase=trainer.get("phase", "trajectories"))
        kinds = {"step": int, "since_best": int, "failures": int, "best": float, "seconds": float, "lr_factor": float,
                 "loss": float, "history": list, "phase": str}
        values = {key: getattr(state, key) for key in kinds}
        wrong = [key for key, kind in kinds.items()
                 if isinstance(values[key], bool) or not isinstance(values[key], (int, float) if kind is float else kind)]
        if wrong:
            raise TypeError(f"its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not of the right kind")
        return state

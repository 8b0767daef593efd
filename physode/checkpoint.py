"""Model checkpoints: one ``.pt`` file with the model's class, configuration, weights and normalisation,
the system it was trained on, and (for ``--resume``) the trainer's state. An :class:`~physode.Ensemble` is one
model there: class ``Ensemble``, a configuration naming its members' class and configuration and ``K``, and one
state_dict with every member's weights and normalisation and its bootstrap counts.

Files are written atomically and read with ``torch.load(weights_only=True)``: loading never executes
code from the file. A corrupt, foreign or mismatched file raises a :class:`~physode.FileFormatError`.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import torch

from .devices import resolve_device
from .errors import FileFormatError, PhysodeError, UnknownSystemError
from .files import atomic_write
from .models import MODELS, DynamicsModel, Ensemble
from .systems import system_from_spec

FORMAT = "physode.checkpoint"
FORMAT_VERSION = 1
#: The classes a checkpoint may name, by name: physode's own models, and ensembles of them (whose members' classes
#: are looked up among the same models).
CLASSES = {cls.__name__: cls for cls in (*MODELS.values(), Ensemble)}


def refuse_other_system(model, system_spec, where: str, fix: str, name: str = "the model") -> None:
    """A PhysodeError when ``model`` was trained on another system than ``system_spec`` (the ``where`` it is used).

    Models loaded from a checkpoint carry the ``system_spec`` they were trained on; others are not checked.
    """
    trained_on = getattr(model, "system_spec", None)
    if trained_on is not None and trained_on != system_spec:
        here = system_spec or {"name": "recorded data", "params": ""}
        raise PhysodeError(f"{name} was trained on {trained_on['name']} {trained_on['params']}, not on {where}'s "
                           f"{here['name']} {here['params']}; {fix}")


def save_checkpoint(path, model: DynamicsModel, *, system_spec: dict | None = None, **extra) -> Path:
    """Write ``model`` (class, config, weights) and ``extra`` plain data / tensors to ``path`` atomically."""
    if type(model).__name__ not in CLASSES:
        raise PhysodeError(f"cannot save a {type(model).__name__}; checkpoints hold one of {', '.join(CLASSES)}")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"class": type(model).__name__, "config": model.config(), "state_dict": model.state_dict()},
        "system": system_spec,
        **extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_write(path, "checkpoint") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read and check a checkpoint written by :func:`save_checkpoint`; returns its dictionary.

    ``map_location``: the device its tensors load onto (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``),
    whatever device they were saved from.
    """
    path = Path(path)
    map_location = resolve_device(map_location)
    if not path.is_file():
        raise FileFormatError(f"checkpoint {str(path)!r} does not exist (or is not a file); train one with `physode train`")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise FileFormatError(
            f"{str(path)!r} holds objects that a safe load refuses (it may carry code): {str(exc).splitlines()[0][:200]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, struct.error) as exc:
        raise FileFormatError(f"{str(path)!r} is not a readable checkpoint (truncated or of another kind): {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise FileFormatError(f"{str(path)!r} is not a physode checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise FileFormatError(
            f"{str(path)!r} has checkpoint version {version!r}; this physode reads 1..{FORMAT_VERSION}: upgrade physode"
        )
    model = payload.get("model")
    if not isinstance(model, dict) or model.get("class") not in CLASSES or not isinstance(model.get("config"), dict):
        raise FileFormatError(f"{str(path)!r} names no model physode knows (one of {', '.join(CLASSES)})")
    return payload


def load_model(path, map_location="cpu", expected: type | None = None) -> DynamicsModel:
    """Rebuild the model stored at ``path`` (in eval mode) on the device ``map_location`` (see
    :func:`load_checkpoint`). ``expected`` refuses another model class."""
    device = resolve_device(map_location)
    payload = load_checkpoint(path, device)
    entry = payload["model"]
    cls = CLASSES[entry["class"]]
    if expected is not None and not issubclass(cls, expected):
        fix = ("; train an ensemble (physode train --ensemble K, or physode.build_model(name, data, ensemble=K)) or "
               "load this one without expected=Ensemble") if expected is Ensemble else ""
        held, wanted = (f"{'an' if name[0] in 'AEIOU' else 'a'} {name}" for name in (entry["class"], expected.__name__))
        raise FileFormatError(f"{str(path)!r} holds {held}, not {wanted}{fix}")
    try:
        model = cls.from_config(entry["config"]).to(device)
        model.load_state_dict(entry["state_dict"])
    except (TypeError, RuntimeError, PhysodeError) as exc:
        raise FileFormatError(f"{str(path)!r} has a configuration or weights that do not fit {entry['class']}: {exc}") from None
    spec = payload.get("system")
    try:  # in today's form (parameters added since get their defaults)
        model.system_spec = None if spec is None else system_from_spec(spec).spec()
    except UnknownSystemError:  # a system that nothing in this session provides: the model still loads, as it was saved
        model.system_spec = dict(spec)
    except PhysodeError as exc:
        raise FileFormatError(f"{str(path)!r} names a system physode cannot rebuild: {exc}") from None
    model.training_info = payload.get("training")
    return model.eval()

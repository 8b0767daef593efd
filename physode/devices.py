"""Where the tensors of a stage live: ``device="auto" | "cpu" | "cuda" | "cuda:N"``.

Every stage (:func:`~physode.simulate`, :meth:`~physode.TrajectoryDataset.generate`, :func:`~physode.fit`,
:func:`~physode.compare`, the envs) takes ``device`` and keeps its working tensors there from start to
end; ``"auto"`` (the default) picks the GPU when torch sees one, else the CPU. Under ``torchrun``
``"auto"`` and ``"cuda"`` pick the GPU of the process's ``LOCAL_RANK``. Datasets and checkpoints are
stored from the CPU, and checkpoints load onto any device (``load_model(path, map_location=...)``).
"""

from __future__ import annotations

import os

import torch

from .errors import PhysodeError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(device="auto") -> torch.device:
    """The ``torch.device`` meant by ``device`` (a name from :data:`DEVICES` or a ``torch.device``).

    Raises a :class:`~physode.PhysodeError` for an unknown name, and for a GPU that torch cannot see.
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower()
    else:
        raise PhysodeError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise PhysodeError(f"device must be one of {', '.join(DEVICES)}, got {device!r}") from None
    if resolved.type == "cpu":
        return torch.device("cpu")
    if resolved.type != "cuda":
        raise PhysodeError(f"device {device!r} is not supported: physode runs on 'cpu' or 'cuda' (float64 ground truth)")
    if not torch.cuda.is_available():
        raise PhysodeError(f"device {device!r} asks for a GPU but torch sees none (torch.cuda.is_available() is "
                           "False); use device='cpu' or 'auto'")
    count = torch.cuda.device_count()
    index = resolved.index if resolved.index is not None else int(os.environ.get("LOCAL_RANK", 0)) % count
    if index >= count:
        raise PhysodeError(f"device {device!r}: torch sees {count} GPU(s), cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)

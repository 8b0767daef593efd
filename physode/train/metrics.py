"""A run's ``metrics.jsonl``: one JSON object per line, a validation or an event; appended, rewritten, read."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FileFormatError
from ..files import atomic_append, atomic_write


def append_metrics(path, record: dict) -> None:
    """Append ``record`` as one line to ``metrics.jsonl`` at ``path``, whole or not at all
    (:func:`~physode.files.atomic_append`: its line never interleaves with another process's, and a full disk
    leaves the file as it was, with a PhysodeError)."""
    atomic_append(path, (json.dumps(record) + "\n").encode(), "metrics")


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

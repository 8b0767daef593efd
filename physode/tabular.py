"""CSV files in and out for trajectory datasets, in long format: one row per observation.

The layout that :func:`write_csv` writes and :func:`read_csv` reads (a header line, then one row per
observation; columns may come in any order and other columns are ignored on reading)::

    trajectory,t,q,p,force,split
    0,0.0,1.0,0.0,0.25,train
    0,0.1,0.995,-0.0998,-0.5,train
    0,0.2,0.980,-0.1987,,train

* ``trajectory``: which trajectory a row belongs to, any text (numbers or names). Rows are grouped by it,
  trajectories in the order in which their ids first appear, each trajectory's rows in file order; a
  trajectory's rows need not be contiguous (interleaved logs read as they are). Ids are compared as text
  (``1`` and ``1.0`` are two trajectories) and only within one file: the same id in two files names two
  trajectories. Without a trajectory column, each file is one trajectory.
* time and states: finite numbers; times strictly increase within each trajectory.
* controls (zero-order hold): a row's controls act from that row's time to the next row's time, so the last
  row of each trajectory uses none: its control cells are never read (:func:`write_csv` leaves them empty,
  a log that records an action there too reads just as well). Every other row needs every control.
* ``split``: ``train``, ``val`` or ``test``, one per trajectory, so that a dataset's split survives the file;
  :func:`read_csv` restores it when given ``split_column``, and otherwise draws a split afresh.

Blank lines (and rows of empty cells only) are skipped. Every problem in a file is one
:class:`~physode.FileFormatError` line naming the file, the row (the line number an editor shows, header =
line 1, blank lines counted) and the column, raised before a dataset exists.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import io
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .data import SPLITS, TrajectoryDataset
from .errors import FileFormatError, PhysodeError, unknown_name
from .files import atomic_write

#: The options of :meth:`TrajectoryDataset.from_arrays` that :func:`read_csv` passes on (its keyword-only ones).
FROM_ARRAYS_OPTIONS = tuple(name for name, parameter in inspect.signature(TrajectoryDataset.from_arrays).parameters.items()
                            if parameter.kind is inspect.Parameter.KEYWORD_ONLY)


class _Table(NamedTuple):
    """One CSV file's data rows as text: ``cells (R, K)`` stripped, ``lines (R,)`` their line numbers in the file."""

    path: str
    header: list[str]
    cells: np.ndarray
    lines: np.ndarray


class _Trajectory(NamedTuple):
    """One trajectory read from a file: ``t (L,)``, ``x (L, D)``, ``u (L-1, C)`` or None, ``split`` a code or None."""

    t: np.ndarray
    x: np.ndarray
    u: np.ndarray | None
    split: int | None


def read_csv(paths, *, time: str, states: list[str], controls: list[str] | None = None,
             trajectory_column: str | None = None, split_column: str | None = None,
             **from_arrays_options) -> TrajectoryDataset:
    """Trajectories from one or more CSV files in long format (see the module's docstring for the layout).

    Args:
        paths: a path or a list of paths; without ``trajectory_column`` each file is one trajectory.
        time: the time column's name.
        states: the state columns' names, ``D`` of them, in the order the states take (``x[..., d]``).
        controls: the control columns' names (``C`` of them), or None for uncontrolled data; a row's controls
            are held from its time to the next row's, so each trajectory's last row needs none.
        trajectory_column: the column whose value says which trajectory a row belongs to.
        split_column: a column of ``train`` / ``val`` / ``test`` (as :func:`write_csv` writes) that sets the
            split; without it the split is drawn with ``fractions`` and ``seed``.
        from_arrays_options: passed to :meth:`TrajectoryDataset.from_arrays` (``t_train``, ``fractions``,
            ``seed``, ``system``, ``time_dependent``, ``source``, ``meta``); ``source`` defaults to the file
            names and ``meta`` gains ``state_names`` and ``control_names``.

    Returns:
        a dataset of ``N`` trajectories of lengths ``L_i`` (:attr:`~TrajectoryDataset.lengths`), ``x: (N, T, D)``,
        ``u: (N, T-1, C)`` or None, in file order.
    """
    files = _path_list(paths)
    states = _names(states, "states", required=True)
    controls = _names(controls, "controls", required=False)
    wanted = [_name(time, "time"), *states, *controls] + [_name(c, arg) for c, arg in (
        (trajectory_column, "trajectory_column"), (split_column, "split_column")) if c is not None]
    if twice := _repeated(wanted):
        raise PhysodeError(f"column {twice!r} is named twice among time, states, controls, trajectory_column and "
                           "split_column; give each role its own column")
    for key in from_arrays_options:
        if key not in FROM_ARRAYS_OPTIONS:
            raise unknown_name("option of read_csv", key, FROM_ARRAYS_OPTIONS)
    if split_column is not None and {"fractions", "seed", "split"} & set(from_arrays_options):
        raise PhysodeError("read_csv takes split_column or fractions/seed/split, not both: the split column already sets "
                           "the split; drop one of them")

    trajectories = [trajectory for path in files for trajectory in _read_file(
        path, time, states, controls, trajectory_column, split_column)]
    names = [Path(path).name for path in files]
    options = dict(from_arrays_options)
    options.setdefault("source", ", ".join(names))
    meta = options.get("meta") or {}
    if not isinstance(meta, dict):
        raise PhysodeError(f"meta must be a dict of JSON values, got {type(meta).__name__}")
    options["meta"] = {**meta, "state_names": states, **({"control_names": controls} if controls else {})}
    if split_column is not None:  # meta records the split's real shares, not the default fractions
        counts = np.bincount([tr.split for tr in trajectories], minlength=len(SPLITS))
        options["meta"].update(split_column=split_column, fractions=(counts / counts.sum()).tolist())
    if split_column is not None:  # the file's split, instead of one drawn afresh
        options["split"] = np.array([tr.split for tr in trajectories], dtype=np.int64)
    return TrajectoryDataset.from_arrays([tr.t for tr in trajectories], [tr.x for tr in trajectories],
                                         [tr.u for tr in trajectories] if controls else None, **options)


def write_csv(dataset: TrajectoryDataset, path, *, trajectory_column: str = "trajectory", time: str = "t",
              split_column: str | None = "split") -> Path:
    """Write ``dataset`` to ``path`` as CSV in long format, atomically; returns the path.

    Columns: ``trajectory_column`` (the trajectory's index ``0..N-1``), ``time``, the state names, the control
    names (``meta["control_names"]``, else ``u0, u1, ...``) and ``split_column`` (None: no split column). One row
    per observation, no padding: trajectory ``i`` has ``lengths[i]`` rows, its last row without controls.
    Numbers are written as the shortest text that reads back as the same float64 (numpy's float repr), so
    :func:`read_csv` restores ``t``, ``x`` and ``u`` bit for bit. The file holds what recorded data hold: the
    observed states (not ``x_clean``), controls and split; the system, ``t_train`` and ``meta`` stay in
    :meth:`TrajectoryDataset.save`'s ``.npz``.
    """
    if not isinstance(dataset, TrajectoryDataset):
        raise PhysodeError(f"dataset must be a physode TrajectoryDataset, got {type(dataset).__name__}")
    n_controls = 0 if dataset.u is None else dataset.u.shape[-1]
    control_names = list(dataset.meta.get("control_names") or [f"u{c}" for c in range(n_controls)])
    if len(control_names) != n_controls:
        raise PhysodeError(f"meta['control_names'] names {len(control_names)} controls but the dataset has {n_controls}; "
                           "fix meta['control_names'] or remove it")
    header = [_name(trajectory_column, "trajectory_column"), _name(time, "time"), *dataset.state_names, *control_names]
    header += [] if split_column is None else [_name(split_column, "split_column")]
    if twice := _repeated(header):
        raise PhysodeError(f"the column {twice!r} would appear twice in {header}; pass trajectory_column=, time= or "
                           "split_column= another name")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for i in range(len(dataset)):
        t, x, u = (None if a is None else a.numpy() for a in dataset.trajectory(i))
        length = len(t)
        numbers = [t[:, None], x] + ([] if u is None else [np.concatenate([u, np.full((1, n_controls), np.nan)])])
        cells = np.concatenate(numbers, axis=1).astype(str)  # float64 -> its shortest round-trip repr
        cells[-1, 1 + x.shape[1]:] = ""  # the last row holds no control: nothing is held after the last time
        columns = [np.full((length, 1), str(i)), cells]
        if split_column is not None:
            columns.append(np.full((length, 1), SPLITS[int(dataset.split[i])]))
        writer.writerows(np.concatenate(columns, axis=1).tolist())
    with atomic_write(path, "csv file") as handle:
        handle.write(text.getvalue().encode("utf-8"))
    return Path(path)


# ---------------------------------------------------------------------------------------------- reading


def _read_file(path: str, time: str, states: list[str], controls: list[str], trajectory_column: str | None,
               split_column: str | None) -> list[_Trajectory]:
    """The trajectories of one file, every cell that they use checked."""
    table = _table(path)
    column = {name: _column(table, name) for name in
              [time, *states, *controls, *(c for c in (trajectory_column, split_column) if c is not None)]}
    n_rows = len(table.lines)
    if trajectory_column is None:
        group = np.zeros(n_rows, dtype=np.int64)
    else:
        ids = table.cells[:, column[trajectory_column]]
        _refuse_empty(path, ids, table.lines, trajectory_column, "write which trajectory the row belongs to")
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first)] = np.arange(len(first))  # trajectories in the order of their first row
        group = rank[inverse]
    order = np.argsort(group, kind="stable")  # rows grouped by trajectory, file order within each
    sizes = np.bincount(group)
    starts = np.cumsum(sizes) - sizes
    last = np.zeros(n_rows, dtype=bool)
    last[order[starts + sizes - 1]] = True

    single = np.flatnonzero(sizes == 1)
    if len(single):
        line = table.lines[order[starts[single[0]]]]
        raise FileFormatError(f"{path}, row {line}: its trajectory has this one row; a trajectory needs at least 2 "
                              "observations: add rows or drop it")
    t = _numbers(table, column[time], time)
    same = group[order[1:]] == group[order[:-1]]
    _refuse_unsorted(table, t, order[:-1][same], order[1:][same], time)
    x = np.stack([_numbers(table, column[name], name) for name in states], axis=1)
    u = np.full((n_rows, len(controls)), np.nan)
    for c, name in enumerate(controls):
        u[~last, c] = _numbers(table, column[name], name, rows=~last, fix=(
            "give the control held from this row's time to the next row's (only each trajectory's last row may be "
            "empty)"))
    split = None if split_column is None else \
        _split_column_codes(table, column[split_column], split_column, group, order, starts)

    pieces = np.split(order, starts[1:])
    return [_Trajectory(t[rows], x[rows], u[rows[:-1]] if controls else None,
                        None if split is None else int(split[g])) for g, rows in enumerate(pieces)]


def _refuse_unsorted(table: _Table, t: np.ndarray, earlier: np.ndarray, later: np.ndarray, name: str) -> None:
    """Refuse the first row (in the file) whose time ``t[later]`` is not after the time ``t[earlier]`` of the row
    before it in its trajectory; ``t: (R,)`` column ``name``, ``earlier, later: (P,)`` row indices."""
    unsorted = np.flatnonzero(~(t[later] > t[earlier]))
    if len(unsorted):
        k = unsorted[np.argmin(table.lines[later[unsorted]])]
        row, before = later[k], earlier[k]
        how = "repeats" if t[row] == t[before] else "comes before"
        raise FileFormatError(f"{table.path}, row {table.lines[row]}, column {name!r}: time {float(t[row])!r} {how} the time "
                              f"{float(t[before])!r} of the same trajectory at row {table.lines[before]}; sort the rows by "
                              "time within each trajectory and remove duplicate times")


def _table(path: str) -> _Table:
    """The file at ``path`` read as text cells, the header stripped off; refuses missing, empty or ragged files."""
    if not os.path.isfile(path):
        raise FileFormatError(f"csv file {path!r} does not exist (or is not a file); check the path")
    rows, lines, previous = [], [], 0
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets start files with a BOM
            reader = csv.reader(handle)
            for row in reader:
                if "".join(row).strip():  # blank lines (",,," too) are skipped but still counted
                    rows.append(row)
                    lines.append(previous + 1)  # where the row starts (a quoted cell may span lines)
                previous = reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FileFormatError(f"cannot read csv file {path!r} ({exc}); give a UTF-8 text file of comma-separated "
                              "values") from None
    if not rows:
        raise FileFormatError(f"csv file {path!r} is empty; it needs a header line naming the columns, then one row "
                              "per observation")
    header = [name.strip() for name in rows[0]]
    if len(rows) == 1:
        raise FileFormatError(f"csv file {path!r} has a header but no rows; add one row per observation")
    for row, line in zip(rows[1:], lines[1:], strict=True):
        if len(row) != len(header):
            raise FileFormatError(f"{path}, row {line}: {len(row)} cells for the header's {len(header)} columns; give "
                                  "every row one cell per column (an empty cell is still separated by commas)")
    return _Table(path, header, np.char.strip(np.array(rows[1:], dtype=str)), np.array(lines[1:]))


def _column(table: _Table, name: str) -> int:
    """The index of column ``name`` in ``table``'s header; a missing one is refused with the closest names."""
    where = [k for k, column in enumerate(table.header) if column == name]
    if len(where) == 1:
        return where[0]
    if where:
        raise FileFormatError(f"csv file {table.path!r} has {len(where)} columns named {name!r}; rename all but one")
    close = difflib.get_close_matches(name, table.header, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise FileFormatError(f"csv file {table.path!r} has no column {name!r} (its columns: {', '.join(table.header)}); "
                          f"{hint}name the columns as the file's header does")


def _numbers(table: _Table, column: int, name: str, rows: np.ndarray | None = None,
             fix: str = "write a finite decimal number such as 1.5 or -2e-3") -> np.ndarray:
    """Column ``column`` (called ``name``) of ``table`` as float64 ``(R,)`` (``rows``: a mask, only those rows);
    the first cell that is empty, not a number, NaN or infinite is refused, naming its row."""
    cells = table.cells[:, column] if rows is None else table.cells[rows, column]
    lines = table.lines if rows is None else table.lines[rows]
    _refuse_empty(table.path, cells, lines, name, fix)
    try:
        values = cells.astype(np.float64)  # numpy's parse, exact (correctly rounded)
    except ValueError:
        values = None
    if values is not None and np.isfinite(values).all():
        return values
    # the failed conversion does not say where it failed: find the first bad cell, in the error path only
    for k, text in enumerate(cells.tolist()):
        try:
            bad = not np.isfinite(np.float64(text))
            problem = "is not finite"
        except ValueError:
            bad, problem = True, "is not a number"
        if bad:
            raise FileFormatError(f"{table.path}, row {lines[k]}, column {name!r}: {text!r} {problem}; {fix}")
    raise AssertionError("unreachable: a cell that numpy could not read was not found")


def _refuse_empty(path: str, cells: np.ndarray, lines: np.ndarray, name: str, fix: str) -> None:
    """Refuse the first empty cell of ``cells (R,)`` of column ``name``, on lines ``lines (R,)`` of the file."""
    empty = np.flatnonzero(cells == "")
    if len(empty):
        raise FileFormatError(f"{path}, row {lines[empty[0]]}, column {name!r} is empty; {fix}")


def _split_column_codes(table: _Table, column: int, name: str, group: np.ndarray, order: np.ndarray,
                 starts: np.ndarray) -> np.ndarray:
    """Each trajectory's split code ``(N,)`` from column ``column`` (called ``name``): one of :data:`SPLITS` per
    trajectory, the same on all its rows."""
    texts = table.cells[:, column]
    matches = texts[:, None] == np.array(SPLITS)[None, :]  # (R, 3)
    unknown = np.flatnonzero(~matches.any(axis=1))
    if len(unknown):
        k = unknown[0]
        raise FileFormatError(f"{table.path}, row {table.lines[k]}, column {name!r}: {str(texts[k])!r} is not a split; "
                              f"write one of {', '.join(SPLITS)}")
    codes = matches.argmax(axis=1)
    first = order[starts]  # each trajectory's first row
    differs = np.flatnonzero(codes != codes[first][group])
    if len(differs):
        k = differs[0]
        raise FileFormatError(f"{table.path}, row {table.lines[k]}, column {name!r}: {str(texts[k])!r}, but row "
                              f"{table.lines[first[group[k]]]} of the same trajectory says {str(texts[first[group[k]]])!r}; "
                              "give each trajectory one split")
    return codes[first]


# ---------------------------------------------------------------------------------------------- arguments


def _path_list(paths) -> list[str]:
    """``paths`` (one path or a list of them) as a non-empty list of strings."""
    items = [paths] if isinstance(paths, str | os.PathLike) else paths
    if not isinstance(items, list | tuple) or not items or not all(isinstance(p, str | os.PathLike) for p in items):
        raise PhysodeError(f"paths must be a csv file's path or a non-empty list of paths, got {paths!r}")
    return [os.fspath(p) for p in items]


def _names(names, argument: str, required: bool) -> list[str]:
    """``names`` (a list of column names; None or empty only when not ``required``) as a list of strings."""
    if names is None and not required:
        return []
    if isinstance(names, str) or not isinstance(names, list | tuple) or (required and not names):
        raise PhysodeError(f"{argument} must be a list of column names, e.g. ['q', 'p'], got {names!r}")
    return [_name(name, f"{argument}[{k}]") for k, name in enumerate(names)]


def _repeated(names: list[str]) -> str | None:
    """The first name that occurs more than once in ``names``, or None."""
    return next((name for name in names if names.count(name) > 1), None)


def _name(name, argument: str) -> str:
    """``name`` checked as a column name: a non-empty string (as the header has it, without surrounding spaces)."""
    if not isinstance(name, str) or not name.strip():
        raise PhysodeError(f"{argument} must be a column name (non-empty text), got {name!r}")
    return name

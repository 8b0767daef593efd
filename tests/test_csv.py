"""CSV in and out (physode.tabular): trajectories that scipy computed for a system physode does not know
(Lotka-Volterra predator-prey, with and without harvesting) read back exactly, a dataset survives
write_csv -> read_csv bit for bit, and every malformed file is one PhysodeError line naming its row or column."""

import csv

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from physode import PhysodeError, TrajectoryDataset
from physode.tabular import read_csv, write_csv

ALPHA, BETA, GAMMA, DELTA = 1.1, 0.4, 0.4, 0.1  # prey growth, predation, predator death, predator growth
DURATIONS = (4.0, 6.0, 8.0, 10.0, 12.0, 5.0)  # different lengths: 41 to 121 rows at dt = 0.1


def lotka_volterra(t_end, x0, harvest=None, dt=0.1):
    """``t (L,)``, states ``(L, 2)`` (prey, predator) at rtol = atol = 1e-10, and the harvest ``(L-1,)`` held
    over each interval (zero-order hold: one solve per interval) or None."""
    t = np.linspace(0.0, t_end, round(t_end / dt) + 1)

    def field(_, z, u):
        prey, predator = z
        return [ALPHA * prey - BETA * prey * predator - u * prey, DELTA * prey * predator - GAMMA * predator]

    if harvest is None:
        sol = solve_ivp(field, (0.0, t_end), x0, t_eval=t, args=(0.0,), rtol=1e-10, atol=1e-10)
        return t, sol.y.T, None
    states = [np.asarray(x0, dtype=float)]
    for k, u in enumerate(harvest):
        sol = solve_ivp(field, (t[k], t[k + 1]), states[-1], args=(u,), rtol=1e-10, atol=1e-10)
        states.append(sol.y[:, -1])
    return t, np.stack(states), harvest


def invariant(states):
    """Lotka-Volterra's conserved quantity ``(L,)`` (without harvesting), for states ``(L, 2)``."""
    prey, predator = states.T
    return DELTA * prey - GAMMA * np.log(prey) + BETA * predator - ALPHA * np.log(predator)


@pytest.fixture(scope="module")
def runs():
    """Six trajectories of different durations from different starts."""
    return [lotka_volterra(t_end, [8.0 + k, 4.0 + 0.5 * k]) for k, t_end in enumerate(DURATIONS)]


def write_rows(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def text(value):
    """A number as the shortest text that reads back as the same float64."""
    return repr(float(value))


def exact(a, b):
    """Same shape and the same float64 bits."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and (a.view(np.uint64) == b.view(np.uint64)).all()


def test_long_format_with_an_id_column_reads_scipy_trajectories_back_exactly(tmp_path, runs):
    ids = [f"run-{k}" for k in range(len(runs))]
    rows = [[name, text(ti), text(prey), text(predator)]
            for name, (t, x, _) in zip(ids, runs, strict=True) for ti, (prey, predator) in zip(t, x, strict=True)]
    path = write_rows(tmp_path / "lv.csv", ["run", "time", "prey", "predator"], rows)
    data = read_csv(path, time="time", states=["prey", "predator"], trajectory_column="run")
    assert len(data) == len(runs) and data.lengths.tolist() == [len(t) for t, _, _ in runs]
    for i, (t, x, _) in enumerate(runs):
        t_read, x_read, u_read = data.trajectory(i)
        assert exact(t_read, t) and exact(x_read, x) and u_read is None
        # the columns landed in the right states: the conserved quantity stays put along each trajectory
        assert np.ptp(invariant(x_read.numpy())) < 1e-8
    assert data.state_names == ("prey", "predator") and data.meta["source"] == "lv.csv"
    assert (data.split == 2).sum() >= 1 and (data.split == 0).sum() >= 1
    assert float(data.end_times.max()) == max(DURATIONS)


def test_one_file_per_trajectory(tmp_path, runs):
    paths = []
    for k, (t, x, _) in enumerate(runs):
        paths.append(tmp_path / f"run{k}.csv")
        np.savetxt(paths[-1], np.column_stack([t, x]), fmt="%.17g", delimiter=",", header="t,prey,predator", comments="")
    data = read_csv(paths, time="t", states=["prey", "predator"], t_train=2.0)
    assert data.lengths.tolist() == [len(t) for t, _, _ in runs] and data.t_train == 2.0
    for i, (t, x, _) in enumerate(runs):
        t_read, x_read, _ = data.trajectory(i)
        assert exact(t_read, t) and exact(x_read, x)
    assert (data.split == 2).sum() >= 1
    assert data.meta["source"] == ", ".join(f"run{k}.csv" for k in range(len(runs)))


def test_interleaved_rows_group_by_id_in_order_of_first_appearance(tmp_path):
    rows = [["b", 0.0, 1.0], ["a", 0.0, 10.0], ["b", 0.5, 2.0], [7, 0.0, 70.0], ["a", 1.0, 11.0], ["b", 1.5, 3.0],
            [7, 2.0, 71.0]]
    data = read_csv(write_rows(tmp_path / "mixed.csv", ["id", "t", "q"], rows), time="t", states=["q"],
                    trajectory_column="id")
    assert data.lengths.tolist() == [3, 2, 2]  # b, a, 7
    assert [data.trajectory(i)[1][:, 0].tolist() for i in range(3)] == [[1.0, 2.0, 3.0], [10.0, 11.0], [70.0, 71.0]]
    assert data.trajectory(0)[0].tolist() == [0.0, 0.5, 1.5]
    # ids are a file's own: the same id in two files names two trajectories; blank rows are skipped
    first = write_rows(tmp_path / "day1.csv", ["id", "t", "q"], [[0, 0, 1], [0, 1, 2], ["", "", ""], [1, 0, 3], [1, 1, 4]])
    second = write_rows(tmp_path / "day2.csv", ["q", "id", "t"], [[5, 0, 0], [6, 0, 1], [7, 0, 2]])  # other column order
    data = read_csv([first, second], time="t", states=["q"], trajectory_column="id")
    assert data.lengths.tolist() == [2, 2, 3]
    assert [data.trajectory(i)[1][:, 0].tolist() for i in range(3)] == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0, 7.0]]


def test_controls_are_held_from_their_row_to_the_next_and_the_last_row_needs_none(tmp_path):
    harvest = np.array([0.0, 0.3, 0.1, 0.5, 0.2])
    t, x, u = lotka_volterra(0.5, [9.0, 4.0], harvest)
    held = [text(uk) for uk in u] + [""]
    rows = [[0, text(ti), text(a), text(b), hk] for ti, (a, b), hk in zip(t, x, held, strict=True)]
    blank, filled = rows, [*rows[:-1], rows[-1][:-1] + ["123.0"]]  # a logged action on the last row is never read
    for name, table in (("blank.csv", blank), ("filled.csv", filled)):
        data = read_csv(write_rows(tmp_path / name, ["id", "t", "prey", "predator", "harvest"], table), time="t",
                        states=["prey", "predator"], controls=["harvest"], trajectory_column="id")
        t_read, x_read, u_read = data.trajectory(0)
        assert exact(t_read, t) and exact(x_read, x) and exact(u_read[:, 0], harvest)
        assert data.meta["control_names"] == ["harvest"]
    # harvesting removes prey: the conserved quantity of the free system drifts, so the controls acted
    free = lotka_volterra(0.5, [9.0, 4.0])[1]
    assert np.ptp(invariant(free)) < 1e-8 < np.ptp(invariant(x))


def test_write_then_read_is_bit_for_bit_with_controls_splits_and_different_lengths(tmp_path):
    rng = np.random.default_rng(3)
    sizes = (7, 2, 12, 5)
    t = [np.cumsum(rng.uniform(0.01, 1.0, n)) for n in sizes]
    x = [rng.standard_normal((n, 3)) * 10.0 ** rng.integers(-300, 300, (n, 3)) for n in sizes]
    x[0][:4, 0] = [-0.0, 5e-324, 1.7976931348623157e308, 0.1]  # sign of zero, subnormal, largest, inexact decimal
    u = [rng.standard_normal((n - 1, 2)) for n in sizes]
    original = TrajectoryDataset.from_arrays(t, x, u, seed=5, meta={"state_names": ["a", "b", "c"],
                                                                    "control_names": ["left", "right"]})
    path = write_csv(original, tmp_path / "out" / "data.csv")
    assert [p.name for p in path.parent.iterdir()] == ["data.csv"]  # written atomically: no temporary file left
    lines = path.read_text().splitlines()
    assert lines[0] == "trajectory,t,a,b,c,left,right,split" and len(lines) == 1 + sum(sizes)
    assert lines[7].split(",")[5:7] == ["", ""] and lines[8].startswith("1,")  # the last row holds no control
    back = read_csv(path, time="t", states=["a", "b", "c"], controls=["left", "right"], trajectory_column="trajectory",
                    split_column="split")
    assert back.lengths.tolist() == list(sizes) and back.split.tolist() == original.split.tolist()
    for i in range(len(sizes)):
        assert all(exact(a, b) for a, b in zip(original.trajectory(i), back.trajectory(i), strict=True))
    assert back.state_names == ("a", "b", "c") and back.meta["control_names"] == ["left", "right"]


def test_write_without_controls_or_split_and_default_control_names(tmp_path):
    t = [np.arange(3.0), np.arange(4.0)]
    plain = TrajectoryDataset.from_arrays(t, [np.ones((3, 1)), np.zeros((4, 1))])
    lines = write_csv(plain, tmp_path / "plain.csv", trajectory_column="run", split_column=None).read_text().splitlines()
    assert lines[:2] == ["run,t,x0", "0,0.0,1.0"] and len(lines) == 8
    controlled = TrajectoryDataset.from_arrays(t, [np.ones((3, 1)), np.zeros((4, 1))], [np.ones((2, 2)), np.ones((3, 2))])
    assert write_csv(controlled, tmp_path / "u.csv").read_text().startswith("trajectory,t,x0,u0,u1,split\n")


HEADER = "id,t,x,v\n"
GOOD = HEADER + "a,0,1,0\na,1,2,0\n"

# (file text, read_csv options beyond time="t", states=["x", "v"], trajectory_column="id", pattern)
BAD_FILES = {
    "misspelt column": ("id,t,x,velocity\na,0,1,0\na,1,2,0\n", {"states": ["x", "velocty"]},
                        r"no column 'velocty' \(its columns: id, t, x, velocity\); did you mean 'velocity'\?"),
    "missing column": (GOOD, {"states": ["x", "energy"]}, r"no column 'energy' \(its columns: id, t, x, v\); name the"),
    "missing id column": (GOOD, {"trajectory_column": "run"}, r"no column 'run'"),
    "non-numeric cell": (HEADER + "a,0,1,0\na,1,abc,0\n", {}, r"row 3, column 'x': 'abc' is not a number"),
    "empty cell": (HEADER + "a,0,1,0\na,1,2,\n", {}, r"row 3, column 'v' is empty"),
    "empty time": (HEADER + "a,,1,0\na,1,2,0\n", {}, r"row 2, column 't' is empty"),
    "nan": (HEADER + "a,0,nan,0\na,1,2,0\n", {}, r"row 2, column 'x': 'nan' is not finite"),
    "inf": (HEADER + "a,0,1,0\na,1,2,-inf\n", {}, r"row 3, column 'v': '-inf' is not finite"),
    "unsorted times": (HEADER + "a,0,1,0\na,2,2,0\na,1,3,0\n", {},
                       r"row 4, column 't': time 1.0 comes before the time 2.0 of the same trajectory at row 3; sort"),
    "duplicate times": (HEADER + "a,0,1,0\nb,0,1,0\na,0,2,0\nb,1,1,0\n", {}, r"row 4, column 't': time 0.0 repeats .* row 2"),
    "single row": (HEADER + "a,0,1,0\na,1,2,0\nb,0,1,0\n", {}, r"row 4: its trajectory has this one row"),
    "single-row file": (GOOD.replace("a,1,2,0\n", ""), {"trajectory_column": None}, r"row 2: its trajectory has this one row"),
    "controls on some rows only": ("id,t,x,v,F\na,0,1,0,0.5\na,1,2,0,\na,2,3,0,\n", {"controls": ["F"]},
                                   r"row 3, column 'F' is empty; give the control .*only each trajectory's last row"),
    "blank lines count": (HEADER + "a,0,1,0\n\n\na,1,oops,0\n", {}, r"row 5, column 'x': 'oops' is not a number"),
    "ragged row": (HEADER + "a,0,1,0\na,1,2\n", {}, r"row 3: 3 cells for the header's 4 columns"),
    "empty id": (HEADER + "a,0,1,0\n,1,2,0\n", {}, r"row 3, column 'id' is empty"),
    "twice-named column": ("id,t,x,x,v\na,0,1,1,0\na,1,2,2,0\n", {}, r"2 columns named 'x'; rename all but one"),
    "empty file": ("", {}, r"is empty; it needs a header line"),
    "only blank lines": ("\n , \n,,\n", {}, r"is empty"),
    "header only": (HEADER, {}, r"has a header but no rows"),
    "unknown split": (HEADER.replace("v\n", "v,split\n") + "a,0,1,0,train\na,1,2,0,tset\n", {"split_column": "split"},
                      r"row 3, column 'split': 'tset' is not a split; write one of train, val, test"),
    "two splits in a trajectory": (HEADER.replace("v\n", "v,split\n") + "a,0,1,0,train\na,1,2,0,test\n",
                                   {"split_column": "split"}, r"row 3, column 'split': 'test', but row 2 .* says 'train'"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_malformed_file_is_one_line_naming_the_file_and_place(tmp_path, case):
    text, options, pattern = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    options = {"time": "t", "states": ["x", "v"], "trajectory_column": "id", **options}
    with pytest.raises(PhysodeError, match=pattern) as caught:
        read_csv(path, **options)
    assert "\n" not in str(caught.value) and "bad.csv" in str(caught.value)


def test_files_with_different_states_name_the_file_that_lacks_one(tmp_path):
    (tmp_path / "a.csv").write_text("t,x,v\n0,1,0\n1,2,0\n")
    (tmp_path / "b.csv").write_text("t,x\n0,1\n1,2\n")
    with pytest.raises(PhysodeError, match=r"b\.csv' has no column 'v' \(its columns: t, x\)") as caught:
        read_csv([tmp_path / "a.csv", tmp_path / "b.csv"], time="t", states=["x", "v"])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("options, pattern", [
    ({"states": "x"}, r"states must be a list of column names"),
    ({"states": []}, r"states must be a list of column names"),
    ({"states": ["x", "t"]}, r"column 't' is named twice"),
    ({"time": None}, r"time must be a column name"),
    ({"shuffle": True}, r"unknown option of read_csv 'shuffle'"),
    ({"split_column": "split", "fractions": (0.5, 0.25, 0.25)}, r"split_column or fractions/seed/split, not both"),
])
def test_bad_arguments(tmp_path, options, pattern):
    (tmp_path / "ok.csv").write_text("t,x\n0,1\n1,2\n")
    with pytest.raises(PhysodeError, match=pattern) as caught:
        read_csv(tmp_path / "ok.csv", **{"time": "t", "states": ["x"], **options})
    assert "\n" not in str(caught.value)


def test_a_path_that_does_not_exist(tmp_path):
    with pytest.raises(PhysodeError, match=r"csv file '.*nowhere\.csv' does not exist"):
        read_csv(tmp_path / "nowhere.csv", time="t", states=["x"])
    with pytest.raises(PhysodeError, match=r"paths must be"):
        read_csv([], time="t", states=["x"])


def test_write_refuses_clashing_names_and_leaves_the_old_file(tmp_path):
    data = TrajectoryDataset.from_arrays([np.arange(3.0)], [np.ones((3, 1))], meta={"state_names": ["t"]})
    path = tmp_path / "keep.csv"
    path.write_text("old")
    with pytest.raises(PhysodeError, match=r"column 't' would appear twice .* pass trajectory_column=, time="):
        write_csv(data, path)
    assert path.read_text() == "old"
    write_csv(data, path, time="time")
    assert path.read_text().startswith("trajectory,time,t,split\n")

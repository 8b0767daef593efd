"""Recorded data: trajectories of different lengths, recorded arrays with a split and horizon, training on them,
and scores against the data where no true system is known."""

import json
import re
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import physode
from physode import PhysodeError, TrajectoryDataset
from physode.cli import main
from physode.train import _Windows
from physode.distributed import World


def lotka_volterra(t, z):
    """Predator and prey: a system physode does not know."""
    x, y = z
    return [x - 0.5 * x * y, -y + 0.4 * x * y]


def _recorded(n=24, seed=0, dt=0.1, shared=True):
    """Trajectories of different durations by scipy at tight tolerance, on one grid (``shared``) or each its own."""
    rng = np.random.default_rng(seed)
    ts, xs = [], []
    for _ in range(n):
        duration = rng.uniform(3, 9)
        t = np.arange(0, duration, dt) if shared else np.sort(np.concatenate([[0.0], rng.uniform(0, duration, int(10 * duration))]))
        sol = solve_ivp(lotka_volterra, (0, t[-1]), rng.uniform(1, 3, 2), t_eval=t, rtol=1e-11, atol=1e-11)
        ts.append(t)
        xs.append(sol.y.T)
    return ts, xs


def lv_field(x):
    """:func:`lotka_volterra` on batched torch states ``(..., 2)``."""
    return torch.stack([x[..., 0] - 0.5 * x[..., 0] * x[..., 1], -x[..., 1] + 0.4 * x[..., 0] * x[..., 1]], dim=-1)


def Field(bias=0.0):
    """The true field (optionally biased by a constant) as a model: an unregistered ODESystem, which answers
    ``rollout`` and ``vector_field`` like a learned model."""
    return physode.ODESystem(lambda t, x, u: lv_field(x) + bias, state_names=("prey", "predator"), name=f"lv_{bias}")


def test_trajectories_of_different_lengths_are_kept_unpadded_and_round_trip_bit_for_bit(tmp_path):
    ts, xs = _recorded(shared=False)
    us = [np.random.default_rng(i).normal(size=(len(t) - 1, 1)) for i, t in enumerate(ts)]
    data = TrajectoryDataset.from_arrays(ts, xs, us, source="lab")
    assert data.ragged and data.irregular and data.lengths.tolist() == [len(t) for t in ts]
    for i in (0, 5, len(ts) - 1):
        t, x, u = data.trajectory(i)
        assert np.array_equal(t.numpy(), ts[i]) and np.array_equal(x.numpy(), xs[i]) and np.array_equal(u.numpy(), us[i])
    assert bool(torch.isnan(data.x[~data.mask]).all()) and bool(torch.isfinite(data.x[data.mask]).all())
    assert bool((data.t.diff(dim=1) > 0).all())  # past an end the grid continues (solvers need it), unobserved
    path = data.save(tmp_path / "data.npz")
    with np.load(path) as archive:  # stored without padding
        assert archive["x"].shape == (sum(len(t) for t in ts), 2) and archive["u"].shape == (sum(len(t) - 1 for t in ts), 1)
    back = TrajectoryDataset.load(path)
    assert back.fingerprint() == data.fingerprint() and torch.equal(back.t, data.t) and torch.equal(back.u, data.u)
    assert torch.equal(back.lengths, data.lengths) and torch.equal(back.x.nan_to_num(7.0), data.x.nan_to_num(7.0))
    assert back.summary() == data.summary() and "times" in data.summary()
    test = data.test
    assert test.t_train == data.t_train and torch.equal(test.lengths, data.lengths[data.split == 2])


def test_recorded_arrays_get_a_split_by_trajectory_and_a_training_horizon():
    ts, xs = _recorded(n=5)
    data = TrajectoryDataset.from_arrays(ts, xs)
    assert sorted(data.split.tolist()).count(2) >= 1 and sorted(data.split.tolist()).count(1) >= 1
    ends = [t[-1] for t in ts]
    middle = ts[int(np.argsort(ends)[len(ts) // 2])]  # the median-length trajectory: its observation nearest half way
    assert data.t_train == middle[np.argmin(np.abs(middle - middle[-1] / 2))]
    assert not data.irregular  # prefixes of one grid are kept as one shared grid
    assert data.state_names == ("x0", "x1") and not data.has_system
    named = TrajectoryDataset.from_arrays(ts, xs, meta={"state_names": ["prey", "predator"]}, seed=3)
    assert named.state_names == ("prey", "predator")
    assert TrajectoryDataset.from_arrays(ts, xs, seed=1).split.tolist() != data.split.tolist() or len(ts) < 3


@pytest.mark.parametrize("call, words", [
    (lambda ts, xs: TrajectoryDataset.from_arrays(ts, [xs[0][:1], *xs[1:]]), r"x\[0\] has 1 observation"),
    (lambda ts, xs: TrajectoryDataset.from_arrays([ts[0][:-1], *ts[1:]], xs), r"t\[0\] has \d+ rows, and trajectory 0 needs \d+ \(one time per state\)"),
    (lambda ts, xs: TrajectoryDataset.from_arrays(ts, [xs[0], np.ones((len(ts[1]), 3)), *xs[2:]]), "one state count"),
    (lambda ts, xs: TrajectoryDataset.from_arrays([ts[0][::-1], *ts[1:]], xs), r"t\[0\] must be strictly increasing"),
    (lambda ts, xs: TrajectoryDataset.from_arrays(ts, [np.where(np.arange(len(x))[:, None] == 2, np.nan, x) for x in xs]),
     "trajectory 0 has .* at observation 2"),
    (lambda ts, xs: TrajectoryDataset.from_arrays(ts, xs, t_train=100.0), r"t_train must lie in"),
    (lambda ts, xs: TrajectoryDataset(ts[0], np.ones((2, len(ts[0]), 2)), None, lengths=[1, 3]), "lengths must be"),
])
def test_bad_recorded_arrays_are_refused_in_one_line(call, words):
    ts, xs = _recorded(n=4, shared=False)
    with pytest.raises(PhysodeError, match=words) as caught:
        call(ts, xs)
    assert "\n" not in str(caught.value)


def test_training_windows_stay_within_each_trajectory_and_padding_never_reaches_the_loss():
    ts, xs = _recorded(n=12)
    data = TrajectoryDataset.from_arrays(ts, xs, fractions=(1.0, 0.0, 0.0), t_train=max(t[-1] for t in ts))
    windows = _Windows(data, torch.float64, 0, torch.device("cpu"), World.current("cpu"))
    x, t, u, mask, scale = windows.sample(512, 60)
    assert bool(torch.isfinite(x[mask]).all()) and bool(torch.isnan(x[~mask]).all())  # exactly the observed points
    assert bool((t.diff(dim=1) > 0).all()) and scale == pytest.approx(1 / (int(mask.sum()) * 2))
    assert int(mask.sum(1).max()) == 61 and int(mask.sum(1).min()) < 61  # the short trajectories are drawn too
    model = physode.build_model("node", data, hidden=8)
    model.set_normalization(torch.zeros(2), torch.ones(2))
    loss = physode.train._WindowLoss(model)(x.float(), t, u, mask, scale)
    loss.backward()
    assert math.isfinite(loss.item()) and all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())


def test_a_model_learns_the_field_of_recorded_trajectories_of_different_lengths():
    ts, xs = _recorded(n=32)
    data = TrajectoryDataset.from_arrays(ts, xs)
    torch.manual_seed(0)
    model = physode.build_model("node", data, hidden=32)
    physode.fit(model, data, physode.TrainConfig(steps=250, seed=0))
    seen = data.x[data.train_time_mask]
    with torch.no_grad():
        error = (model.vector_field(0.0, seen) - Field().vector_field(0.0, seen)).norm() / Field().vector_field(0.0, seen).norm()
    assert error < 0.15  # the true field, which the model never saw, to 15% on the training states (untrained: ~1)


@pytest.mark.parametrize("shared", [True, False], ids=["shared-grid", "own-grids"])
def test_compare_scores_against_the_recorded_data_without_a_true_system(shared):
    ts, xs = _recorded(shared=shared)
    data = TrajectoryDataset.from_arrays(ts, xs, seed=2)
    report = physode.compare({"truth": Field(), "biased": Field(bias=0.05)}, data)
    assert report.meta["reference"] == "data" and "true system" not in report.rows
    truth, biased = report.rows["truth"], report.rows["biased"]
    assert max(truth["median_error"].values()) < 1e-8 and truth["one_step_error"] < 1e-8
    assert biased["field_error_test"] is None and "n/a" in report.to_markdown()
    test = data.test
    if shared:  # the biased model's error at the horizon t_train, by hand: the test trajectories observed then
        k = int(np.argmin(np.abs(test.t.numpy() - data.t_train)))
        prediction = Field(0.05).rollout(test.x[:, 0], test.t[: k + 1])[:, -1]
        observed = test.lengths > k
        by_hand = ((prediction - test.x[:, k]).norm(dim=-1) / test.x[:, k].norm(dim=-1))[observed]
        assert biased["median_error"]["1.0"] == pytest.approx(float(np.median(by_hand.numpy())), rel=1e-6)
    # one-step errors by hand: from every observation to the next
    errors = []
    for i in range(len(test)):
        t, x, _ = test.trajectory(i)
        keep = t <= report.meta["t_end"] + 1e-9
        t, x = t[keep], x[keep]
        step = torch.stack([Field(0.05).rollout(x[j : j + 1], t[j : j + 2])[0, -1] for j in range(len(t) - 1)])
        errors.append(((step - x[1:]).norm(dim=-1) / x[1:].norm(dim=-1)).numpy())
    assert biased["one_step_error"] == pytest.approx(float(np.median(np.concatenate(errors))), rel=1e-6)
    assert 0 < biased["valid_time"] <= float(test.end_times.max())
    unobserved = report.truth.isnan().any(-1)  # (N, T): past each trajectory's end
    assert report.truth.shape[0] == len(test) and bool(report.trajectories["biased"][unobserved].isnan().all())
    assert bool(torch.isfinite(report.trajectories["biased"][~unobserved]).all())


def test_a_dataset_without_a_system_says_what_needs_one():
    ts, xs = _recorded(n=6)
    data = TrajectoryDataset.from_arrays(ts, xs)
    with pytest.raises(PhysodeError, match="no true vector field"):
        physode.compare({"m": Field()}, data, reference="system")


def test_physode_compare_and_evaluate_take_recorded_data(tmp_path, capsys):
    ts, xs = _recorded(n=20)
    path = TrajectoryDataset.from_arrays(ts, xs, source="lotka_volterra.csv").save(tmp_path / "recorded.npz")
    out = tmp_path / "run"
    assert main(["compare", "--data", str(path), "--preset", "smoke", "--models", "node,resnet", "--out", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "vector-field and energy figures, which need its field, are left out" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["rows"]) == {"node", "resnet"} and report["meta"]["reference"] == "data"
    assert report["rows"]["node"]["field_error_test"] is None and report["rows"]["node"]["k_step_error"] > 0
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"phase_portraits.png", "error_vs_horizon.png", "training_node.png"} <= figures
    assert not any(name.startswith("vector_field") or name == "energy.png" for name in figures)
    assert main(["evaluate", str(out / "node"), "--data", str(path), "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    again = json.loads((tmp_path / "eval" / "report.json").read_text())["rows"]["node"]
    assert again["median_error"] == report["rows"]["node"]["median_error"] and again["k_step_error"] == report["rows"]["node"]["k_step_error"]
    assert main(["plot", str(out)]) == 0
    capsys.readouterr()
    assert main(["compare", "pendulum", "--data", str(path), "--preset", "smoke"]) == 2
    assert "not both" in capsys.readouterr().err


def _write_long_csv(path, ts, xs):
    """Trajectories in long format, as another tool would write them: an id column, time, two states."""
    rows = ["run,time,prey,predator"] + [f"r{i},{float(t)!r},{float(x[0])!r},{float(x[1])!r}" for i, (tt, xx) in enumerate(zip(ts, xs))
                                          for t, x in zip(tt, xx)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_scipy_trajectories_of_an_unknown_system_go_from_csv_through_import_train_and_evaluate(tmp_path, capsys):
    ts, xs = _recorded(n=16)
    csv = _write_long_csv(tmp_path / "lotka_volterra.csv", ts, xs)
    data = tmp_path / "data.npz"
    assert main(["import", str(csv), "--time", "time", "--states", "prey,predator", "--trajectory-column", "run",
                 "-o", str(data)]) == 0
    assert "16 trajectories" in capsys.readouterr().out
    imported = TrajectoryDataset.load(data)
    assert imported.state_names == ("prey", "predator") and imported.lengths.tolist() == [len(t) for t in ts]
    assert np.array_equal(imported.trajectory(3)[1].numpy(), xs[3])  # the CSV's digits read back exactly
    run = tmp_path / "node"
    assert main(["train", "--data", str(data), "--model", "node", "--out", str(run), "--steps", "20", "--quiet"]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["reference"] == "data" and report["meta"]["source"] == "lotka_volterra.csv"
    assert report["rows"]["node"]["one_step_error"] > 0 and report["rows"]["node"]["field_error_grid"] is None
    assert {"phase_portraits.png", "error_vs_horizon.png", "training_node.png"} <= {p.name for p in (out / "figures").iterdir()}
    assert "n/a" in (out / "report.md").read_text()


@pytest.mark.parametrize("edit, words", [
    (lambda text: text.replace("prey,predator", "prey,predatr", 1), "no column 'predator'.*predatr"),
    (lambda text: text.replace("\nr0,0.1,", "\nr0,0.1x,", 1), "row 3, column 'time'"),
])
def test_physode_import_refuses_a_bad_csv_in_one_line_and_writes_nothing(edit, words, tmp_path, capsys):
    ts, xs = _recorded(n=3)
    csv = _write_long_csv(tmp_path / "bad.csv", ts, xs)
    csv.write_text(edit(csv.read_text()))
    out = tmp_path / "data.npz"
    assert main(["import", str(csv), "--time", "time", "--states", "prey,predator", "--trajectory-column", "run",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(words, err) and not out.exists()

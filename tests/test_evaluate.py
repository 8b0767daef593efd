"""compare(): exact answers for the truth and for models with known errors, the report, bad input."""

import json

import numpy as np
import pytest
import torch

import physode
from physode import PhysodeError, TrajectoryDataset, simulate
from physode.evaluate import HORIZONS, _box_grid, compare


@pytest.fixture(scope="module")
def data():
    return TrajectoryDataset.generate(physode.SpringMass(), 20, t_end=2.0, dt=0.1, seed=3)


class Biased:
    """The true dynamics plus a constant offset on every rollout state and on the field: errors known by hand."""

    def __init__(self, system, offset, field_offset):
        self.system, self.offset, self.field_offset = system, offset, field_offset
        self.state_dim, self.num_parameters = system.state_dim, 0

    def rollout(self, x0, t, u=None):
        return simulate(self.system, x0, t) + self.offset

    def vector_field(self, t, x, u=None):
        return self.system.vector_field(t, x) + self.field_offset


def test_the_true_system_scores_zero(data):
    report = compare({"again": data.system}, data)
    for name in ("true system", "again"):
        row = report.rows[name]
        assert all(v == 0 for v in row["median_error"].values()) and row["field_error_test"] == 0
        assert row["valid_time"] == pytest.approx(4 * data.t_train)
        assert report.curves[name]["p90"].max() == 0
    assert report.times[-1] == pytest.approx(4 * data.t_train)


def test_a_constant_bias_gives_the_error_computed_by_hand(data):
    offset = torch.tensor([0.05, -0.02], dtype=torch.float64)
    field_offset = torch.tensor([0.1, 0.0], dtype=torch.float64)
    report = compare({"biased": Biased(data.system, offset, field_offset)}, data, threshold=0.2)
    x0 = data.test.x_clean[:, 0]
    truth = simulate(data.system, x0, torch.tensor(report.times))
    by_hand = (offset.norm() / truth.norm(dim=-1)).numpy()  # (N, T)
    row = report.rows["biased"]
    for h in HORIZONS:
        i = int(np.argmin(np.abs(report.times - h * data.t_train)))
        assert row["median_error"][str(h)] == pytest.approx(np.median(by_hand[:, i]), rel=1e-9)
        assert row["p90_error"][str(h)] == pytest.approx(np.percentile(by_hand[:, i], 90), rel=1e-9)
    first = np.where((by_hand > 0.2).any(1), (by_hand > 0.2).argmax(1), len(report.times) - 1)
    assert row["valid_time"] == pytest.approx(np.median(report.times[first]))
    states = data.test.x_clean[data.test.train_time_mask]
    truth_field = data.system.vector_field(0.0, states)
    expected = (field_offset.expand_as(truth_field).norm() / truth_field.norm()).item()
    assert row["field_error_test"] == pytest.approx(expected, rel=1e-9)


def test_the_field_grid_covers_the_data_region(data):
    states = data.x_clean.reshape(-1, 2)
    grid = _box_grid(states, 16, 0)
    torch.testing.assert_close(grid.min(0).values, states.min(0).values)
    torch.testing.assert_close(grid.max(0).values, states.max(0).values)
    high = _box_grid(torch.randn(100, 5, dtype=torch.float64), 16, 0)
    assert high.shape == (4096, 5)


def test_learned_models_are_scored_and_the_report_is_written(data, tmp_path):
    torch.manual_seed(0)
    models = {"node": physode.build_model("node", data, hidden=8), "resnet": physode.build_model("resnet", data, hidden=8),
              "hnn": physode.build_model("hnn", data, hidden=8)}
    report = compare(models, data)
    report.save(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    fields = {"parameters", "median_error", "mean_error", "p90_error", "nmse", "valid_time", "one_step_error", "k_step_error", "field_error_test",
              "field_error_grid", "energy_drift", "momentum_drift", "nfe", "rollout_seconds", "training_seconds"}
    assert set(saved["rows"]) == {"true system", "node", "resnet", "hnn"}
    for name, row in saved["rows"].items():
        assert set(row) == fields, name
    assert saved["rows"]["node"]["nfe"] > 0 and saved["rows"]["resnet"]["nfe"] == 40
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert all(f"| {name} |" in markdown for name in saved["rows"])


def test_without_a_test_split_the_evaluation_says_it_runs_on_every_trajectory(data):
    everything = TrajectoryDataset(data.t, data.x, data.system_spec, t_train=data.t_train)  # all 20 in the train split
    with pytest.warns(physode.PhysodeWarning, match=r"no test trajectories \(train/val/test: 20/0/0\).*all traj") as caught:
        report = compare({"again": data.system}, everything, horizons=(1, 2))
    assert len(caught) == 1 and set(report.rows["again"]["median_error"].values()) == {0.0}


def test_bad_comparisons_are_refused(data):
    with pytest.raises(PhysodeError, match="not the dataset's"):
        compare({"m": physode.Pendulum()}, data, system=physode.Pendulum())
    with pytest.raises(PhysodeError, match="state_dim 4"):
        compare({"m": physode.NeuralODE(4)}, data)
    with pytest.raises(PhysodeError, match="empty"):
        compare({}, data)
    with pytest.raises(PhysodeError, match="horizons"):
        compare({"m": data.system}, data, horizons=(1.0, -2.0))


def test_against_the_data_the_recorded_trajectories_are_the_truth(data):
    offset = torch.tensor([0.05, -0.02], dtype=torch.float64)
    report = compare({"biased": Biased(data.system, offset, 0.0)}, data, reference="data")
    assert report.meta["reference"] == "data" and report.meta["horizons"] == [1.0, 2.0]
    assert report.times[-1] == pytest.approx(data.times[0, -1].item())  # the data's own grid, to its end
    recorded = data.test.x_clean
    by_hand = (offset.norm() / recorded.norm(dim=-1)).numpy()
    i = len(report.times) - 1
    assert report.rows["biased"]["median_error"]["2.0"] == pytest.approx(np.median(by_hand[:, i]), rel=1e-6)
    assert report.rows["true system"]["median_error"]["2.0"] < 1e-9  # the simulator reproduces its own data
    half = compare({"biased": Biased(data.system, offset, 0.0)}, data, reference="data", horizons=(0.5, 1.0))
    assert half.times[-1] == pytest.approx(data.t_train)


def test_horizons_beyond_the_data_are_refused_against_the_data(data, tmp_path):
    with pytest.raises(PhysodeError, match=r"beyond the data, which end at t=2 \(2 x t_train\).*reference='system'"):
        compare({"m": data.system}, data, reference="data", horizons=(1, 4))
    assert compare({"m": data.system}, data, horizons=(1, 4)).times[-1] == pytest.approx(4 * data.t_train)
    with pytest.raises(PhysodeError, match="reference"):
        compare({"m": data.system}, data, reference="dataset")
    irregular = TrajectoryDataset.generate(physode.SpringMass(), 20, t_end=2.0, dt=0.1, irregular=True, seed=1)
    scored = compare({"m": irregular.system}, irregular, reference="data")  # each trajectory at its own times
    assert max(scored.rows["m"]["median_error"].values()) < 1e-9 and scored.rows["m"]["valid_time"] == pytest.approx(2.0)
    with pytest.raises(PhysodeError, match="horizons"):
        compare({"m": data.system}, data, horizons=())
    with pytest.raises(PhysodeError, match=r"reach t=10000: 100,001 output times .* more than 100,000; pass smaller"):
        compare({"m": data.system}, data, horizons=(1, 1e4))  # dt = 0.1: one time too many (it would run for long)


def test_horizons_are_read_at_their_own_times_in_order(data):
    """A horizon off the data's spacing is a time of the reference grid itself (it was read at the nearest point
    of a stretched grid), horizons given out of order are sorted, and a horizon shorter than one step works."""
    offset = torch.tensor([0.05, -0.02], dtype=torch.float64)
    model = Biased(data.system, offset, torch.zeros(2, dtype=torch.float64))
    report = compare({"biased": model}, data, horizons=(2.03, 1, 0.05))
    assert report.meta["horizons"] == [0.05, 1.0, 2.03] and report.times[-1] == 2.03 * data.t_train
    assert report.times[:3].tolist() == [0.0, 0.05, 0.1] and np.allclose(np.diff(report.times[2:12]), 0.1)
    assert {0.05, 1.0}.issubset(set(report.times.tolist()))
    truth = simulate(data.system, data.test.x_clean[:, 0], torch.tensor([0.0, data.t_train, 2.03 * data.t_train]))
    for h, i in (("1.0", 1), ("2.03", 2)):
        expected = np.median((offset.norm() / truth[:, i].norm(dim=-1)).numpy())
        assert report.rows["biased"]["median_error"][h] == pytest.approx(expected, rel=1e-7)  # the truth at tolerance
    assert list(report.rows["biased"]["median_error"]) == ["0.05", "1.0", "2.03"]
    assert report.to_markdown().splitlines()[0].count("median err") == 3


def test_data_reference_drives_models_with_the_recorded_controls_and_refuses_horizons_between_its_times():
    controlled = TrajectoryDataset.generate(physode.Pendulum(), 10, t_end=2.0, dt=0.1, seed=4, controls="random")
    driven = compare({"m": controlled.system}, controlled, reference="data")  # the simulator, given the same controls
    assert max(driven.rows["m"]["median_error"].values()) < 1e-9 and driven.rows["m"]["k_step_error"] < 1e-9
    plain = TrajectoryDataset.generate(physode.Pendulum(), 10, t_end=2.0, dt=0.1, seed=4)
    with pytest.raises(PhysodeError, match="takes 0 controls and the data were recorded with 1"):
        compare({"free": physode.build_model("node", plain, hidden=4)}, controlled, reference="data")
    with pytest.raises(PhysodeError, match=r"horizons \[1.03\] fall between the data's times"):
        compare({"m": plain.system}, plain, reference="data", horizons=(1, 1.03))


class _Squared(physode.models.ContinuousModel):
    """dx/dt = x^2: blows up in finite time from any positive state."""

    def __init__(self):
        super().__init__(2, 0, dtype="float64")

    def flow(self, t, z, u):
        return z * z


def test_a_model_that_blows_up_is_reported_as_failed_and_the_others_are_scored(data):
    report = compare({"fine": data.system, "blowup": _Squared()}, data)
    failed = report.rows["blowup"]
    assert "its rollout to t=4 failed" in failed["failed"] and failed["valid_time"] == 0.0
    assert failed["median_error"] == {"1.0": None, "2.0": None, "4.0": None} and "blowup" not in report.trajectories
    assert report.rows["fine"]["median_error"]["4.0"] < 1e-9
    table = report.to_markdown()
    assert "| blowup | " in table and "failed" in table and "blowup: its rollout" in table

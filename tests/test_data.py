"""TrajectoryDataset: generation, grids, noise, controls, splits, and .npz round trips."""

import json
import os
import zipfile

import numpy as np
import pytest
import torch

from physode import FileFormatError, NBody, Pendulum, PhysodeError, SpringMass, TrajectoryDataset, build_model, simulate
from physode.data import FORMAT_VERSION


@pytest.fixture(scope="module")
def pendulum_data():
    return TrajectoryDataset.generate(Pendulum(), 40, t_end=4.0, dt=0.1, seed=3)


@pytest.fixture(scope="module")
def rich_data():
    """Irregular grids, noise and random controls at once."""
    return TrajectoryDataset.generate(
        SpringMass(n_masses=2, damping=0.1), 30, t_end=3.0, dt=0.1, irregular=True, noise_std=0.05,
        controls="random", control_scale=0.5, seed=7,
    )


def test_regular_dataset_is_the_simulation_of_the_sampled_states(pendulum_data):
    data = pendulum_data
    assert data.x.shape == (40, 41, 2) and data.t.shape == (41,) and not data.irregular
    torch.testing.assert_close(data.t, torch.linspace(0, 4, 41, dtype=torch.float64))
    x0 = Pendulum().sample_initial_states(40, seed=3)
    torch.testing.assert_close(data.x[:, 0], x0, rtol=0, atol=0)
    torch.testing.assert_close(data.x_clean, simulate(Pendulum(), x0, data.t), rtol=0, atol=1e-12)
    assert data.t_train == 2.0 and data.train_time_mask.sum(1).eq(21).all()
    assert data.x.dtype == torch.float64 and data.system == Pendulum()


def test_same_seed_same_data_other_seed_other_data(rich_data):
    again = TrajectoryDataset.generate(
        SpringMass(n_masses=2, damping=0.1), 30, t_end=3.0, dt=0.1, irregular=True, noise_std=0.05,
        controls="random", control_scale=0.5, seed=7,
    )
    for name in ("t", "x", "x_clean", "u", "split"):
        assert torch.equal(getattr(again, name), getattr(rich_data, name)), name
    other = TrajectoryDataset.generate(SpringMass(n_masses=2, damping=0.1), 30, t_end=3.0, dt=0.1, irregular=True, seed=8)
    assert not torch.equal(other.t, rich_data.t) and not torch.equal(other.x_clean[:, 0], rich_data.x_clean[:, 0])


def test_irregular_grids_are_per_trajectory_and_integrated_on_their_own_times(rich_data):
    data = rich_data
    assert data.irregular and data.t.shape == (30, 31)
    assert (data.t[:, 0] == 0).all() and (data.t[:, -1] == 3.0).all() and (data.t.diff(dim=1) > 0).all()
    assert not torch.equal(data.t[0], data.t[1])
    one = simulate(data.system, data.x_clean[:2, 0], data.t[:2], data.u[:2])
    torch.testing.assert_close(one, data.x_clean[:2], rtol=0, atol=1e-10)
    mask = data.train_time_mask
    assert torch.equal(mask, data.t <= 1.5) and 0 < mask.sum() < mask.numel()


def test_controls_are_random_bounded_and_drive_the_dynamics(rich_data):
    u = rich_data.u
    assert u.shape == (30, 30, 2) and u.abs().max() <= 0.5 and u.std() > 0.2
    without = simulate(rich_data.system, rich_data.x_clean[:3, 0], rich_data.t[:3])
    assert (without - rich_data.x_clean[:3]).abs().max() > 1e-3


def test_noise_is_relative_and_clean_states_are_kept(rich_data):
    data = rich_data
    scale = data.x_clean.reshape(-1, 4).std(0)
    ratio = (data.x - data.x_clean).reshape(-1, 4).std(0) / scale
    assert torch.allclose(ratio, torch.full((4,), 0.05, dtype=torch.float64), rtol=0.1)
    assert data.meta["noise_std"] == 0.05


def test_the_recorded_dt_is_the_grid_spacing():
    """dt = 0.15 does not divide t_end = 1: the grid has round(1 / 0.15) + 1 = 8 times, 1/7 apart, and says so."""
    data = TrajectoryDataset.generate(Pendulum(), 2, t_end=1.0, dt=0.15, seed=0)
    assert data.n_times == 8 and data.meta["dt"] == pytest.approx(1 / 7, rel=1e-12)
    assert float(data.times.diff(dim=1).max()) == pytest.approx(data.meta["dt"], rel=1e-12)
    assert build_model("resnet", data).dt == pytest.approx(1 / 7, rel=1e-12)  # the step model steps the grid


def test_splits_partition_the_trajectories(pendulum_data):
    data = pendulum_data
    counts = [len(data.part(name)) for name in ("train", "val", "test")]
    assert counts == [32, 4, 4] and len(data.train) == 32
    assert (data.test.split == 2).all()
    def ids(part):
        return {tuple(row.tolist()) for row in part.x[:, 0]}

    assert not ids(data.train) & ids(data.test) and not ids(data.val) & ids(data.train)
    custom = TrajectoryDataset.generate(Pendulum(), 20, 1.0, 0.5, fractions=(0.5, 0.0, 0.5))
    assert [int((custom.split == i).sum()) for i in range(3)] == [10, 0, 10]


@pytest.mark.parametrize("fixture", ["pendulum_data", "rich_data"])
def test_save_load_round_trip_is_exact(fixture, request, tmp_path):
    data = request.getfixturevalue(fixture)
    path = data.save(tmp_path / "sub" / "data.npz")
    back = TrajectoryDataset.load(path)
    for name in ("t", "x", "x_clean", "split"):
        assert torch.equal(getattr(back, name), getattr(data, name)), name
    assert (back.u is None) == (data.u is None) and (back.u is None or torch.equal(back.u, data.u))
    assert back.system == data.system and back.t_train == data.t_train and back.meta == data.meta
    assert [p.name for p in path.parent.iterdir()] == ["data.npz"]  # no temporary file left behind


def test_nbody_dataset_round_trips_its_masses(tmp_path):
    system = NBody(n_bodies=3, masses=(1.0, 2.0, 3.0), softening=0.1)
    data = TrajectoryDataset.generate(system, 4, 1.0, 0.1, seed=1)
    back = TrajectoryDataset.load(data.save(tmp_path / "nbody.npz"))
    assert back.system == system and back.system.params.masses == (1.0, 2.0, 3.0)


def test_saved_files_get_the_usual_permissions(pendulum_data, tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    saved = pendulum_data.save(tmp_path / "data.npz")
    assert saved.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the umask from /proc")
def test_saving_never_changes_the_process_umask(pendulum_data, tmp_path, monkeypatch):
    """Setting the umask to read it would, for that moment, make other threads' new files world-writable."""
    def forbidden(mask):
        raise AssertionError("os.umask was called")

    monkeypatch.setattr(os, "umask", forbidden)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert pendulum_data.save(tmp_path / "data.npz").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(pendulum_data, tmp_path, monkeypatch):
    path = pendulum_data.save(tmp_path / "data.npz")
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(PhysodeError, match="cannot write the dataset .*disk full"):
        pendulum_data.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["data.npz"]


def _write_npz(path, **arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def _metadata(**changes):
    meta = {"format": "physode.TrajectoryDataset", "format_version": FORMAT_VERSION,
            "system": {"name": "pendulum", "params": {}}, "t_train": 0.5, "meta": {}}
    meta.update(changes)
    return np.array(json.dumps(meta))


def _valid_arrays():
    x = np.zeros((2, 3, 2))
    return {"t": np.array([0.0, 0.5, 1.0]), "x": x, "x_clean": x, "split": np.array([0, 2])}


def test_a_hand_made_valid_file_loads(tmp_path):
    path = _write_npz(tmp_path / "ok.npz", metadata=_metadata(), **_valid_arrays())
    assert len(TrajectoryDataset.load(path)) == 2


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "does not exist"),
    (lambda p: (p.write_bytes(b"not a zip at all"), p)[1], "not a readable"),
    (lambda p: _write_npz(p, a=np.zeros(3)), "no metadata"),
    (lambda p: _write_npz(p, metadata=np.array("{oops"), **_valid_arrays()), "unreadable metadata"),
    (lambda p: _write_npz(p, metadata=_metadata(format="other.Thing"), **_valid_arrays()), "not a physode dataset"),
    (lambda p: _write_npz(p, metadata=_metadata(format_version=99), **_valid_arrays()), "version 99"),
    (lambda p: _write_npz(p, metadata=_metadata(), t=np.zeros(3)), "lacks the arrays"),
    (lambda p: _write_npz(p, metadata=_metadata(), **{**_valid_arrays(), "x": np.zeros((2, 3, 4)),
                                                       "x_clean": np.zeros((2, 3, 4))}), "shape"),
    (lambda p: _write_npz(p, metadata=_metadata(system={"name": "pendulum", "params": {"lenght": 2}}), **_valid_arrays()),
     "lenght"),
    (lambda p: _write_npz(p, metadata=_metadata(system={"name": 3}), **_valid_arrays()), "system spec"),
    (lambda p: _write_npz(p, metadata=_metadata(), **{**_valid_arrays(), "t": np.array([0.0, 1.0, 0.5])}), "strictly increasing"),
    (lambda p: _write_npz(p, metadata=_metadata(), **{**_valid_arrays(), "x": np.full((2, 3, 2), np.nan)}), "finite"),
    (lambda p: _write_npz(p, metadata=_metadata(t_train=5.0), **_valid_arrays()), "t_train"),
])
def test_bad_files_are_refused_with_a_clear_error(make, message, tmp_path):
    path = make(tmp_path / "bad.npz")
    with pytest.raises(FileFormatError, match=message):
        TrajectoryDataset.load(path)


def test_truncated_and_pickled_files_are_refused(pendulum_data, tmp_path):
    path = pendulum_data.save(tmp_path / "data.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FileFormatError):
        TrajectoryDataset.load(truncated)
    pickled = tmp_path / "pickled.npz"
    with zipfile.ZipFile(pickled, "w") as archive:  # an object array needs pickle to load
        with archive.open("metadata.npy", "w") as handle:
            np.lib.format.write_array(handle, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="pickle"):
        TrajectoryDataset.load(pickled)


def test_a_npy_array_and_a_crafted_zero_d_control_are_refused_as_files(tmp_path):
    array = tmp_path / "plain.npy"
    np.save(array, np.zeros(3))  # np.load gives an array, not an archive: was a raw TypeError
    with pytest.raises(FileFormatError, match="not a .npz archive"):
        TrajectoryDataset.load(array)
    path = _write_npz(tmp_path / "scalar_u.npz", metadata=_metadata(system=None), **_valid_arrays(), u=np.array(1.0))
    with pytest.raises(FileFormatError, match="inconsistent"):  # was a raw IndexError
        TrajectoryDataset.load(path)


def test_datasets_with_gradients_numpy_numbers_and_numpy_fractions_save_and_load(tmp_path):
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    x = torch.zeros(2, 11, 2, dtype=torch.float64, requires_grad=True)  # e.g. a model's rollout
    data = TrajectoryDataset(t, x, Pendulum().spec(), meta={"seed": np.int64(1), "noise": np.float32(0.5)})
    assert not data.x.requires_grad and data.meta == {"seed": 1, "noise": 0.5}
    assert type(data.meta["seed"]) is int
    assert TrajectoryDataset.load(data.save(tmp_path / "a.npz")).meta == {"seed": 1, "noise": 0.5}
    shares = np.array([0.5, 0.25, 0.25], dtype=np.float32)
    generated = TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.1, fractions=shares)
    assert TrajectoryDataset.load(generated.save(tmp_path / "b.npz")).meta["fractions"] == [0.5, 0.25, 0.25]


def test_times_that_require_grad_a_0_d_t_train_and_uint8_indices_are_taken(tmp_path):
    """t was not detached (fit, save and fingerprint failed); t_train=t[5] was refused; uint8 indices acted as a mask."""
    data = TrajectoryDataset.generate(Pendulum(), 6, 1.0, 0.1, seed=0)
    t = data.t.clone().requires_grad_(True)
    again = TrajectoryDataset(t, data.x, data.system_spec, t_train=t[5], split=data.split.numpy())
    assert again.t_train == 0.5 and again.fingerprint() != "" and not again.t.requires_grad
    assert TrajectoryDataset.load(again.save(tmp_path / "t.npz")).t_train == 0.5
    assert TrajectoryDataset(data.t, data.x, data.system_spec, t_train=np.array(0.5)).t_train == 0.5
    picked = data.subset(np.array([0, 2], dtype=np.uint8))
    torch.testing.assert_close(picked.x, data.x[[0, 2]], rtol=0, atol=0)


def test_the_metadata_records_the_solver_and_the_control_scale():
    meta = TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.5, controls="random", control_scale=3.0).meta
    assert (meta["method"], meta["rtol"], meta["atol"], meta["control_scale"]) == ("dopri8", 1e-14, 1e-14, 3.0)
    meta = TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.5, method="rk4", step_size=0.01).meta
    assert (meta["method"], meta["step_size"]) == ("rk4", 0.01) and "control_scale" not in meta


def test_editing_the_observations_leaves_the_clean_states_alone():
    data = TrajectoryDataset.generate(Pendulum(), 4, 1.0, 0.5, seed=0)  # no noise: x equals x_clean
    clean = data.x_clean.clone()
    data.x[:, :, 0] += 1.0
    torch.testing.assert_close(data.x_clean, clean, rtol=0, atol=0)
    recorded = TrajectoryDataset(data.t, data.x, None)  # no clean states given: a copy of x
    recorded.x.zero_()
    assert recorded.x_clean.abs().sum() > 0


def test_subsets_by_mask_and_by_indices_agree(pendulum_data):
    mask = pendulum_data.split == 1
    by_mask, by_index = pendulum_data.subset(mask), pendulum_data.subset(mask.nonzero().squeeze(1).tolist())
    torch.testing.assert_close(by_mask.x, by_index.x, rtol=0, atol=0)
    torch.testing.assert_close(pendulum_data.subset([-1]).x, pendulum_data.x[-1:], rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, word", [
    ({"n_trajectories": 0}, "n_trajectories"),
    ({"t_end": -1.0}, "t_end"),
    ({"dt": 0.0}, "dt"),
    ({"dt": 5.0}, "dt"),
    ({"noise_std": -0.1}, "noise_std"),
    ({"t_train": 9.0}, "t_train"),
    ({"controls": "sinusoid"}, "controls"),
    ({"fractions": (0.5, 0.5, 0.5)}, "fractions"),
    ({"n_trajectories": 10**12}, "GiB"),
])
def test_bad_generate_arguments(kwargs, word):
    args = {"system": Pendulum(), "n_trajectories": 4, "t_end": 2.0, "dt": 0.5, **kwargs}
    with pytest.raises(PhysodeError, match=word):
        TrajectoryDataset.generate(**args)


def test_the_time_scale_of_a_harmonic_oscillator_is_one_over_root_two_omega():
    """x = (cos wt, -w sin wt) moves on an ellipse whose standardised form is a circle of radius sqrt(2), at
    speed sqrt(2) w: one standard deviation takes 1 / (sqrt(2) w); over whole periods, on a fine grid."""
    w = 3.0
    t = torch.linspace(0.0, 10 * 2 * np.pi / w, 4001, dtype=torch.float64)
    x = torch.stack([torch.cos(w * t), -w * torch.sin(w * t)], dim=-1).expand(4, -1, -1)
    data = TrajectoryDataset.from_arrays(t, x, t_train=float(t[-1]))
    assert data.spacing() == pytest.approx(float(t[1]), rel=1e-9)
    assert data.spacing("mean") == pytest.approx(float(t[1]), rel=1e-9)
    with pytest.raises(PhysodeError, match="statistic"):
        data.spacing("max")
    assert data.time_scale() == pytest.approx(1 / (np.sqrt(2) * w), rel=1e-3)
    slower = TrajectoryDataset.from_arrays(3 * t, x, t_train=3 * float(t[-1]))  # the same motion, three times slower
    assert slower.time_scale() == pytest.approx(3 * data.time_scale(), rel=1e-9)
    with pytest.raises(PhysodeError, match="two observations before t_train"):
        TrajectoryDataset.from_arrays(t, x, t_train=float(t[1]) / 2).time_scale()

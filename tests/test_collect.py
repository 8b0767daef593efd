"""physode.collect / `physode collect`: recorded episodes line up with the true dynamics, datasets of a
foreign env round-trip and train, bad input is refused."""

import gymnasium as gym
from gymnasium.envs.classic_control.pendulum import PendulumEnv
import numpy as np
import pytest
import torch

import physode
import physode.envs  # noqa: F401  (registers the ids)
from physode import PhysodeError, PhysodeWarning, TrajectoryDataset, collect, simulate
from physode.cli import main
from physode.train import TrainConfig, build_model, fit


def test_recorded_states_and_actions_line_up_with_the_true_dynamics():
    """Replaying the recorded actions (held over each step) through physode.simulate gives the recorded states."""
    env = gym.make("physode/SpringMass-v0", n_masses=2, integrator="dopri5", rtol=1e-11, atol=1e-11)
    data = collect(env, 3, "random", seed=1, max_steps=30)
    assert data.x.shape == (3, 31, 4) and data.u.shape == (3, 30, 2)
    assert data.system_spec is None and data.name == "physode/SpringMass-v0" and data.meta["dt"] == 0.1
    torch.testing.assert_close(data.t, torch.arange(31, dtype=torch.float64) * 0.1)
    replay = simulate(physode.SpringMass(n_masses=2), data.x[:, 0], data.t, u=data.u)
    torch.testing.assert_close(data.x, replay, atol=1e-5, rtol=0)  # observations are float32
    assert float(data.u.abs().max()) <= 1.0 and float(data.u.std()) > 0.3  # uniform on [-1, 1]
    zero = collect(gym.make("physode/SpringMass-v0", n_masses=2), 2, "zero", seed=1, max_steps=5)
    assert float(zero.u.abs().max()) == 0.0


def test_pendulum_v1_data_round_trips_and_trains_a_controlled_model(tmp_path):
    data = collect("Pendulum-v1", 10, seed=3)
    again = collect("Pendulum-v1", 10, seed=3)
    torch.testing.assert_close(data.x, again.x)
    assert data.x.shape == (10, 201, 3) and data.u.shape == (10, 200, 1) and float(data.u.abs().max()) <= 2.0
    np.testing.assert_allclose((data.x[..., :2] ** 2).sum(-1).numpy(), 1.0, atol=1e-6)  # (cos, sin, theta_dot)
    loaded = TrajectoryDataset.load(data.save(tmp_path / "p1.npz"))
    assert loaded.system_spec is None and loaded.name == "Pendulum-v1" and "Pendulum-v1" in loaded.summary()
    torch.testing.assert_close(loaded.u, data.u)
    with pytest.raises(PhysodeError, match="recorded from Pendulum-v1"):
        _ = loaded.system
    torch.manual_seed(0)
    model = build_model("node", loaded, hidden=16)
    assert model.control_dim == 1
    result = fit(model, loaded, TrainConfig(steps=20, val_every=10, seed=0), out_dir=tmp_path / "run")
    assert np.isfinite(result.best_val_error)
    assert physode.load_model(tmp_path / "run" / "model.pt").system_spec is None
    with pytest.raises(PhysodeError, match="recorded from Pendulum-v1"):
        physode.compare({"node": model}, loaded)


def test_bad_collections_are_refused(tmp_path, capsys):
    with pytest.raises(PhysodeError, match="Discrete"):
        collect("CartPole-v1", 2)
    with pytest.raises(PhysodeError, match="Nope-v3"):
        collect("Nope-v3", 2)
    with pytest.raises(PhysodeError, match="policy"):
        collect("Pendulum-v1", 2, "greedy")
    with pytest.raises(PhysodeError, match="episodes"):
        collect("Pendulum-v1", 0)
    with pytest.raises(PhysodeError, match="max_steps"):
        collect(PendulumEnv(), 2)  # a bare env: no spec, so no episode length
    with pytest.raises(PhysodeError, match="GiB"):
        collect("Pendulum-v1", 10**12)
    with pytest.warns(PhysodeWarning, match="dt=0.5 differs from the 0.05 s"):  # relabels the time axis silently
        assert float(collect("Pendulum-v1", 2, max_steps=4, dt=0.5).t[1]) == 0.5
    with pytest.raises(PhysodeError, match="fractions"):
        collect("Pendulum-v1", 2, max_steps=4, fractions=(1.0, 1.0, 1.0))
    with pytest.raises(PhysodeError, match="ended before"):  # NBody episodes end when a body escapes
        collect(gym.make("physode/NBody-v0", escape_radius=0.5), 1, max_steps=400)
    out = tmp_path / "d.npz"
    assert main(["collect", "--env", "Pendulum-v1", "--episodes", "3", "-o", str(out), "--quiet"]) == 0
    assert TrajectoryDataset.load(out).x.shape == (3, 201, 3)
    before = out.read_bytes()
    assert main(["collect", "--env", "CartPole-v1", "--episodes", "3", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Discrete" in err[0] and out.read_bytes() == before


def test_episodes_longer_than_the_envs_time_limit():
    """Given an id, the env is made with the asked length; a given env with a shorter limit is refused up front
    (it ran and discarded 10 x episodes + 1 truncated episodes before saying so)."""
    data = collect("physode/SpringMass-v0", 2, max_steps=201)
    assert data.x.shape == (2, 202, 2) and data.meta["discarded"] == 0
    with pytest.raises(PhysodeError, match=r"after 200 steps \(its max_episode_steps\).*max_steps <= 200"):
        collect(gym.make("physode/SpringMass-v0"), 2, max_steps=201)

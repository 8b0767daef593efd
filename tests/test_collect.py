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
from physode.checkpoint import save_checkpoint
from physode.cli import main
from physode.models import DynamicsModel
from physode.train import TrainConfig, build_model, fit


def test_recorded_states_and_actions_line_up_with_the_true_dynamics():
    """Replaying the recorded actions (held over each step) through physode.simulate gives the recorded states."""
    env = gym.make("physode/SpringMass-v0", n_masses=2, integrator="dopri5", rtol=1e-11, atol=1e-11)
    data = collect(env, 3, "random", seed=1, max_steps=30)
    assert data.x.shape == (3, 31, 4) and data.u.shape == (3, 30, 2)
    assert data.system_spec is None and data.name == "physode/SpringMass-v0" and data.meta["dt"] == 0.1
    torch.testing.assert_close(data.t, torch.arange(31, dtype=torch.float64) * 0.1)
    replay = simulate(physode.SpringMass(n_masses=2), data.x[:, 0], data.t, u=data.u)
    torch.testing.assert_close(data.x, replay, atol=1e-8, rtol=0)  # the env's float64 state, not its float32 observation
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


def test_a_physode_pendulum_is_recorded_with_its_angle_unwrapped():
    """The observation wraps the angle into [-pi, pi); the recorded state does not, so a swing over the top is no
    jump of 2 pi, and replaying the actions through physode.simulate gives the recorded states."""
    data = collect("physode/Pendulum-v0", 12, seed=0, max_steps=100,
                   env_kwargs={"integrator": "dopri5", "rtol": 1e-11, "atol": 1e-11})
    theta = data.x[..., 0]
    assert float(theta.abs().max()) > 4.0  # some swings go over the top (and would wrap)
    assert float(theta.diff(dim=1).abs().max()) < 1.0  # and not one step jumps
    replay = simulate(physode.Pendulum(), data.x[:, 0], data.t, u=data.u)
    torch.testing.assert_close(data.x, replay, atol=1e-8, rtol=0)
    with pytest.raises(PhysodeError, match="env_kwargs"):
        collect(gym.make("physode/Pendulum-v0"), 2, env_kwargs={"dt": 0.1})


class _NanBeyondOne(DynamicsModel):
    """A learned pendulum whose step moves theta by 0.3 and is NaN from |theta| > 1 (a model that diverges)."""

    def __init__(self):
        super().__init__(2, 1)
        self.system_spec = physode.Pendulum().spec()

    def rollout(self, x0, t, u=None):
        after = x0 + torch.tensor([0.3, 0.0], dtype=x0.dtype)
        after[x0[:, 0].abs() > 1.0] = float("nan")
        return torch.stack([x0, after], 1)


def test_an_episode_whose_step_diverges_is_discarded_even_on_its_last_step(tmp_path, capsys):
    """The env keeps the last state of a step it could not compute: recorded, that would be a step that never
    happened. Every kept episode is the model's own steps; from the command line too (--checkpoint)."""
    env = gym.make("physode/Learned-v0", checkpoint=_NanBeyondOne(), max_episode_steps=4)
    data = collect(env, 6, "zero", seed=0, max_steps=4)
    assert data.meta["discarded"] > 0
    torch.testing.assert_close(data.x.diff(dim=1)[..., 0], torch.full((6, 4), 0.3, dtype=torch.float64))
    model = physode.NeuralODE(2, control_dim=1, solver="rk4", step_size=0.05)
    path = save_checkpoint(tmp_path / "model.pt", model, system_spec=physode.Pendulum().spec())
    out = tmp_path / "learned.npz"
    assert main(["collect", "--env", "physode/Learned-v0", "--checkpoint", str(path), "--episodes", "2",
                 "--max-steps", "5", "-o", str(out), "--quiet"]) == 0
    recorded = TrajectoryDataset.load(out)  # a fresh NeuralODE is the zero field: nothing moves
    torch.testing.assert_close(recorded.x, recorded.x[:, :1].expand(2, 6, 2))
    assert main(["collect", "--env", "physode/Pendulum-v0", "--checkpoint", str(path), "--episodes", "2",
                 "-o", str(out), "--quiet"]) == 2  # was a TypeError's traceback
    assert "env_kwargs" in capsys.readouterr().err.strip()
    assert TrajectoryDataset.load(out).x.shape == (2, 6, 2)  # the file written before is kept


def test_a_wrapper_that_changes_observations_is_recorded_as_it_observes():
    env = gym.wrappers.TransformObservation(gym.make("physode/Pendulum-v0"), lambda obs: 2 * obs,
                                            gym.spaces.Box(-10, 10, (2,), np.float32))
    data = collect(env, 2, "zero", seed=0, max_steps=5)
    assert data.x.shape == (2, 6, 2) and float(data.x[:, :, 0].abs().max()) > 0
    plain = collect(gym.make("physode/Pendulum-v0"), 2, "zero", seed=0, max_steps=5)
    torch.testing.assert_close(data.x, 2 * plain.x, atol=1e-5, rtol=1e-6)  # float32 observations, doubled

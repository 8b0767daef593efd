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
    assert not data.ragged and data.meta["ended"] == ["max_steps"] * 10 and data.t_train == float(data.t[-1]) / 2
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
    report = physode.compare({"node": model}, loaded)  # no true system: scored against the recorded test episodes
    assert report.meta["reference"] == "data" and report.rows["node"]["field_error_test"] is None
    assert all(np.isfinite(v) for v in report.rows["node"]["median_error"].values())


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
    with pytest.raises(PhysodeError, match="policy must be one of 'random', 'zero' or a callable"):
        collect("Pendulum-v1", 2, 3)
    out = tmp_path / "d.npz"
    assert main(["collect", "--env", "Pendulum-v1", "--episodes", "3", "-o", str(out), "--quiet"]) == 0
    assert TrajectoryDataset.load(out).x.shape == (3, 201, 3)
    before = out.read_bytes()
    assert main(["collect", "--env", "CartPole-v1", "--episodes", "3", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Discrete" in err[0] and out.read_bytes() == before


def test_episodes_longer_than_the_envs_time_limit():
    """Given an id, the env is made with the asked length; a given env with a shorter limit truncates every episode
    there: they are kept, truncated, with a warning that says how to get longer ones."""
    data = collect("physode/SpringMass-v0", 2, max_steps=201)
    assert data.x.shape == (2, 202, 2) and data.meta["discarded"] == 0 and data.meta["ended"] == ["max_steps"] * 2
    with pytest.warns(PhysodeWarning, match=r"after 200 steps \(its max_episode_steps\).*pass the env id"):
        cut = collect(gym.make("physode/SpringMass-v0"), 2, max_steps=201)
    assert cut.x.shape == (2, 201, 2) and not cut.ragged and cut.meta["ended"] == ["truncated"] * 2
    assert cut.t_train == pytest.approx(10.0)  # half the (truncated) episode: 100 steps of 0.1 s


def test_an_nbody_episode_that_ends_when_a_body_escapes_is_kept():
    """NBody-v0 terminates when a body is farther than escape_radius from the centre of mass (all masses 1): the
    episode is kept (it was refused, "ended before"), and it ends at the first state where a body is out."""
    data = collect(gym.make("physode/NBody-v0", escape_radius=1.3), 3, max_steps=400)
    assert data.meta["ended"] == ["terminated"] * 3 and data.meta["discarded"] == 0 and data.ragged
    for i in range(3):
        _, x, u = data.trajectory(i)
        assert 2 <= len(x) < 401 and u.shape == (len(x) - 1, 6)
        bodies = x[:, :6].reshape(len(x), 3, 2)
        radius = (bodies - bodies.mean(1, keepdim=True)).norm(dim=-1).max(1).values  # (L,)
        assert float(radius[-1]) > 1.3 and bool((radius[:-1] <= 1.3).all())


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


class _EndsEarly(gym.Wrapper):
    """Pendulum-v1 whose episodes end early: terminated when the pendulum spins faster than ``speed`` (or, the first
    episode, on its very first step), truncated after a number of steps drawn per episode (from the reset's seed).
    It logs every episode's observations and flags, as an agent sees them."""

    def __init__(self, env, speed=4.5, longest=60):
        super().__init__(env)
        self.speed, self.longest, self.log, self._rng = speed, longest, [], np.random.default_rng(0)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._cut = int(self._rng.integers(1, self.longest))
        self.log.append({"obs": [obs.copy()], "terminated": False, "truncated": False})
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        episode = self.log[-1]
        episode["obs"].append(obs.copy())
        steps = len(episode["obs"]) - 1
        episode["terminated"] = terminated = bool(terminated or abs(obs[2]) > self.speed or (len(self.log) == 1 and steps == 1))
        episode["truncated"] = truncated = bool(truncated or steps >= self._cut)
        return obs, reward, terminated, truncated, info


def test_episodes_that_end_early_are_kept_with_their_lengths_and_reasons(tmp_path):
    """Every episode is kept, as long as it ran (the first one, terminated on its first step, is a trajectory of 2
    observations), with the reason it ended; the states are the observations, step for step; the ragged dataset
    round-trips through a file, trains and is scored against itself."""
    env = _EndsEarly(gym.make("Pendulum-v1"))
    data = collect(env, 14, seed=2, max_steps=40)
    assert len(env.log) == 14 and data.meta["discarded"] == 0 and data.meta["episodes"] == 14
    expected = ["terminated" if e["terminated"] else "truncated" if len(e["obs"]) < 41 else "max_steps" for e in env.log]
    assert data.meta["ended"] == expected and set(expected) == {"terminated", "truncated", "max_steps"}
    assert data.lengths.tolist() == [len(e["obs"]) for e in env.log] and int(data.lengths[0]) == 2
    assert data.ragged and data.n_times == 41 and data.meta["max_steps"] == 40
    for i, episode in enumerate(env.log):
        t, x, u = data.trajectory(i)
        np.testing.assert_array_equal(x.numpy(), np.array(episode["obs"], dtype=np.float64))  # exactly, step for step
        torch.testing.assert_close(t, torch.arange(len(x), dtype=torch.float64) * 0.05)
        assert u.shape == (len(x) - 1, 1) and float(u.abs().max()) <= 2.0
        assert bool(torch.isnan(data.x[i, len(x):]).all())  # nothing past its end
    steps = np.sort(data.lengths.numpy() - 1)
    assert data.t_train == pytest.approx(0.05 * max(1, np.floor(np.median(steps) / 2 + 0.5)))  # half the median, on the grid
    loaded = TrajectoryDataset.load(data.save(tmp_path / "ragged.npz"))
    assert loaded.lengths.tolist() == data.lengths.tolist() and loaded.meta["ended"] == expected
    torch.manual_seed(0)
    model = build_model("node", loaded, hidden=8)
    result = fit(model, loaded, TrainConfig(steps=5, val_every=5, seed=0))
    assert np.isfinite(result.best_val_error)
    report = physode.compare({"node": model}, loaded)  # against the data, driven by the recorded controls
    row = report.rows["node"]
    assert report.meta["reference"] == "data"
    assert all(np.isfinite(v) for v in [*row["median_error"].values(), row["one_step_error"]])


def test_a_physode_pendulum_that_swings_away_is_recorded_as_simulated():
    """physode/Pendulum-v0 under a wrapper that terminates once theta is more than 1 rad from its start (the
    observation space is the env's own, so the env's float64 state is recorded): every kept episode, short or full,
    ends where the wrapper said and replays through physode.simulate."""
    env = gym.make("physode/Pendulum-v0", integrator="dopri5", rtol=1e-11, atol=1e-11)

    class SwingsAway(gym.Wrapper):
        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            self.start = self.env.unwrapped.state[0]
            return obs, info

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            away = abs(self.env.unwrapped.state[0] - self.start) > 1.0
            return obs, reward, terminated or away, truncated, info

    data = collect(SwingsAway(env), 8, seed=1, max_steps=40)
    assert data.ragged and {"terminated", "max_steps"} <= set(data.meta["ended"]) and len(data) == 8
    for i, ended in enumerate(data.meta["ended"]):
        t, x, u = data.trajectory(i)
        away = (x[:, 0] - x[0, 0]).abs() > 1.0
        assert not bool(away[:-1].any()) and bool(away[-1]) == (ended == "terminated")
        assert len(x) == 41 if ended == "max_steps" else len(x) < 41
        replay = simulate(physode.Pendulum(), x[:1], t, u=u[None])[0]
        torch.testing.assert_close(x, replay, atol=1e-8, rtol=0)


def test_inverted_pendulum_v5_episodes_of_different_lengths_train_and_are_scored():
    """MuJoCo's InvertedPendulum-v5 terminates when the pole falls (|angle| > 0.2); under a random policy that
    takes a few to some tens of steps. Every episode is kept; replaying the recorded actions reproduces them."""
    pytest.importorskip("mujoco")
    data = collect("InvertedPendulum-v5", 20, seed=0, max_steps=100)
    lengths = data.lengths.numpy()
    assert len(data) == 20 and data.meta["discarded"] == 0 and data.meta["dt"] == pytest.approx(0.04)
    assert len(set(lengths.tolist())) > 3 and lengths.min() < 10  # different lengths, the short ones kept
    assert set(data.meta["ended"]) <= {"terminated", "max_steps"} and "terminated" in data.meta["ended"]
    for i, ended in enumerate(data.meta["ended"]):  # the pole fell at the last observation, not before
        _, x, _ = data.trajectory(i)
        angle = x[:, 1].abs()
        assert bool((angle[:-1] <= 0.2).all()) and (float(angle[-1]) > 0.2) == (ended == "terminated")
    env = gym.make("InvertedPendulum-v5")
    obs, _ = env.reset(seed=0)  # the first episode, again: the recorded actions are the ones the env was given
    _, x, u = data.trajectory(0)
    replay = [obs] + [env.step(action.numpy().astype(np.float32))[0] for action in u]
    np.testing.assert_allclose(np.array(replay), x.numpy(), rtol=0, atol=1e-12)
    torch.manual_seed(0)
    model = build_model("node", data, hidden=8)
    assert model.control_dim == 1
    assert np.isfinite(fit(model, data, TrainConfig(steps=5, val_every=5, seed=0)).best_val_error)
    row = physode.compare({"node": model}, data).rows["node"]
    assert all(np.isfinite(v) for v in [*row["median_error"].values(), *row["nmse"].values(), row["one_step_error"]])


def test_a_callable_policy_is_seeded_recorded_and_clipped():
    """policy(observation, rng): it sees each observation the env returns, and one generator made from the seed;
    its actions are recorded (clipped into the action space, as the env is given them) and its name is kept."""
    seen = []

    def swing(observation, rng):
        assert isinstance(observation, np.ndarray) and isinstance(rng, np.random.Generator)
        seen.append((observation.copy(), rng))
        return 1.5 * np.sign(observation[2:3]) + rng.normal(0.0, 1.0, 1)  # pump energy, noisily; beyond 2 sometimes

    data = collect("Pendulum-v1", 3, swing, seed=4, max_steps=20)
    assert data.meta["policy"] == data.meta["controls"] == f"callable:{swing.__qualname__}"
    assert len(seen) == 60 and len({id(rng) for _, rng in seen}) == 1  # one generator for the whole collection
    observed = np.array([obs for obs, _ in seen]).reshape(3, 20, 3)
    np.testing.assert_allclose(observed, data.x[:, :-1].numpy(), rtol=0, atol=1e-7)  # the float32 observations
    rng = np.random.default_rng([4, 5])  # the generator collect makes from the seed, drawn in the same order
    expected = [np.clip(1.5 * np.sign(obs[2:3]) + rng.normal(0.0, 1.0, 1), -2.0, 2.0) for obs, _ in seen]
    np.testing.assert_allclose(data.u.reshape(60, 1).numpy(), np.array(expected), rtol=0, atol=1e-6)  # float32 actions
    assert float(data.u.abs().max()) == 2.0  # clipped
    again = collect("Pendulum-v1", 3, swing, seed=4, max_steps=20)
    torch.testing.assert_close(again.x, data.x, rtol=0, atol=0)
    torch.testing.assert_close(again.u, data.u, rtol=0, atol=0)
    other = collect("Pendulum-v1", 3, swing, seed=5, max_steps=20)
    assert not torch.equal(other.u, data.u)
    with pytest.raises(PhysodeError, match=r"shape \(2,\).*takes shape \(1,\)"):
        collect("Pendulum-v1", 1, lambda obs, rng: np.zeros(2), max_steps=3)
    with pytest.raises(PhysodeError, match="finite"):
        collect("Pendulum-v1", 1, lambda obs, rng: np.array([np.nan]), max_steps=3)


class _AlwaysNan(DynamicsModel):
    """A learned pendulum that cannot compute any step."""

    def __init__(self):
        super().__init__(2, 1)
        self.system_spec = physode.Pendulum().spec()

    def rollout(self, x0, t, u=None):
        return torch.stack([x0, torch.full_like(x0, float("nan"))], 1)


def test_an_env_whose_every_episode_diverges_is_refused_once():
    env = gym.make("physode/Learned-v0", checkpoint=_AlwaysNan(), max_episode_steps=5)
    with pytest.raises(PhysodeError, match=r"21 episodes had a step the env could not compute.*0 kept of the 2") as info:
        collect(env, 2, seed=0, max_steps=5)
    assert "\n" not in str(info.value)

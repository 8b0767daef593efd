"""Gymnasium envs: the API checker, the physics against independent references, Pendulum-v1 parity,
vector envs against single envs, the learned env against its model and the truth, and bad input."""

import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import physode
import physode.envs  # noqa: F401  (registers the ids)
from physode import PhysodeError, TrajectoryDataset, simulate
from physode.envs import PENDULUM_V1, LearnedDynamicsEnv, PendulumEnv, SpringMassEnv
from physode.models import MODELS, ContinuousModel, DynamicsModel
from physode.train import TrainConfig, build_model, fit

TRUE_IDS = ["physode/Pendulum-v0", "physode/SpringMass-v0", "physode/NBody-v0"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small NeuralODE trained briefly on controlled pendulum data."""
    data = TrajectoryDataset.generate(physode.Pendulum(), 24, t_end=2.0, dt=0.05, controls="random", seed=0)
    torch.manual_seed(0)
    model = build_model("node", data, hidden=16)
    out = tmp_path_factory.mktemp("learned")
    fit(model, data, TrainConfig(steps=40, val_every=20, seed=0), out_dir=out)
    return out / "model.pt"


def _check(env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gymnasium's advice on unbounded and asymmetric boxes
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", TRUE_IDS)
def test_true_envs_pass_the_gymnasium_checker_and_render(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    _check(env)
    assert env.spec.max_episode_steps in (200, 400)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (400, 400, 3) and frame.std() > 0


def test_learned_env_passes_the_checker(checkpoint):
    _check(gym.make("physode/Learned-v0", checkpoint=str(checkpoint), reference=True, render_mode="rgb_array"))


def test_a_pendulum_step_is_the_true_flow_over_dt():
    """RK4 steps against physode's dopri8 at 1e-14 (itself checked against closed forms): 4th-order convergence."""
    start, dt = np.array([2.0, -1.0]), torch.tensor([0.0, 0.05], dtype=torch.float64)
    actions = [np.array([0.5 * np.sin(k)], dtype=np.float32) for k in range(40)]
    x = torch.tensor(start)[None]
    for action in actions:
        x = simulate(physode.Pendulum(), x, dt, u=torch.tensor(action, dtype=torch.float64)[None])[:, 1]
    errors = []
    for step_size in (None, 0.0125):  # the default is one RK4 step per env step
        env = PendulumEnv(dt=0.05, step_size=step_size)
        env.reset(options={"state": start})
        for action in actions:
            obs, *_ = env.step(action)
        errors.append(np.abs(env._state[0].numpy() - x[0].numpy()).max())
    assert errors[0] < 1e-4 and errors[1] < errors[0] / 100  # (1/4)^4 = 1/256
    wrapped = (x[0, 0] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(obs, [wrapped, x[0, 1]], atol=1e-4)


def test_the_pendulum_wraps_its_angle_over_many_turns():
    """Observed angle and reward against Python's own float remainder, from -40 to 40 turns and on the seams."""
    theta = np.concatenate([np.linspace(-250.0, 250.0, 2001), np.pi * np.arange(-9, 10), [-np.pi - 1e-12, np.pi - 1e-12]])
    omega = np.linspace(-3.0, 3.0, theta.size)
    env = PendulumEnv(integrator="semi_implicit_euler")
    x, u = torch.tensor(np.stack([theta, omega], 1)), torch.full((theta.size, 1), 0.5, dtype=torch.float64)
    observed, reward = env.observe(x)[:, 0], env.reward(x, u, x).numpy()
    wrapped = np.array([(a + math.pi) % (2 * math.pi) - math.pi for a in theta])  # into [-pi, pi)
    from_top = np.array([a % (2 * math.pi) - math.pi for a in theta])
    assert ((observed >= -np.float32(np.pi)) & (observed <= np.float32(np.pi))).all()
    seam = np.abs(np.abs(wrapped) - np.pi) < 1e-9  # pi and -pi are the same angle: compare them as angles
    np.testing.assert_allclose(observed[~seam], wrapped[~seam], atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.abs(observed[seam]), np.pi, atol=1e-6)
    np.testing.assert_allclose(reward, -(from_top**2 + 0.1 * omega**2 + 0.001 * 0.25), atol=1e-10, rtol=0)


def test_spring_reward_and_energy_without_action():
    env = SpringMassEnv(dt=0.1, integrator="dopri5", n_masses=2)
    obs, _ = env.reset(seed=3)
    energy = env.system.energy(torch.tensor(obs, dtype=torch.float64))
    for _ in range(50):
        before = obs
        obs, reward, *_ = env.step(np.zeros(2, dtype=np.float32))
        assert reward == pytest.approx(-((before[:2] ** 2).sum() + 0.1 * (before[2:] ** 2).sum()), rel=1e-5)
    assert env.system.energy(torch.tensor(obs, dtype=torch.float64)) == pytest.approx(energy.item(), rel=1e-5)


def test_the_pendulum_v1_configuration_matches_gymnasium_step_for_step():
    """From the same state, every step agrees to 1e-7 (Pendulum-v1 adds its torque term in float32, about
    1e-8 per step); left to run on their own for 50 steps, the two stay within 1e-5."""
    theirs = gym.make("Pendulum-v1").unwrapped
    ours = gym.make("physode/Pendulum-v0", **PENDULUM_V1).unwrapped
    rng = np.random.default_rng(0)
    clipped = 0
    for episode in range(3):
        theirs.reset(seed=episode)
        theta, omega = theirs.state
        ours.reset(options={"state": [theta + np.pi, omega]})  # Pendulum-v1 measures theta from the top
        for k in range(200):
            if k >= 50:  # from here on, restart ours from their state before each step
                ours.reset(options={"state": [theirs.state[0] + np.pi, theirs.state[1]]})
            action = rng.uniform(-3, 3, 1).astype(np.float32)  # beyond the bounds too: both clip
            obs_t, reward_t, *_ = theirs.step(action)
            obs_o, reward_o, *_ = ours.step(action)
            tol = 1e-5 if k < 50 else 1e-7
            np.testing.assert_allclose(ours._state[0].numpy() - [np.pi, 0.0], theirs.state, atol=tol, rtol=0)
            th = obs_o[0] - np.pi
            np.testing.assert_allclose([np.cos(th), np.sin(th), obs_o[1]], obs_t, atol=1e-5)
            assert reward_o == pytest.approx(reward_t, abs=tol)
            clipped += abs(theirs.state[1]) == 8.0
    assert clipped > 0  # the speed limit was hit, and matched
    assert ours.observation_space.high[1] == 8.0 and ours.action_space.high[0] == 2.0


@pytest.mark.parametrize("env_id", ["physode/Pendulum-v0", "physode/NBody-v0"])
def test_a_vector_env_matches_single_envs_step_for_step_across_autoresets(env_id):
    n, steps = 3, 5
    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", max_episode_steps=steps)
    sync = gym.vector.SyncVectorEnv([lambda: gym.make(env_id, max_episode_steps=steps) for _ in range(n)])
    obs_v, _ = vec.reset(seed=7)
    obs_s, _ = sync.reset(seed=7)
    np.testing.assert_allclose(obs_v, obs_s, atol=1e-6)
    rng = np.random.default_rng(1)
    resets = 0
    for _ in range(2 * steps + 3):
        actions = rng.uniform(-1, 1, vec.action_space.shape).astype(np.float32)
        out_v, out_s = vec.step(actions), sync.step(actions)
        for a, b in zip(out_v[:4], out_s[:4], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
        resets += int(out_v[3].sum())
    assert resets == 2 * n  # both episode ends happened and were reset the same way


def test_learned_env_steps_the_model_and_reports_its_drift(checkpoint):
    env = LearnedDynamicsEnv(checkpoint, reference=True, integrator="dopri5", rtol=1e-10, atol=1e-10)
    model = physode.load_model(checkpoint)
    obs, info = env.reset(seed=0)
    assert info["prediction_error"] == 0 and np.array_equal(info["true_state"], env._state[0].numpy())
    x_hat = x = torch.tensor(env._state[0].numpy())[None]
    dt = torch.tensor([0.0, env.dt], dtype=torch.float64)
    errors = []
    for k in range(20):
        action = np.array([np.cos(k)], dtype=np.float32)
        u = torch.tensor(action, dtype=torch.float64)[None]
        obs, _, _, _, info = env.step(action)
        with torch.no_grad():  # as the env steps it (a float32 model's tanh takes its sigmoid form then)
            x_hat = model.rollout(x_hat, dt, u)[:, 1].double()
        x = simulate(env.system, x, dt, u=u)[:, 1]
        np.testing.assert_allclose(env._state[0].numpy(), x_hat[0].numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(info["true_state"], x[0].numpy(), atol=1e-8)
        expected = ((x_hat - x).norm() / x.norm()).item()
        assert info["prediction_error"] == pytest.approx(expected, rel=1e-4, abs=1e-7)
        errors.append(info["prediction_error"])
    assert errors[-1] > 0  # a 40-step model is not the truth
    vec = gym.make_vec("physode/Learned-v0", num_envs=4, vectorization_mode="vector_entry_point",
                       checkpoint=str(checkpoint), reference=True)
    vec.reset(seed=0)
    _, _, _, _, info = vec.step(np.zeros((4, 1), dtype=np.float32))
    assert info["prediction_error"].shape == (4,) and info["true_state"].shape == (4, 2)


@pytest.mark.parametrize("kind", [name for name in MODELS if name not in ("interaction", "sindy")])  # the MLP models
def test_every_kind_of_model_steps_as_a_learned_env(kind):
    """The learned env steps without recording gradients; a Hamiltonian model still needs autograd for its field."""
    torch.manual_seed(0)
    stepping = {"dt": 0.05} if kind == "resnet" else {"solver": "rk4", "step_size": 0.05}
    model = MODELS[kind](2, control_dim=1, hidden=8, **stepping)
    with torch.no_grad():
        model.net[-1].weight.normal_(std=0.3)  # not the zero field (or the identity map) of a fresh model
    model.system_spec = physode.Pendulum().spec()
    env = gym.make("physode/Learned-v0", checkpoint=model)
    env.reset(options={"state": [0.5, 0.0]})
    obs, *_ = env.step(np.array([0.3], dtype=np.float32))
    expected = model.rollout(torch.tensor([[0.5, 0.0]]), torch.tensor([0.0, 0.05]), torch.tensor([[0.3]]))[0, 1]
    np.testing.assert_allclose(obs, expected.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert np.abs(obs - [0.5, 0.0]).max() > 1e-3  # the model moved the state


class _Exploding(DynamicsModel):
    """A 'model' whose every prediction is NaN."""

    def __init__(self):
        super().__init__(2, 1)
        self.system_spec = physode.Pendulum().spec()

    def rollout(self, x0, t, u=None):
        return torch.full((x0.shape[0], len(t), 2), float("nan"))


def test_a_diverging_model_ends_the_episode_with_finite_observations():
    env = LearnedDynamicsEnv(_Exploding())
    obs, _ = env.reset(seed=0)
    nxt, _, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
    assert terminated and info["diverged"] and np.array_equal(nxt, obs)


class _Squared(ContinuousModel):
    """dx/dt = x^2 (finite-time blow-up from large states; the control is ignored), integrated by torchdiffeq."""

    def __init__(self, **solver):
        super().__init__(2, 1, **solver)
        self.system_spec = physode.Pendulum().spec()

    def flow(self, t, z, u):
        return z * z


@pytest.mark.parametrize("solver", [{"solver": "rk4", "step_size": 0.05}, {"solver": "dopri5"}])
def test_a_model_that_blows_up_in_some_envs_ends_only_their_episodes(solver):
    """Their solve fails (non-finite states, or the adaptive solver gives up) for the whole batch; the env
    finds the failing rows, ends their episodes as diverged and steps the others as usual."""
    n = 7
    starts = np.tile([0.1, -0.2], (n, 1))
    starts[[2, 5], 0] = 1e20  # squared: beyond float32
    model = _Squared(**solver)
    vec = gym.make_vec("physode/Learned-v0", num_envs=n, vectorization_mode="vector_entry_point", checkpoint=model)
    vec.reset(options={"states": starts})
    obs, _, terminated, _, info = vec.step(np.zeros((n, 1), dtype=np.float32))
    assert terminated.tolist() == info["diverged"].tolist() == [k in (2, 5) for k in range(n)]
    assert np.isfinite(obs).all()
    np.testing.assert_array_equal(vec._state[[2, 5]].numpy(), starts[[2, 5]])  # they keep their last finite state
    expected = model.rollout(torch.tensor(starts[:1]), torch.tensor([0.0, 0.05]), torch.zeros(1, 1))[0, 1]
    np.testing.assert_allclose(obs[0], expected.numpy(), rtol=1e-6)  # 0.1 / (1 - 0.1 * 0.05) and the like
    before = model.nfe_total
    obs, _, terminated, _, _ = vec.step(np.zeros((n, 1), dtype=np.float32))  # NEXT_STEP autoreset: a fresh start
    assert not terminated.any() and np.abs(obs[[2, 5]]).max() < 10
    assert model.nfe_total - before == model.nfe_forward  # one solve: the diverged states were not stepped again


@pytest.mark.parametrize("integrator", ["dopri5", "semi_implicit_euler"])
def test_a_true_system_that_fails_in_some_envs_ends_only_their_episodes(integrator):
    """A head-on n-body collision: dopri5's step size underflows (SolverError for the whole batched solve);
    bodies that coincide exactly give semi-implicit Euler infinite accelerations. Either way that sub-env
    ends as diverged with its last state, and the others step exactly as single envs do."""
    n, kwargs = 5, {"integrator": integrator, "dt": 0.05}
    collide = [-0.01, 0, 0.01, 0, 5, 5, 1, 0, -1, 0, 0, 0] if integrator == "dopri5" else [0, 0, 0, 0, 5, 5, 0, 0, 0, 0, 0, 0]
    vec = gym.make_vec("physode/NBody-v0", num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    vec.reset(seed=0)
    starts = vec._state.numpy().copy()
    starts[3] = collide
    vec.reset(options={"states": starts})
    action = np.zeros((n, 6), dtype=np.float32)
    obs, reward, terminated, _, info = vec.step(action)
    assert terminated.tolist() == info["diverged"].tolist() == [k == 3 for k in range(n)]
    assert np.isfinite(obs).all() and np.isfinite(reward).all()
    np.testing.assert_array_equal(vec._state[3].numpy(), starts[3])
    for k in (0, 4):
        single = gym.make("physode/NBody-v0", **kwargs)
        single.reset(options={"state": starts[k]})
        alone, alone_reward, alone_terminated, _, alone_info = single.step(action[k])
        assert np.array_equal(alone, obs[k]) and alone_reward == reward[k] and "diverged" not in alone_info
    single.reset(options={"state": starts[3]})
    alone, _, alone_terminated, _, alone_info = single.step(action[3])
    assert alone_terminated and alone_info["diverged"] and np.array_equal(alone, obs[3])


def test_nbody_terminates_when_a_body_escapes():
    env = gym.make("physode/NBody-v0").unwrapped
    x = env.system.sample_initial_states(1, seed=0)[0].numpy()
    env.reset(options={"state": x})
    assert not env.step(np.zeros(6, np.float32))[2]
    x[0] = 50.0  # the first body far out
    env.reset(options={"state": x})
    assert env.step(np.zeros(6, np.float32))[2]


def test_bad_input_gets_clear_errors(checkpoint, tmp_path):
    env = PendulumEnv()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=0)
    with pytest.raises(gym.error.InvalidAction, match=r"shape \(1,\)"):
        env.step(np.zeros(2, np.float32))
    with pytest.raises(gym.error.InvalidAction, match="NaN"):
        env.step(np.array([np.nan], np.float32))
    with pytest.raises(gym.error.InvalidAction, match="numbers"):
        env.step("left")
    with pytest.raises(PhysodeError, match=r"options\['state'\]"):
        env.reset(options={"state": [0.0, np.inf]})
    with pytest.raises(PhysodeError, match="integrator"):
        PendulumEnv(integrator="rk5")
    with pytest.raises(PhysodeError, match="dt"):
        PendulumEnv(dt=0.0)
    with pytest.raises(gym.error.Error):
        gym.make("physode/Pendulum-v9")
    with pytest.raises(PhysodeError, match="trained on pendulum"):
        SpringMassEnv(dynamics=physode.load_model(checkpoint))
    with pytest.raises(PhysodeError, match="trained on pendulum"):
        PendulumEnv(length=2.0, dynamics=physode.load_model(checkpoint))
    with pytest.raises(PhysodeError, match="checkpoint"):
        gym.make("physode/Learned-v0")
    with pytest.raises(PhysodeError, match="allow_uncontrolled"):
        LearnedDynamicsEnv(_uncontrolled())
    with pytest.raises(PhysodeError, match="solver='rk4', step_size"):
        LearnedDynamicsEnv(checkpoint, step_size=0.01)  # without solver= it would be ignored
    for junk in (b"not a checkpoint", b"junk"):  # the 4 bytes made torch.load raise struct.error
        (tmp_path / "junk.pt").write_bytes(junk)
        with pytest.raises(PhysodeError, match="junk.pt"):
            LearnedDynamicsEnv(tmp_path / "junk.pt")
    vec = gym.make_vec("physode/Pendulum-v0", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(gym.error.ResetNeeded):
        vec.step(np.zeros((2, 1), np.float32))
    vec.reset(seed=0)
    with pytest.raises(gym.error.InvalidAction, match=r"shape \(2, 1\)"):
        vec.step(np.zeros((3, 1), np.float32))
    np.testing.assert_array_equal(vec.reset(seed=np.int64(3))[0], vec.reset(seed=3)[0])  # a numpy integer is an int
    np.testing.assert_array_equal(vec.reset(seed=np.array([3, 4]))[0], vec.reset(seed=[3, 4])[0])
    np.testing.assert_array_equal(vec.reset(seed=range(3, 5))[0], vec.reset(seed=[3, 4])[0])
    assert vec.reset(seed=[None, 4])[0][1].tolist() == vec.reset(seed=[3, 4])[0][1].tolist()  # None: unseeded
    for seed in ([1], "ab", [1, 2.5], True):
        with pytest.raises(PhysodeError, match="list of 2 ints"):
            vec.reset(seed=seed)


def _uncontrolled():
    model = physode.NeuralODE(2)
    model.system_spec = physode.Pendulum().spec()
    return model


def test_the_module_prefix_imports_physode_envs_by_itself():
    code = "import gymnasium as g; e = g.make('physode.envs:physode/SpringMass-v0'); print(e.reset(seed=0)[0].shape)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.strip() == "(2,)"


def test_a_solver_override_steps_a_copy_of_the_model():
    model = physode.NeuralODE(2, control_dim=1)
    model.system_spec = physode.Pendulum().spec()
    env = LearnedDynamicsEnv(model, solver="rk4")
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    assert env.dynamics.nfe_forward == 4 and env.dynamics.step_size == env.dt  # one RK4 step per env step
    assert model.solver == "dopri5" and model.step_size is None  # the caller's model is untouched
    with pytest.raises(PhysodeError, match="unknown solver"):
        LearnedDynamicsEnv(model, solver="rk5")


def test_reset_options_set_the_start_of_every_sub_env_and_typos_are_refused():
    """options["state"] starts every sub-env there, as SyncVectorEnv's sub-envs do (it was ignored silently)."""
    start = [3.0, 0.0]
    native = gym.make_vec("physode/Pendulum-v0", num_envs=3, vectorization_mode="vector_entry_point")
    sync = gym.vector.SyncVectorEnv([lambda: gym.make("physode/Pendulum-v0") for _ in range(3)])
    obs, _ = native.reset(seed=0, options={"state": start})
    assert np.array_equal(obs, sync.reset(seed=0, options={"state": start})[0]) and np.array_equal(obs, [start] * 3)
    action = np.full((3, 1), 0.5, dtype=np.float32)
    assert np.array_equal(native.step(action)[0], sync.step(action)[0])
    for env in (native, gym.make("physode/Pendulum-v0")):
        with pytest.raises(PhysodeError, match=r"unknown reset option\(s\) \['stat'\]"):
            env.reset(options={"stat": start})
    with pytest.raises(PhysodeError, match="not both"):
        native.reset(options={"state": start, "states": [start] * 3})
    fast = gym.make("physode/Pendulum-v0", **PENDULUM_V1)
    with pytest.raises(PhysodeError, match="speed beyond this env's max_speed"):
        fast.reset(options={"state": [0.0, 20.0]})


class _Spinning(DynamicsModel):
    """A 'model' that spins the pendulum up to 12 rad/s in one step."""

    def __init__(self):
        super().__init__(2, 1)
        self.system_spec = physode.Pendulum(rod=True, mass=1.0, length=1.0, gravity=10.0).spec()

    def rollout(self, x0, t, u=None):
        x0 = torch.as_tensor(x0)
        return torch.stack([x0, x0 + torch.tensor([0.1, 12.0], dtype=x0.dtype)], dim=1)


def test_the_learned_env_keeps_max_speed():
    """Its observations left the observation space: the speed clip applied to the true dynamics only."""
    task = {k: v for k, v in PENDULUM_V1.items() if k not in ("gravity", "rod", "mass", "length")}  # from the checkpoint
    env = LearnedDynamicsEnv(_Spinning(), **task)
    obs, _ = env.reset(seed=0, options={"state": [0.0, 0.0]})
    obs, *_ = env.step(np.zeros(1, dtype=np.float32))
    assert obs[1] == np.float32(env.max_speed) and env.observation_space.contains(obs)


def test_an_unstable_explicit_step_ends_as_diverged_not_as_infinite_observations():
    """Semi-implicit Euler without a speed clip can overflow (here damping 1000 at dt 0.05: the speed grows
    49-fold a step); only with a speed clip on a system without singularities does the env skip the check."""
    env = gym.make("physode/Pendulum-v0", integrator="semi_implicit_euler", damping=1000.0)
    env.reset(options={"state": [0.1, 1.0]})
    steps = 0
    while steps < 200:
        obs, _, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
        steps += 1
        assert np.isfinite(obs).all()
        if terminated:
            break
    assert info.get("diverged") and 20 < steps < 200  # about 25 steps to pass float32's range


def test_vector_info_autoreset_and_action_shapes_follow_sync_vector_env(checkpoint):
    """The native vector env's info has Gymnasium's `_key` masks as SyncVectorEnv's does, a sub-env being reset
    ignores its action (even a NaN) as SyncVectorEnv does, and num_envs=1 takes actions of shape (1, C) only."""
    kwargs = {"checkpoint": str(checkpoint), "reference": True, "solver": "rk4", "max_episode_steps": 2}
    n, make = 3, lambda: gym.make("physode/Learned-v0", **kwargs)
    vec = gym.make_vec("physode/Learned-v0", num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    sync = gym.vector.SyncVectorEnv([make for _ in range(n)])
    infos = [vec.reset(seed=3)[1], sync.reset(seed=3)[1]]
    assert sorted(infos[0]) == sorted(infos[1]) == ["_prediction_error", "_true_state", "prediction_error", "true_state"]
    actions = np.array([[0.5], [-1.0], [2.0]], dtype=np.float32)
    for k in range(3):  # the third step autoresets every sub-env: NaN actions are ignored
        out = [env.step(np.full_like(actions, np.nan) if k == 2 else actions) for env in (vec, sync)]
        for a, b in zip(out[0][:4], out[1][:4], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
        assert sorted(out[0][4]) == sorted(out[1][4])
        for key in out[0][4]:
            np.testing.assert_allclose(out[0][4][key], out[1][4][key], atol=1e-6)
    with pytest.raises(gym.error.InvalidAction, match="NaN"):  # a sub-env that steps still refuses one
        vec.step(np.full_like(actions, np.nan))
    one = gym.make_vec("physode/Pendulum-v0", num_envs=1, vectorization_mode="vector_entry_point")
    one.reset(seed=0)
    with pytest.raises(gym.error.InvalidAction, match=r"shape \(1, 1\)"):
        one.step(np.zeros(1, np.float32))
    assert one.step(np.zeros((1, 1), np.float32))[0].shape == (1, 2)
    with pytest.raises(PhysodeError, match="vectorization_mode='sync'"):
        gym.make_vec("physode/Pendulum-v0", num_envs=2, vectorization_mode="vector_entry_point", render_mode="rgb_array")


class _Diverging(DynamicsModel):
    """A learned pendulum that is NaN after its first step."""

    def __init__(self):
        super().__init__(2, 1)
        self.system_spec = physode.Pendulum().spec()
        self.calls = 0

    def rollout(self, x0, t, u=None):
        self.calls += 1
        after = x0 + 0.1 if self.calls == 1 else torch.full_like(x0, float("nan"))
        return torch.stack([x0, after], 1)


def test_a_diverged_vector_step_reports_its_mask_as_sync_vector_env_does():
    vec = gym.make_vec("physode/Learned-v0", num_envs=2, vectorization_mode="vector_entry_point", checkpoint=_Diverging())
    vec.reset(seed=0)
    assert "diverged" not in vec.step(np.zeros((2, 1), np.float32))[4]
    _, _, terminated, _, info = vec.step(np.zeros((2, 1), np.float32))
    assert terminated.all() and info["diverged"].tolist() == info["_diverged"].tolist() == [True, True]


def test_the_state_frames_and_renders_of_an_env():
    """env.state is the float64 state (the pendulum's angle unwrapped, where the observation wraps it); frames
    play in real time; a learned spring-mass draws the truth all in grey under the prediction."""
    env = PendulumEnv(dt=0.05)
    assert env.state is None  # before the first reset, as Gymnasium's classic-control envs
    obs, _ = env.reset(options={"state": [3.0, 4.0]})
    for _ in range(3):
        obs, *_ = env.step(np.zeros(1, np.float32))
    assert env.state.dtype == np.float64 and env.state[0] > math.pi and obs[0] < 0  # over the top: wrapped
    np.testing.assert_allclose(obs, [env.state[0] - 2 * math.pi, env.state[1]], atol=1e-6)
    env.state[0] = 0.0  # a copy: the env's state is not written
    assert env.state[0] > math.pi
    assert env.metadata["render_fps"] == 20 and SpringMassEnv().metadata["render_fps"] == 10
    assert PendulumEnv(dt=0.01).metadata["render_fps"] == 100 and PendulumEnv.metadata["render_fps"] == 20
    model = physode.NeuralODE(2, control_dim=1)
    model.system_spec = physode.SpringMass().spec()
    learned = LearnedDynamicsEnv(model, reference=True, render_mode="rgb_array")
    learned.reset(seed=0)
    learned.render()
    true_masses = learned._figure.axes[0].collections[0]  # drawn first, then recoloured
    assert np.allclose(true_masses.get_facecolor()[0][:3], 0.6)
    with pytest.raises(PhysodeError, match="collected or other outside data"):
        LearnedDynamicsEnv(physode.NeuralODE(2, control_dim=1))


def test_a_model_with_its_own_rollout_is_stepped_through_it():
    """The learned env skips rollout's input checks (ContinuousModel.solve) only where rollout is the base class's."""

    class Nudged(physode.NeuralODE):
        def rollout(self, x0, t, u=None):
            return super().rollout(x0, t, u) + 0.25

    model = Nudged(2, control_dim=1, solver="rk4", step_size=0.05)
    model.system_spec = physode.Pendulum().spec()
    env = LearnedDynamicsEnv(model)
    env.reset(options={"state": [0.5, 0.0]})
    obs, *_ = env.step(np.zeros(1, np.float32))
    np.testing.assert_allclose(obs, [0.75, 0.25])  # a fresh NeuralODE is the zero field: the nudge alone

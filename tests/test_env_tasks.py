"""The cart-pole and double-pendulum tasks and the generic env of any system: Gymnasium's checker, CartPole-v1 parity,
rewards and episode ends as documented, closed-form steps of a user's system (time-dependent too), vector envs
against single envs, the learned env of a user's system, and bad input."""

import dataclasses
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import scipy.linalg
import torch
from gymnasium.utils.env_checker import check_env

import physode
import physode.envs  # noqa: F401  (registers the ids)
from physode import PhysodeError, System
from physode.envs import (ENV_CLASSES, THETA_THRESHOLD, CartPoleBalanceEnv, CartPoleSwingUpEnv, DoublePendulumSwingUpEnv,
                          LearnedDynamicsEnv, SystemEnv)
from physode.systems.base import rng
from physode.systems.cart_pole import CartPole
from physode.systems.double_pendulum import DoublePendulum

TASK_IDS = {"physode/CartPoleBalance-v0": 500, "physode/CartPoleSwingUp-v0": 500, "physode/DoublePendulumSwingUp-v0": 400}
FROM_GYMNASIUM = [0, 2, 1, 3]  # CartPole-v1's (x, x_dot, theta, theta_dot) to physode's (x, theta, x_dot, theta_dot)


@dataclasses.dataclass(frozen=True)
class LinearParams:
    stiffness: float = 2.0
    friction: float = 0.3


class Linear(System):
    """A user's system: a damped oscillator pushed by a force, ``q' = p, p' = -k q - c p + u``."""

    name = "test_env_tasks_linear"
    Params = LinearParams
    state_names = ("q", "p")
    control_dim = 1

    def matrices(self):
        return np.array([[0.0, 1.0], [-self.params.stiffness, -self.params.friction]]), np.array([[0.0], [1.0]])

    def vector_field(self, t, x, u=None):
        a, b = (torch.tensor(m, dtype=x.dtype, device=x.device) for m in self.matrices())
        dx = x @ a.T
        return dx if u is None else dx + u @ b.T

    def sample_initial_states(self, n, seed=0):
        return torch.from_numpy(rng(seed).uniform(-1.0, 1.0, (self._sample_count(n), 2)))


class Forced(System):
    """A time-dependent field with a closed-form flow: ``x1' = cos t + u``, ``x2' = x1``."""

    name = "test_env_tasks_forced"
    state_names = ("x1", "x2")
    control_dim = 1
    time_dependent = True

    def vector_field(self, t, x, u=None):
        drive = torch.cos(torch.as_tensor(t, dtype=x.dtype)).expand(x.shape[:-1])
        if u is not None:
            drive = drive + u[..., 0]
        return torch.stack([drive, x[..., 0]], dim=-1)

    def sample_initial_states(self, n, seed=0):
        return torch.from_numpy(rng(seed).uniform(-1.0, 1.0, (self._sample_count(n), 2)))


class Decay(System):
    """A system without controls."""

    name = "test_env_tasks_decay"
    state_names = ("x",)

    def vector_field(self, t, x, u=None):
        return -x

    def sample_initial_states(self, n, seed=0):
        return torch.ones(self._sample_count(n), 1, dtype=torch.float64)


def _energy_cost(x, u, x_next):
    return -(x_next**2).sum(1) - 0.1 * (u**2).sum(1)


def _check(env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gymnasium's advice on unbounded boxes
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", [*TASK_IDS, "physode/System-v0"])
def test_new_envs_pass_the_gymnasium_checker_and_render(env_id):
    kwargs = {"system": Linear(), "reward": _energy_cost} if env_id == "physode/System-v0" else {}
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    _check(env)
    assert env.spec.max_episode_steps == TASK_IDS.get(env_id, 200)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (400, 400, 3) and frame.std() > 0


def test_cart_pole_balance_is_cartpole_v1_step_for_step():
    """Same seed, same start; CartPole-v1's actions 0 / 1 as forces -10 / +10 N (and beyond the bound, clipped):
    every state within 1e-12 over whole episodes, reward 1 every step, and the episode ends at the same step."""
    theirs = gym.make("CartPole-v1").unwrapped
    ours = gym.make("physode/CartPoleBalance-v0").unwrapped
    actions = np.random.default_rng(0)
    lengths, worst = [], 0.0
    for seed in range(4):
        start_t, _ = theirs.reset(seed=seed)
        start_o, _ = ours.reset(seed=seed)
        np.testing.assert_array_equal(ours.state, theirs.state[FROM_GYMNASIUM])  # the same draws, bit for bit
        np.testing.assert_array_equal(start_o, start_t[FROM_GYMNASIUM])
        for k in range(500):
            action = int(actions.integers(2))
            force = (1 if action else -1) * (10.0 if k % 3 else 25.0)  # every third push beyond max_force
            obs_t, reward_t, term_t, *_ = theirs.step(action)
            obs_o, reward_o, term_o, *_ = ours.step(np.array([force], dtype=np.float32))
            worst = max(worst, np.abs(ours.state - theirs.state[FROM_GYMNASIUM]).max())
            np.testing.assert_allclose(obs_o, obs_t[FROM_GYMNASIUM], rtol=1e-6, atol=1e-7)
            assert reward_o == reward_t == 1.0 and term_o == term_t
            if term_t:
                break
        lengths.append(k + 1)
    assert worst < 1e-12
    assert all(length < 500 for length in lengths)  # random pushes: every episode ended by the rule


def test_cart_pole_balance_terminates_by_cartpole_v1s_rule():
    env = CartPoleBalanceEnv()
    limit = np.nextafter(2.4, 3.0)
    states = torch.tensor([[2.4, 0, 0, 0], [limit, 0, 0, 0], [-limit, 0, 0, 0], [0, THETA_THRESHOLD, 0, 0],
                           [0, np.nextafter(THETA_THRESHOLD, 1.0), 0, 0], [0, -np.nextafter(THETA_THRESHOLD, 1.0), 0, 0],
                           [-2.4, -THETA_THRESHOLD, 5.0, -5.0]], dtype=torch.float64)
    assert env.terminal(states).tolist() == [False, True, True, False, True, True, False]  # strictly beyond, as CartPole-v1
    assert THETA_THRESHOLD == gym.make("CartPole-v1").unwrapped.theta_threshold_radians
    env.reset(options={"state": [2.39, 0.0, 1.0, 0.0]})  # 1 m/s towards the edge: out within one step of 0.02 s
    assert env.step(np.zeros(1, np.float32))[1:3] == (1.0, True)
    wide = CartPoleBalanceEnv(x_threshold=3.0, theta_threshold=0.5)
    assert not wide.terminal(states).any()
    np.testing.assert_allclose(wide.observation_space.high, [6.0, 1.0, np.inf, np.inf])


def test_cart_pole_swing_up_starts_hanging_rewards_as_documented_and_leaves_the_track():
    env = CartPoleSwingUpEnv()
    obs, _ = env.reset(seed=3)
    assert abs(env.state[1] - math.pi) <= 0.05 and np.abs(env.state[[0, 2, 3]]).max() <= 0.05
    assert -math.pi <= obs[1] < math.pi  # wrapped: near -pi or pi
    x = torch.tensor([[0.0, 0.0, 0, 0], [0.0, math.pi, 0, 0], [2.4, 0.0, 0, 0], [9.0, 0.0, 0, 0], [1.2, math.pi / 2, 3, 3]],
                     dtype=torch.float64)
    u = torch.tensor([[0.0], [0.0], [0.0], [0.0], [10.0]], dtype=torch.float64)
    np.testing.assert_allclose(env.reward(x, u, x).numpy(), [1.0, 0.0, 0.5, 0.5, 0.5 * (1 - 0.125) * 0.8], atol=1e-15)
    env.reset(options={"state": [0.3, 2.0, -0.5, 1.0]})
    _, reward, terminated, _, _ = env.step(np.array([25.0], np.float32))  # clipped to 10 N
    xn = env.state
    expected = (1 + math.cos(xn[1])) / 2 * (1 - (xn[0] / 2.4) ** 2 / 2) * 0.8  # on the state after the step
    assert reward == pytest.approx(expected, rel=1e-12) and not terminated
    env.reset(options={"state": [0.0, 0.0, 0.0, 30.0]})  # the pole spins freely: no termination
    assert not any(env.step(np.zeros(1, np.float32))[2] for _ in range(20))
    env.reset(options={"state": [-2.39, math.pi, -1.0, 0.0]})
    assert env.step(np.zeros(1, np.float32))[2]


def test_double_pendulum_swing_up_rewards_as_documented_and_never_terminates():
    env = gym.make("physode/DoublePendulumSwingUp-v0", length2=0.5, max_torque=4.0)
    task = env.unwrapped
    x = torch.tensor([[math.pi, math.pi, 0, 0], [0, 0, 0, 0], [math.pi / 2, 0, 2, -1]], dtype=torch.float64)
    u = torch.tensor([[0.0, 0.0], [0.0, 0.0], [4.0, -2.0]], dtype=torch.float64)
    spin = 0.01 * 5 * 1.5 / 9.81
    np.testing.assert_allclose(task.reward(x, u, x).numpy(), [1.0, -1.0, -0.5 / 1.5 - spin - 0.01 * 20 / 16], atol=1e-14)
    obs, _ = env.reset(seed=0)
    assert np.abs(obs).max() <= 0.05
    steps, total = 0, 0.0
    while True:
        obs, reward, terminated, truncated, _ = env.step(np.array([4.0, -4.0], np.float32) * np.sign(obs[2] + 1e-9))
        steps += 1
        total += reward
        assert not terminated and -math.pi <= obs[0] < math.pi and -math.pi <= obs[1] < math.pi
        if truncated:
            break
    assert steps == 400
    p = task.system.params
    xn = task.state
    height = -(p.length1 * math.cos(xn[0]) + p.length2 * math.cos(xn[1])) / (p.length1 + p.length2)
    assert reward == pytest.approx(height - 0.01 * (xn[2] ** 2 + xn[3] ** 2) * 1.5 / 9.81 - 0.01 * 2, rel=1e-9, abs=1e-12)


def test_a_user_system_steps_as_its_closed_form_and_gets_its_reward():
    """A linear system against the matrix exponential: x(t + dt) = e^{A dt} x + int_0^dt e^{A s} ds B u; the reward
    callable sees the states before and after the step and the clipped action."""
    system = Linear(stiffness=3.0, friction=0.2)
    seen = []

    def reward(x, u, x_next):
        seen.append((x.clone(), u.clone(), x_next.clone()))
        return _energy_cost(x, u, x_next).numpy()  # a numpy array is taken too

    env = SystemEnv(system, reward=reward, dt=0.1, action_bound=0.5, rtol=1e-12, atol=1e-12)
    a, b = system.matrices()
    block = np.zeros((3, 3))
    block[:2, :2], block[:2, 2:] = a, b
    flow = scipy.linalg.expm(block * 0.1)  # [[e^{A dt}, int e^{A s} ds B], [0, 1]]
    obs, _ = env.reset(seed=1)
    x = env.state
    for k in range(20):
        action = np.array([np.sin(k)], np.float32)
        obs, r, terminated, truncated, info = env.step(action)
        u = np.clip(action.astype(np.float64), -0.5, 0.5)
        x_next = flow[:2, :2] @ x + flow[:2, 2:] @ u
        np.testing.assert_allclose(env.state, x_next, rtol=0, atol=1e-10)
        before, clipped, after = seen[-1]
        np.testing.assert_allclose(before[0].numpy(), x, atol=0)
        assert clipped.tolist() == [u.tolist()] and np.array_equal(after[0].numpy(), env.state)
        assert r == pytest.approx(-(env.state**2).sum() - 0.1 * u[0] ** 2, rel=1e-12)
        assert not terminated and not truncated and info == {}
        x = env.state
    silent = SystemEnv(system)
    silent.reset(seed=0)
    assert silent.step(np.ones(1, np.float32))[1] == 0.0  # reward=None: 0


def test_a_terminal_callable_ends_the_episode():
    env = gym.make("physode/System-v0", system=Linear(), terminal=lambda x: x[:, 0] > 0.5)
    env.reset(options={"state": [0.48, 1.0]})  # q' = p, about 1: over 0.5 within the first step of 0.05
    assert env.step(np.zeros(1, np.float32))[2]
    env.reset(options={"state": [0.0, 0.0]})
    assert not env.step(np.zeros(1, np.float32))[2]


def test_a_time_dependent_system_steps_from_each_states_own_time():
    """x1' = cos t + u, x2' = x1 in closed form from t_k = k dt; a vector env restarts the time of a sub-env it resets."""
    dt = 0.3

    def exact(x, u, k):
        t0, t1 = k * dt, (k + 1) * dt
        x1 = x[0] + math.sin(t1) - math.sin(t0) + u * dt
        x2 = x[1] + x[0] * dt - math.cos(t1) + math.cos(t0) - math.sin(t0) * dt + u * dt**2 / 2
        return np.array([x1, x2])

    env = SystemEnv(Forced(), dt=dt, rtol=1e-11, atol=1e-11)
    _, info = env.reset(seed=0)
    assert info == {"time": 0.0}
    x = env.state
    for k in range(8):
        _, _, _, _, info = env.step(np.array([0.5], np.float32))
        x = exact(x, 0.5, k)
        np.testing.assert_allclose(env.state, x, atol=1e-9)
        assert info["time"] == pytest.approx((k + 1) * dt)
    vec = gym.make_vec("physode/System-v0", num_envs=2, vectorization_mode="vector_entry_point", system=Forced(), dt=dt,
                       rtol=1e-11, atol=1e-11, max_episode_steps=3)
    obs, info = vec.reset(seed=0)
    assert info["time"].tolist() == [0.0, 0.0] and info["_time"].all()
    states = vec.unwrapped._state.numpy().copy()
    for k in range(5):  # steps 0, 1, 2, then the autoreset (a start at time 0), then step 0 of the new episode
        obs, _, _, truncated, info = vec.step(np.array([[0.5], [-1.0]], np.float32))
        if k == 3:
            assert info["time"].tolist() == [0.0, 0.0]
            states = vec.unwrapped._state.numpy().copy()
            continue
        step = k if k < 3 else 0
        states = np.stack([exact(states[0], 0.5, step), exact(states[1], -1.0, step)])
        np.testing.assert_allclose(vec.unwrapped._state.numpy(), states, atol=1e-9)
        np.testing.assert_allclose(info["time"], [(step + 1) * dt] * 2)
        assert truncated.all() == (k == 2)


@pytest.mark.parametrize("env_id", ["physode/CartPoleBalance-v0", "physode/System-v0"])
def test_a_vector_env_matches_single_envs_step_for_step_across_autoresets(env_id):
    n, steps = 3, 30
    kwargs = {} if "System" not in env_id else {"system": Linear(), "reward": _energy_cost, "action_bound": 10.0,
                                                 "terminal": lambda x: x[:, 0].abs() > 1.2}
    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", max_episode_steps=steps, **kwargs)
    sync = gym.vector.SyncVectorEnv([lambda: gym.make(env_id, max_episode_steps=steps, **kwargs) for _ in range(n)])
    obs_v, _ = vec.reset(seed=11)
    obs_s, _ = sync.reset(seed=11)
    np.testing.assert_array_equal(obs_v, obs_s)
    actions = np.random.default_rng(2)
    ends = terminations = 0
    for _ in range(100):
        action = actions.uniform(-10, 10, vec.action_space.shape).astype(np.float32)
        out_v, out_s = vec.step(action), sync.step(action)
        for a, b in zip(out_v[:4], out_s[:4], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        ends += int((out_v[2] | out_v[3]).sum())
        terminations += int(out_v[2].sum())
    assert terminations > 0 and ends > terminations  # episodes ended both ways, and were reset alike


def test_the_learned_env_of_a_user_system_is_the_generic_env(monkeypatch):
    """A model of a system without a task env of its own steps in SystemEnv, with the reward and terminal given to the
    learned env; its system is rebuilt from the model's spec (here through a patched physode.systems.system_from_spec,
    standing in for a registered user system)."""
    system = Linear(stiffness=1.5)
    original = physode.systems.system_from_spec

    def resolve(spec):
        return Linear(**spec["params"]) if spec["name"] == Linear.name else original(spec)

    monkeypatch.setattr(physode.systems, "system_from_spec", resolve)
    torch.manual_seed(0)
    model = physode.NeuralODE(2, control_dim=1, hidden=8)
    with torch.no_grad():
        model.net[-1].weight.normal_(std=0.3)  # not the zero field of a fresh model
    model.system_spec = system.spec()
    env = LearnedDynamicsEnv(model, reward=_energy_cost, terminal=lambda x: x[:, 1].abs() > 5.0, reference=True)
    assert isinstance(env.task, SystemEnv) and env.system == system and env.action_space.shape == (1,)
    _check(env)
    env.reset(options={"state": [0.5, -0.2]})
    obs, reward, terminated, _, info = env.step(np.array([0.7], np.float32))
    expected = model.rollout(torch.tensor([[0.5, -0.2]]), torch.tensor([0.0, env.dt]), torch.tensor([[0.7]]))[0, 1]
    np.testing.assert_allclose(obs, expected.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert reward == pytest.approx(-(env.state**2).sum() - 0.1 * float(np.float32(0.7)) ** 2, rel=1e-12) and not terminated
    assert info["true_state"].shape == (2,) and info["prediction_error"] > 0
    made = gym.make("physode/Learned-v0", checkpoint=model, reward=_energy_cost)
    made.reset(seed=0)
    assert made.step(np.zeros(1, np.float32))[1] < 0
    with pytest.raises(PhysodeError, match="stiffness"):  # the system's parameters come from the model
        LearnedDynamicsEnv(model, stiffness=2.0)


def test_a_checkpoint_of_a_registered_user_system_opens_in_the_generic_env(tmp_path):
    """The whole path without patches: a registered user system, a saved checkpoint naming it, the learned env."""
    register = getattr(physode, "register_system", None)
    if register is None:
        pytest.skip("physode.register_system is not part of physode yet")
    register(Linear)
    path = physode.save_checkpoint(tmp_path / "model.pt", physode.NeuralODE(2, control_dim=1, hidden=8),
                                   system_spec=Linear(stiffness=1.5).spec())
    env = gym.make("physode/Learned-v0", checkpoint=str(path), reward=_energy_cost)
    assert isinstance(env.unwrapped.task, SystemEnv) and env.unwrapped.system == Linear(stiffness=1.5)
    env.reset(options={"state": [0.5, -0.2]})
    obs, reward, *_ = env.step(np.array([2.0], np.float32))  # a fresh model is the zero field; the force clipped to 1
    np.testing.assert_allclose(obs, [0.5, -0.2], atol=1e-7)
    assert reward == pytest.approx(-0.29 - 0.1, rel=1e-6)


def test_learned_cart_pole_and_double_pendulum_models_take_their_task_envs():
    assert ENV_CLASSES["cart_pole"] is CartPoleSwingUpEnv and ENV_CLASSES["double_pendulum"] is DoublePendulumSwingUpEnv
    cart = physode.NeuralODE(4, control_dim=1, hidden=8, solver="rk4", step_size=0.02)
    cart.system_spec = CartPole(pole_mass=0.2).spec()
    env = LearnedDynamicsEnv(cart, render_mode="rgb_array")
    assert isinstance(env.task, CartPoleSwingUpEnv) and env.task.system.params.pole_mass == 0.2
    obs, _ = env.reset(options={"state": [0.0, 3.0, 0.0, 1.0]})
    obs, *_ = env.step(np.zeros(1, np.float32))  # a fresh model is the zero field: the state stays, the angle is wrapped
    np.testing.assert_allclose(obs, [0.0, 3.0, 0.0, 1.0], atol=1e-6)
    assert env.render().shape == (400, 400, 3)
    balance = LearnedDynamicsEnv(cart, env_class=CartPoleBalanceEnv)
    assert isinstance(balance.task, CartPoleBalanceEnv) and balance.integrator == "euler"
    arm = physode.NeuralODE(4, control_dim=2, hidden=8)
    arm.system_spec = DoublePendulum().spec()
    assert isinstance(LearnedDynamicsEnv(arm).task, DoublePendulumSwingUpEnv)
    with pytest.raises(PhysodeError, match="reward= and terminal="):
        LearnedDynamicsEnv(arm, reward=_energy_cost)
    with pytest.raises(PhysodeError, match="env_class must be"):
        LearnedDynamicsEnv(arm, env_class="balance")


def test_bad_input_to_the_generic_env_gets_clear_errors():
    with pytest.raises(PhysodeError, match="system must be a physode System"):
        gym.make("physode/System-v0")
    with pytest.raises(PhysodeError, match="system must be a physode System"):
        SystemEnv("pendulum")
    with pytest.raises(PhysodeError, match=r"no controls \(control_dim 0\).*physode.simulate"):
        SystemEnv(Decay())
    with pytest.raises(PhysodeError, match="reward must be a function"):
        SystemEnv(Linear(), reward=3.0)
    with pytest.raises(PhysodeError, match="terminal must be a function"):
        SystemEnv(Linear(), terminal="never")
    with pytest.raises(PhysodeError, match="action_bound"):
        SystemEnv(Linear(), action_bound=0.0)
    bad_rewards = {
        r"reward must return shape \(1,\) for states of shape \(1, 2\), got shape \(\)": lambda x, u, xn: xn.sum(),
        r"reward must return shape \(1,\) .* got shape \(1, 2\)": lambda x, u, xn: xn,
        r"reward must return a tensor of shape \(1,\) .* got 'high'": lambda x, u, xn: "high",
        "reward returned .* NaN or inf": lambda x, u, xn: xn[:, 0] * np.nan,
        "reward must return real numbers": lambda x, u, xn: xn[:, 0] > 0,
    }
    for message, reward in bad_rewards.items():
        env = SystemEnv(Linear(), reward=reward)
        env.reset(seed=0)
        with pytest.raises(PhysodeError, match=message):
            env.step(np.zeros(1, np.float32))
    env = SystemEnv(Linear(), terminal=lambda x: x[:, 0])
    env.reset(seed=0)
    with pytest.raises(PhysodeError, match="terminal must return booleans"):
        env.step(np.zeros(1, np.float32))
    vec = gym.make_vec("physode/System-v0", num_envs=3, vectorization_mode="vector_entry_point", system=Linear(),
                       reward=lambda x, u, xn: xn[:1, 0])
    vec.reset(seed=0)
    with pytest.raises(PhysodeError, match=r"reward must return shape \(3,\)"):
        vec.step(np.zeros((3, 1), np.float32))
    with pytest.raises(PhysodeError, match="x_threshold"):
        CartPoleSwingUpEnv(x_threshold=-1.0)
    with pytest.raises(PhysodeError, match="half_length"):
        gym.make("physode/CartPoleBalance-v0", half_length=0.0)
    with pytest.raises(PhysodeError, match="mass2"):
        DoublePendulumSwingUpEnv(mass2=-1.0)
    with pytest.raises(gym.error.InvalidAction, match=r"shape \(2,\)"):
        env = DoublePendulumSwingUpEnv()
        env.reset(seed=0)
        env.step(np.zeros(1, np.float32))

"""Env-steps per second: Gymnasium's Pendulum-v1 in a SyncVectorEnv against physode's batched envs.

In one run, on this machine: (a) ``Pendulum-v1`` in a ``SyncVectorEnv`` of 64 envs (the baseline);
(b) ``physode/Pendulum-v0`` batched with 1024 envs, with Pendulum-v1's own integrator (semi-implicit
Euler, ``PENDULUM_V1``: the same physics as (a)) and with physode's default (RK4 at dt); (c)
``physode/Learned-v0`` batched with 1024 envs, a NeuralODE of the usual size (hidden 64) stepped with
one RK4 step per env step and with its own adaptive solver (dopri5). Targets: (b) >= 100x (a),
(c) >= 10x (a). Random actions, autoreset on; the model is untrained (speed does not depend on the
weights for fixed-step solvers; for dopri5 it does, so that row is indicative only).

The rows take turns: five rounds, each measuring every row for a fifth of its time (2 s of its 10 s),
and each row reports the median of its five rates (and their range), so that a slow spell of the
machine falls on all rows alike instead of on whichever row it happens to meet.

Then the parts of one learned RK4 step of the 1024 envs are timed alone (median of repeats, in
``torch.inference_mode`` as the env runs them): one evaluation of the model's field as the solver calls it
without gradients (``model.inference_flow()``: the network in its sigmoid form with the normalisation and the
held action folded into its layers; an RK4 step makes four), the same field unfolded (``model.flow``, the
network as it runs with gradients, but in sigmoid form), torchdiffeq's ``odeint`` taking that RK4 step directly,
physode's ``solve`` taking it as the env calls it (folding, grid and failure handling), ``rollout`` (the same with
its input checks), and the kernels the network is made of.
"""

from __future__ import annotations

import statistics
import time
import timeit

import gymnasium as gym
import torch
from _common import experiment_parser, write_outputs

import physode
import physode.envs
from physode.envs import PENDULUM_V1
from physode.envs.learned import _with_solver
from torchdiffeq import odeint

DT = 0.05  #: the pendulum env's step, and the learned env's one RK4 step


def started(envs):
    """``envs`` reset with seed 0 and stepped a few times; returns ``(envs, actions)`` (16 random actions, reused)."""
    envs.reset(seed=0)
    actions = [envs.action_space.sample() for _ in range(16)]
    for k in range(5):
        envs.step(actions[k % 16])
    return envs, actions


def steps_per_second(envs, actions, seconds: float, n_envs: int) -> float:
    """Env-steps per second of the given actions in turn over about ``seconds``."""
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(actions[calls % 16])
        calls += 1
    return calls * n_envs / (time.perf_counter() - start)


def learned_model(hidden: int = 64):
    torch.manual_seed(0)
    model = physode.NeuralODE(2, control_dim=1, hidden=hidden)
    torch.nn.init.normal_(model.net[-1].weight, std=0.1)  # a non-trivial field, as after training
    model.system_spec = physode.Pendulum().spec()
    return model


def learned_step_parts(n: int, repeats: int) -> dict:
    """Median microseconds of the parts of one learned RK4 step of ``n`` envs, each timed alone."""
    model = _with_solver(learned_model(), "rk4", None, DT)
    gen = torch.Generator().manual_seed(0)  # float64 states, actions and times, as the env passes them
    x, u = torch.randn(n, 2, generator=gen, dtype=torch.float64), torch.randn(n, 1, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.0, DT], dtype=torch.float64)
    x32, u32 = x.float(), u.float()  # the model's own dtype: its field as the solver calls it, without input checks
    z, w = torch.randn(n, 64, generator=gen), torch.randn(64, 64, generator=gen)
    with torch.inference_mode():
        folded = model.inference_flow()  # as rollout makes it, once per solve
    parts = {
        "one evaluation of the model's field as the solver calls it (folded; an RK4 step makes four)":
            lambda: folded(0.0, x32, u32),
        "the same field unfolded (model.flow)": lambda: model.flow(0.0, x32, u32),
        "torchdiffeq odeint, one RK4 step of the folded field": lambda: odeint(lambda s, y: folded(s, y, u32), x32, t,
                                                                               method="rk4"),
        "physode solve, one RK4 step as the env takes it (folding, grid, failure handling)":
            lambda: model.solve(x, t.expand(n, 2), u[:, None]),
        "physode rollout, the same with its input checks": lambda: model.rollout(x, t, u),
        f"torch.tanh of {n} x 64 float32": lambda: torch.tanh(z),
        f"torch.sigmoid of {n} x 64 float32": lambda: torch.sigmoid(z),
        f"torch.addmm of {n} x 64 by 64 x 64": lambda: torch.addmm(z, z, w),
    }
    with torch.inference_mode():
        return {name: statistics.median(timeit.repeat(fn, number=20, repeat=repeats)) / 20 * 1e6
                for name, fn in parts.items()}


def main() -> None:
    args = experiment_parser(__doc__, "64 batched envs and 1 s per row, for the tests").parse_args()
    torch.set_num_threads(2)
    n, seconds, rounds = (64, 1.0, 1) if args.quick else (1024, 10.0, 5)
    vec = {"vectorization_mode": "vector_entry_point"}
    setups = [  # (name, number of envs, the vector env)
        ("(a) Pendulum-v1, SyncVectorEnv", 64, gym.make_vec("Pendulum-v1", num_envs=64, vectorization_mode="sync")),
        ("(b) physode/Pendulum-v0, PENDULUM_V1 (semi-implicit Euler)", n,
         gym.make_vec("physode/Pendulum-v0", num_envs=n, **vec, **PENDULUM_V1)),
        ("(b) physode/Pendulum-v0, default (RK4 at dt)", n, gym.make_vec("physode/Pendulum-v0", num_envs=n, **vec)),
        ("(c) physode/Learned-v0, NeuralODE, RK4 at dt", n,
         gym.make_vec("physode/Learned-v0", num_envs=n, **vec, checkpoint=learned_model(), solver="rk4", step_size=0.05)),
        ("(c) physode/Learned-v0, NeuralODE, its dopri5", n,
         gym.make_vec("physode/Learned-v0", num_envs=n, **vec, checkpoint=learned_model())),
    ]
    running = [started(envs) for _, _, envs in setups]
    rates = [[] for _ in setups]
    for _ in range(rounds):
        for (_, n_envs, _), (envs, actions), row_rates in zip(setups, running, rates, strict=True):
            row_rates.append(steps_per_second(envs, actions, seconds / rounds, n_envs))
    rows = []
    for (name, n_envs, envs), row_rates in zip(setups, rates, strict=True):
        envs.close()
        rate = statistics.median(row_rates)
        rows.append({"env": name, "num_envs": n_envs, "steps_per_s": rate, "rounds": row_rates})
        print(f"{name}: {rate:,.0f} env-steps/s (rounds {min(row_rates):,.0f} to {max(row_rates):,.0f})")

    base = rows[0]["steps_per_s"]
    for row in rows:
        row["vs_baseline"] = row["steps_per_s"] / base
    lines = [f"Median of {rounds} interleaved rounds per row (range over the rounds in brackets).", "",
             "| env | envs | env-steps/s | vs (a) |", "|---|---|---|---|"]
    lines += [f"| {r['env']} | {r['num_envs']} | {r['steps_per_s']:,.0f} ({min(r['rounds']):,.0f} to "
              f"{max(r['rounds']):,.0f}) | {r['vs_baseline']:.1f}x |" for r in rows]
    parts = learned_step_parts(n, 5 if args.quick else 25)
    learned = next(r for r in rows if r["env"].startswith("(c)"))
    lines += ["", f"One learned step of {n} envs (row (c), RK4): {n / learned['steps_per_s'] * 1e6:,.0f} µs in the env; "
              "its parts timed alone (median):", "", "| part | µs |", "|---|---|"]
    lines += [f"| {name} | {us:,.0f} |" for name, us in parts.items()]
    table = "\n".join(lines)
    print(table)
    write_outputs(args, "bench_envs_quick" if args.quick else "bench_envs", "Env-steps per second", table,
                  raw={"rows": rows, "learned_step_parts_us": parts})


if __name__ == "__main__":
    main()

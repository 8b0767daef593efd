"""Env-steps per second: Gymnasium's Pendulum-v1 in a SyncVectorEnv against physode's batched envs.

In one run, on this machine: (a) ``Pendulum-v1`` in a ``SyncVectorEnv`` of 64 envs (the baseline);
(b) ``physode/Pendulum-v0`` batched with 1024 envs, with Pendulum-v1's own integrator (semi-implicit
Euler, ``PENDULUM_V1``: the same physics as (a)) and with physode's default (RK4 at dt); (c)
``physode/Learned-v0`` batched with 1024 envs, a NeuralODE of the usual size (hidden 64) stepped with
one RK4 step per env step and with its own adaptive solver (dopri5). Targets: (b) >= 100x (a),
(c) >= 10x (a). Random actions, autoreset on; the model is untrained (speed does not depend on the
weights for fixed-step solvers; for dopri5 it does, so that row is indicative only).
"""

from __future__ import annotations

import time

import gymnasium as gym
import torch
from _common import experiment_parser, write_outputs

import physode
import physode.envs
from physode.envs import PENDULUM_V1


def steps_per_second(envs, seconds: float, n_envs: int) -> float:
    """Env-steps per second of random actions over about ``seconds`` (after a short warm-up)."""
    envs.reset(seed=0)
    actions = [envs.action_space.sample() for _ in range(16)]
    for k in range(5):
        envs.step(actions[k % 16])
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


def main() -> None:
    args = experiment_parser(__doc__, "64 batched envs and 1 s per row, for the tests").parse_args()
    torch.set_num_threads(2)
    n, seconds = (64, 1.0) if args.quick else (1024, 10.0)
    rows = []

    def measure(name, envs, n_envs):
        rate = steps_per_second(envs, seconds, n_envs)
        envs.close()
        rows.append({"env": name, "num_envs": n_envs, "steps_per_s": rate})
        print(f"{name}: {rate:,.0f} env-steps/s")

    measure("(a) Pendulum-v1, SyncVectorEnv", gym.make_vec("Pendulum-v1", num_envs=64, vectorization_mode="sync"), 64)
    vec = {"vectorization_mode": "vector_entry_point"}
    measure("(b) physode/Pendulum-v0, PENDULUM_V1 (semi-implicit Euler)",
            gym.make_vec("physode/Pendulum-v0", num_envs=n, **vec, **PENDULUM_V1), n)
    measure("(b) physode/Pendulum-v0, default (RK4 at dt)", gym.make_vec("physode/Pendulum-v0", num_envs=n, **vec), n)
    model = learned_model()
    measure("(c) physode/Learned-v0, NeuralODE, RK4 at dt",
            gym.make_vec("physode/Learned-v0", num_envs=n, **vec, checkpoint=model, solver="rk4", step_size=0.05), n)
    model = learned_model()
    measure("(c) physode/Learned-v0, NeuralODE, its dopri5",
            gym.make_vec("physode/Learned-v0", num_envs=n, **vec, checkpoint=model), n)

    base = rows[0]["steps_per_s"]
    for row in rows:
        row["vs_baseline"] = row["steps_per_s"] / base
    lines = ["| env | envs | env-steps/s | vs (a) |", "|---|---|---|---|"]
    lines += [f"| {r['env']} | {r['num_envs']} | {r['steps_per_s']:,.0f} | {r['vs_baseline']:.1f}x |" for r in rows]
    table = "\n".join(lines)
    print(table)
    write_outputs(args, "bench_envs_quick" if args.quick else "bench_envs", "Env-steps per second", table, raw={"rows": rows})


if __name__ == "__main__":
    main()

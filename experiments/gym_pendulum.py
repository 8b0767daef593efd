"""A controlled neural ODE learned from Gymnasium's own Pendulum-v1, whose dynamics physode did not write.

Collects random-policy episodes of ``Pendulum-v1`` (observations ``(cos theta, sin theta, theta_dot)``,
torque actions) with :func:`physode.collect`, trains a controlled NeuralODE on them with
:func:`physode.fit`, and scores its predictions against the real env's held-out test episodes:
one-step error over every test transition, and 50-step open-loop error (the recorded actions replayed)
from starts every 50 steps. A persistence baseline (``x_{k+1} = x_k``) gives the scale.
Errors are relative: ``||x_hat - x|| / ||x||``, medians and 90th percentiles over the test set.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch
from _common import experiment_parser, fit, write_outputs

import physode


def rollout_errors(model, data, horizon: int) -> np.ndarray:
    """Relative errors after ``horizon`` steps from starts every ``horizon`` steps of every episode."""
    x, u, t = data.x, data.u, data.t
    starts = range(0, data.n_times - horizon, horizon)
    x0 = torch.cat([x[:, k] for k in starts])
    controls = torch.cat([u[:, k : k + horizon] for k in starts])
    target = torch.cat([x[:, k + horizon] for k in starts])
    with torch.no_grad():
        pred = model.rollout(x0, t[: horizon + 1] - t[0], controls)[:, -1].double()
    return ((pred - target).norm(dim=-1) / target.norm(dim=-1)).numpy()


def main() -> None:
    args = experiment_parser(__doc__, "24 episodes and 30 training steps, for the tests").parse_args()
    torch.set_num_threads(2)
    episodes, steps, limit = (24, 30, 20.0) if args.quick else (256, 3000, 150.0)
    data = physode.collect("Pendulum-v1", episodes, "random", seed=0, progress=not args.quick)
    print(data.summary())
    torch.manual_seed(0)
    model = physode.build_model("node", data, hidden=64)
    with tempfile.TemporaryDirectory() as out:
        result = fit(model, data, physode.TrainConfig(steps=steps, time_limit=limit, seed=0), out_dir=out,
                             progress=not args.quick)
    model.eval()
    test = data.test
    one, fifty = rollout_errors(model, test, 1), rollout_errors(model, test, 50)
    persistence = (test.x[:, 1:] - test.x[:, :-1]).norm(dim=-1) / test.x[:, 1:].norm(dim=-1)
    rows = {
        "one-step, NeuralODE": one,
        "one-step, persistence x_{k+1} = x_k": persistence.flatten().numpy(),
        "50-step open loop, NeuralODE": fifty,
    }
    lines = ["| prediction | median rel. error | 90th percentile | n |", "|---|---|---|---|"]
    lines += [f"| {k} | {np.median(v):.2e} | {np.percentile(v, 90):.2e} | {len(v)} |" for k, v in rows.items()]
    table = "\n".join(lines) + (f"\n\n{data.summary()}; NeuralODE (hidden 64, controlled) trained {result.steps} steps in "
                                f"{result.seconds:.0f} s, best validation error {result.best_val_error:.3g}.")
    print(table)
    raw = {k: {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "n": len(v)} for k, v in rows.items()}
    raw["training"] = {"steps": result.steps, "seconds": result.seconds, "best_val_error": result.best_val_error}
    write_outputs(args, "gym_pendulum_quick" if args.quick else "gym_pendulum",
                  "A controlled NeuralODE learned from Gymnasium's Pendulum-v1", table, raw=raw)


if __name__ == "__main__":
    main()

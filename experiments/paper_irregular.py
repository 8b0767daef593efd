"""Irregularly sampled trajectories: a neural ODE consumes them as they are, a ResNet step model needs a grid.

Pendulum trajectories observed at K random times each (both ends fixed; K = 50, 20, 10 over 10 time
units), against the dense regular grid (101 times). The NeuralODE trains on the irregular
observations directly (its solve runs on each trajectory's own times); the ResNetStep model, which
only knows steps of one fixed dt, trains on the observations linearly interpolated onto the regular
grid of step 0.1. Both train for the same number of steps with the same settings at every level and
are scored by :func:`physode.compare` on one held-out set of dense trajectories (the truth
simulated): median rollout error at the training horizon and at 2x it, and vector-field error.
"""

from __future__ import annotations

import numpy as np
import torch
from _common import experiment_parser, fit, write_outputs

import physode

T_END, T_TRAIN, GRID_DT = 10.0, 5.0, 0.1


def interpolated(data: physode.TrajectoryDataset) -> physode.TrajectoryDataset:
    """``data`` linearly interpolated onto the regular grid of step GRID_DT (what a step model needs)."""
    grid = np.linspace(0.0, T_END, round(T_END / GRID_DT) + 1)
    t, x = data.t.numpy(), data.x.numpy()
    x_grid = np.stack([np.stack([np.interp(grid, t[i], x[i, :, d]) for d in range(x.shape[2])], -1)
                       for i in range(len(data))])
    meta = {**data.meta, "dt": GRID_DT, "grid": "interpolated from irregular"}
    return physode.TrajectoryDataset(grid, x_grid, data.system_spec, split=data.split.numpy(), t_train=T_TRAIN, meta=meta)


def main() -> None:
    parser = experiment_parser(__doc__, "two levels, 24 trajectories and 20 steps, for the tests")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small batches: a second thread gains little and suffers badly on a shared CPU
    quick = args.quick
    n, steps = (24, 20) if quick else (128, 1000)
    levels = [None, 20] if quick else [None, 50, 20, 10]  # None: the dense regular grid
    pendulum = physode.Pendulum()
    evaluation = physode.TrajectoryDataset.generate(pendulum, 16 if quick else 64, T_END, GRID_DT, seed=args.seed + 99,
                                                    t_train=T_TRAIN, fractions=(0.5, 0.0, 0.5))
    rows, models = [], {}
    for k in levels:
        if k is None:
            data = physode.TrajectoryDataset.generate(pendulum, n, T_END, GRID_DT, seed=args.seed, t_train=T_TRAIN)
            label, on_grid = "dense regular (101)", data
        else:
            data = physode.TrajectoryDataset.generate(pendulum, n, T_END, T_END / (k - 1), irregular=True,
                                                      seed=args.seed, t_train=T_TRAIN)
            label, on_grid = f"irregular, {k} per trajectory", interpolated(data)
        for name, train_on in (("node", data), ("resnet", on_grid)):
            torch.manual_seed(args.seed)
            model = physode.build_model(name, train_on, hidden=64)
            config = physode.TrainConfig(steps=steps, seed=args.seed, train_step=GRID_DT, val_every=max(10, steps // 15))
            result = fit(model, train_on, config, progress=not quick)
            models[(label, name)] = model
            rows.append({"data": label, "model": name, "observations": int(data.n_times), "steps": result.steps,
                         "seconds": result.seconds})
            print(f"{label}, {name}: {result.steps} steps in {result.seconds:.0f} s")
    report = physode.compare({f"{label} | {name}": m for (label, name), m in models.items()}, evaluation,
                             horizons=(1.0, 2.0))
    for row in rows:
        scores = report.rows[f"{row['data']} | {row['model']}"]
        row.update({"error_t_train": scores["median_error"]["1.0"], "error_2t_train": scores["median_error"]["2.0"],
                    "field_error": scores["field_error_test"], "valid_time": scores["valid_time"]})

    lines = ["| training data | model | median err @ t=5 | median err @ t=10 | field err | valid time |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['data']} | {r['model']} | {r['error_t_train']:.2e} | {r['error_2t_train']:.2e} | "
              f"{r['field_error']:.2e} | {r['valid_time']:.2f} |" for r in rows]
    table = "\n".join(lines) + (f"\n\n{n} pendulum trajectories per level, {steps} training steps per model, hidden 64; "
                                f"scored on {report.meta['n_test']} held-out dense trajectories (truth simulated). "
                                "ResNet: observations interpolated onto the 0.1 grid.")
    print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 4))
    for name, marker in (("node", "o"), ("resnet", "s")):
        ours = [r for r in rows if r["model"] == name]
        ax.plot([r["observations"] for r in ours], [r["error_2t_train"] for r in ours], marker=marker, label=name)
    ax.set(xscale="log", yscale="log", xlabel="observations per trajectory (101 = dense regular grid)",
           ylabel="median rollout error at t = 10", title="Irregular, sparse observations")
    ax.legend()
    figure.tight_layout()
    write_outputs(args, "paper_irregular_quick" if quick else "paper_irregular",
                  "Irregularly sampled trajectories: NeuralODE vs ResNetStep", table, raw={"rows": rows}, figure=figure)


if __name__ == "__main__":
    main()

"""The warm start against the old trainer: the default NeuralODE with and without derivative matching, same budget.

For each dataset both runs get the same training time (``TrainConfig(time_limit=...)``, warm start on or off),
measured one after the other in this run, and are scored on the test split from the clean initial states with
the model's own adaptive solver: the field error ``||f - f_true|| / ||f_true||`` over the test states, and the
median relative L2 rollout error over [0, 10] (twice the training horizon).

* clean: 256 pendulum trajectories, dt 0.1, train on [0, 5], 20 s each;
* noisy: the same with observation noise ``noise_std=0.01``, 30 s each;
* sparse: 256 trajectories of 21 irregular observations on [0, 10] (about 10 within the training horizon), 30 s.

``--quick`` (for the tests): 32 trajectories and a few hundred steps instead of the time budgets.

    python experiments/bench_warm_start.py [--quick]
"""

from __future__ import annotations

import torch

import physode
from _common import experiment_parser, write_outputs
from physode.train import TrainConfig, relative_errors

CASES = {  # name -> (generate options, seconds per run)
    "clean": ({"dt": 0.1}, 20.0),
    "noisy (1%)": ({"dt": 0.1, "noise_std": 0.01}, 30.0),
    "sparse (21 irregular times)": ({"dt": 0.5, "irregular": True}, 30.0),
}


def scores(model, data) -> dict:
    test = data.test
    states = test.x_clean.reshape(-1, data.state_dim)
    with torch.no_grad():
        truth = data.system.vector_field(0.0, states)
        field = model.vector_field(0.0, states)
        pred = model.rollout(test.x_clean[:, 0], test.times).double()
    return {"field_error": float((field - truth).norm() / truth.norm()),
            "rollout_error_t10": float(relative_errors(pred, test.x_clean).median())}


def run(data, warm: bool, budget: dict) -> dict:
    torch.manual_seed(0)
    model = physode.build_model("node", data)
    result = physode.fit(model, data, TrainConfig(warm_start=warm, **budget))
    return {**scores(model, data), "seconds": result.seconds, "steps": result.steps}


def main(argv=None):
    args = experiment_parser(__doc__, "32 trajectories, step budgets instead of time: for the tests").parse_args(argv)
    rows, raw = [], {}
    for name, (options, seconds) in CASES.items():
        n = 32 if args.quick else 256
        data = physode.TrajectoryDataset.generate(physode.Pendulum(), n, 10.0, seed=0, **options)
        budget = {"steps": 50, "warm_start_steps": 300} if args.quick else {"time_limit": seconds}
        for warm in (True, False):
            result = run(data, warm, budget)
            label = "warm start + trajectory matching" if warm else "trajectory matching only (the old trainer)"
            rows.append(f"| {name} | {label} | {result['seconds']:.0f} | {result['steps']} | "
                        f"{100 * result['field_error']:.2f}% | {100 * result['rollout_error_t10']:.2f}% |")
            raw[f"{name} | {'warm' if warm else 'old'}"] = result
    report = "\n".join([
        f"Default NeuralODE on pendulum data (train on [0, 5], test to t = 10); torch threads {torch.get_num_threads()}.",
        "",
        "| data | trainer | train time (s) | trajectory steps | field error | rollout error [0, 10] |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    print(report)
    write_outputs(args, "bench_warm_start", "Warm start benchmark", report, raw)


if __name__ == "__main__":
    main()

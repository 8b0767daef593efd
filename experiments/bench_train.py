"""How good is the trainer? The default NeuralODE on pendulum data: the defaults, the old trainer, a plain loop.

Datasets: 256 pendulum trajectories to t = 10, trained on [0, 5] (seed 0), in three kinds:

* clean: dt = 0.1; the defaults and the old trainer (warm start off) get 20 s each;
* noisy: the same with observation noise ``noise_std=0.01``; 30 s each;
* sparse: 21 irregular observations per trajectory on [0, 10] (random times, about 10 within the training
  horizon); each trainer runs its default 3000 steps, however long they take.

On the clean data also the loop users write by hand, as a baseline: a tanh MLP (64, 64) with PyTorch's default
initialisation, ``torchdiffeq.odeint`` (dopri5, its default tolerances), Adam at a fixed lr 1e-3, fixed 10-step
windows, batch 128, no normalisation, 60 s.

Reported on the test split, from the clean initial states, with the model's own adaptive solver: the vector-field
relative error ``||f - f_true|| / ||f_true||`` over all test states, and the median over trajectories of the
relative L2 rollout error over [0, 5] and over [0, 10] (twice the training horizon). "Time to baseline" is when
the default trainer's validation error (median relative L2 over the training horizon on the val split, the metric
both runs record) first reached the plain loop's 60-second value. Writes experiments/results/bench_train.{md,json}
and figures/bench_train.png.

``--quick`` (for the tests): 64 trajectories and 100 optimiser steps for each run instead of the time budgets,
so that its outcome does not depend on how busy the machine is.

    python experiments/bench_train.py [--quick]
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn
from torchdiffeq import odeint

import physode
from _common import experiment_parser, fit, write_outputs
from physode.train import TrainConfig, relative_errors

QUICK_STEPS = 100  #: --quick: optimiser steps of each run


def scores(rollout, field, data):
    """Field error on the test states and median rollout errors over [0, 5] and [0, 10]."""
    test = data.test
    states = test.x_clean.reshape(-1, data.state_dim)
    with torch.no_grad():
        pred = rollout(test.x_clean[:, 0], test.times).double()
        learned = field(states).double()
    truth = data.system.vector_field(0.0, states)
    return {
        "field_error": float((learned - truth).norm() / truth.norm()),
        "rollout_error_t5": float(relative_errors(pred, test.x_clean, test.times <= data.t_train).median()),
        "rollout_error_t10": float(relative_errors(pred, test.x_clean).median()),
    }


def run_physode(data, warm_start=True, seconds=None, steps=None):
    """The trainer at its defaults (``warm_start=False``: the old trainer), for ``seconds`` of training or
    ``steps`` optimiser steps (None and None: its default steps)."""
    torch.manual_seed(0)
    model = physode.build_model("node", data)
    budget = {"time_limit": seconds} if seconds is not None else {"steps": steps} if steps is not None else {}
    result = fit(model, data, TrainConfig(warm_start=warm_start, **budget))
    curve = [(h["seconds"], h["val_error"]) for h in result.history]
    out = scores(model.rollout, lambda x: model.vector_field(0.0, x.float()), data)
    return {**out, "train_seconds": result.seconds, "steps": result.steps, "stopped": result.stopped,
            "parameters": model.num_parameters}, curve


def run_baseline(data, seconds=None, steps=None, eval_every=5.0):
    """The plain loop for ``seconds`` of training or ``steps`` steps; the clock runs only while training."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    train, val = data.train, data.val
    x = train.x.float()
    t = train.t.float()
    n_train = int((train.t <= data.t_train).sum())
    gen = torch.Generator().manual_seed(0)
    window = 10

    def rollout(x0, times):
        return odeint(lambda _, y: net(y), x0.float(), times[0].float()).transpose(0, 1)

    def val_error():
        with torch.no_grad():
            pred = rollout(val.x[:, 0], val.times).double()
        return float(relative_errors(pred, val.x, val.times <= data.t_train).median())

    curve, clock, next_eval, step = [], 0.0, eval_every, 0

    def finished():
        return clock >= seconds if steps is None else step >= steps

    while not finished():
        start = time.perf_counter()
        rows = torch.randint(len(x), (128,), generator=gen)
        begin = torch.randint(n_train - window, (1,), generator=gen).item()
        batch = x[rows, begin : begin + window + 1]
        pred = odeint(lambda _, y: net(y), batch[:, 0], t[begin : begin + window + 1] - t[begin]).transpose(0, 1)
        loss = ((pred - batch) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        clock += time.perf_counter() - start
        step += 1
        if clock >= next_eval or finished():
            curve.append((clock, val_error()))
            next_eval += eval_every
    out = scores(rollout, lambda s: net(s.float()), data)
    return {**out, "train_seconds": clock, "parameters": sum(p.numel() for p in net.parameters())}, curve


#: name -> (generate options, seconds per trainer; None: its default steps)
CASES = {
    "clean": ({"dt": 0.1}, 20.0),
    "noisy (1%)": ({"dt": 0.1, "noise_std": 0.01}, 30.0),
    "sparse (21 irregular times)": ({"dt": 0.5, "irregular": True}, None),
}
TRAINERS = {"defaults": True, "old trainer (warm start off)": False}


def _row(case, name, r):
    return (f"| {case} | {name} | {r['train_seconds']:.0f} | {r.get('steps', '')} | {100 * r['field_error']:.2f}% | "
            f"{100 * r['rollout_error_t5']:.1f}% | {100 * r['rollout_error_t10']:.1f}% |")


def main(argv=None):
    args = experiment_parser(__doc__, "64 trajectories, 100 optimiser steps each instead of time budgets: "
                                      "deterministic, for the tests").parse_args(argv)
    n = 64 if args.quick else 256
    rows, raw, curves = [], {"n_trajectories": n, "runs": {}}, {}
    for case, (options, seconds) in CASES.items():
        data = physode.TrajectoryDataset.generate(physode.Pendulum(), n, t_end=10.0, seed=0, **options)
        coarse = physode.derivatives.coarse_grid(data.train)  # the defaults skip the warm start on such a grid
        if coarse:
            raw.setdefault("warm_start_skipped", []).append(case)
        for name, warm in TRAINERS.items():
            if coarse and not warm:  # the same run as the defaults'
                rows.append(f"| {case} | {name} | as the defaults: on this grid they skip the warm start ({coarse}) |"
                            " | | | |")
                continue
            budget = {"steps": QUICK_STEPS} if args.quick else {"seconds": seconds}
            result, curve = run_physode(data, warm, **budget)
            rows.append(_row(case, name, result))
            raw["runs"][f"{case} | {name}"] = result
            curves[f"{case} | {name}"] = curve
        if case == "clean":
            base, base_curve = run_baseline(data, **({"steps": QUICK_STEPS} if args.quick else {"seconds": 60.0}))
            rows.append(_row(case, f"plain loop ({QUICK_STEPS} steps)" if args.quick else "plain loop (60 s)", base))
            raw["baseline"], curves["clean | plain loop"] = base, base_curve
    target = curves["clean | plain loop"][-1][1]
    reached = next((sec for sec, err in curves["clean | defaults"] if err <= target), None)
    raw["time_to_baseline_s"], raw["curves"] = reached, curves
    lines = [
        f"{n} pendulum trajectories to t = 10, trained on [0, 5], tested to t = 10; torch threads "
        f"{torch.get_num_threads()}.",
        "",
        "| data | run | train time (s) | steps | field error | rollout error [0, 5] | rollout error [0, 10] |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"The plain loop's final validation error on the clean data: {100 * target:.2f}%; the default trainer first "
        "reached it after " + (f"{reached:.1f} s ({reached / raw['baseline']['train_seconds']:.2f} of the loop's time)"
                               if reached is not None else "never"),
    ]
    report = "\n".join(lines)
    print(report)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("clean | defaults", "clean | old trainer (warm start off)", "clean | plain loop"):
        ax.semilogy(*zip(*curves[name], strict=True), label=name.split(" | ")[1])
    ax.axhline(target, color="gray", lw=0.8, ls="--")
    ax.set(xlabel="training time (s)", ylabel="validation error (median relative L2)",
           title="Pendulum, NeuralODE, clean data")
    ax.legend()
    fig.tight_layout()
    write_outputs(args, "bench_train", "Trainer benchmark", report, raw, fig)


if __name__ == "__main__":
    main()

"""Trust without the truth: do an ensemble's prediction intervals cover, and does its spread predict the valid time?

For each dataset, ensembles of K = 1 (no spread), 3, 5 and 10 NeuralODEs (bootstrap resamples of the training
trajectories, distinct initial weights, one batched run each) are trained alike and scored by :func:`physode.compare`
on the test split: the observed coverage of their 90% prediction intervals at 1x, 2x and 4x the training horizon
(recalibrated on the validation split as Kuleshov et al. 2018 do, and as the members' spread says), the median
predicted trust horizon (the first time the predicted relative error passes 10%) next to the median actual valid
time, and the rank correlation of the two over the test trajectories.

Datasets, each trained on as many trajectories as the full preset's (204 of 256, to t = 10, dt 0.1, trained on
[0, 5]) but with larger held-out splits: 512 trajectories split 40/10/50%, so that 51 validation trajectories fit the
recalibration and 256 test trajectories measure a coverage near 90% to about 2% (one standard error; 26 test
trajectories would leave 6%, wider than the target's band). Pendulum, spring-mass and two bodies, scored against
their true system; and a recorded dataset without a true system: Van der Pol trajectories to t = 20 handed over as
bare arrays (no system), scored against the recorded test trajectories.

Every run trains the same number of steps (``--steps``, default 1000 trajectory-matching steps after a 2000-step
warm start; no early stopping, no time limit), so that the training times compare like for like: the target is
K = 5 in at most 2x the wall time of K = 1. Writes experiments/results/bench_uncertainty.{md,json} and
figures/bench_uncertainty.png (calibration curves of the K = 5 ensembles).

``--quick`` (for the tests): 32 trajectories, 20 steps, K = 1 and 3, the pendulum and the recorded data; written to
bench_uncertainty_quick.{md,json} and figures/bench_uncertainty_quick.png.

    python experiments/bench_uncertainty.py [--quick] [--steps N]
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import physode
from _common import experiment_parser, fit, write_outputs
from physode.job import PRESETS, comparison_system
from physode.train import TrainConfig

TARGET_COVERAGE = (0.85, 0.95)  #: the 90% intervals' observed coverage must fall in this range
TARGET_HORIZON = 0.25  #: the median predicted trust horizon within this share of the median valid time
TARGET_RANK = 0.6  #: the least rank correlation of predicted trust horizons with valid times
TARGET_TIME = 2.0  #: K = 5 trains in at most this many times the wall time of K = 1


#: train / val / test shares of the trajectories: the full preset's training set, larger held-out splits
FRACTIONS = (0.4, 0.1, 0.5)


def datasets(n: int, quick: bool) -> dict:
    """name -> dataset of ``n`` trajectories (split by :data:`FRACTIONS`): the systems' data at the full preset's
    grid, and the recorded (system-less) data."""
    settings = PRESETS["full"]
    out = {}
    for name in ("pendulum",) if quick else ("pendulum", "spring_mass", "nbody2"):
        system, grid = comparison_system(physode.NBody(n_bodies=2) if name == "nbody2" else name)
        options = {**settings, **grid}
        out[name] = physode.TrajectoryDataset.generate(system, n, options["t_end"], options["dt"], seed=0,
                                                       fractions=FRACTIONS)
    simulated = physode.TrajectoryDataset.generate(physode.VanDerPol(), n, 20.0, 0.1, seed=0)
    out["recorded (Van der Pol, no system)"] = physode.TrajectoryDataset.from_arrays(
        simulated.t, simulated.x, t_train=5.0, seed=0, fractions=FRACTIONS, source="van der pol recording")
    return out


def train(data, members: int, steps: int, warm_steps: int, hidden: int):
    """An ensemble of ``members`` NeuralODEs (one model for 1) trained ``steps`` steps; returns it and its seconds."""
    torch.manual_seed(0)
    model = physode.build_model("node", data, hidden=hidden, **({"ensemble": members} if members > 1 else {}))
    config = TrainConfig(steps=steps, warm_start_steps=warm_steps, patience=10**6, seed=0)
    result = fit(model, data, config)
    return model, result.seconds


def _flag(ok: bool) -> str:
    return "" if ok else " (miss)"


def main(argv=None):
    parser = experiment_parser(__doc__, "32 trajectories, 20 steps, K = 1 and 3, two datasets: for the tests")
    parser.add_argument("--steps", type=int, default=1000, help="trajectory-matching steps of every run")
    args = parser.parse_args(argv)
    n = 32 if args.quick else 2 * PRESETS["full"]["n_trajectories"]
    steps, warm = (20, 100) if args.quick else (args.steps, 2 * args.steps)
    sizes = (1, 3) if args.quick else (1, 3, 5, 10)
    hidden = 16 if args.quick else PRESETS["full"]["hidden"]
    raw, rows, curves = {"n_trajectories": n, "steps": steps, "warm_start_steps": warm, "runs": {}}, [], {}
    for case, data in datasets(n, args.quick).items():
        seconds = {}
        for k in sizes:
            model, seconds[k] = train(data, k, steps, warm, hidden)
            report = physode.compare({"model": model}, data, horizons=(1, 2, 4))
            row = report.rows["model"]
            u = row.get("uncertainty")
            entry = {"train_seconds": seconds[k], "valid_time": row["valid_time"], "field_error": row["field_error_test"],
                     "median_error": row["median_error"], "uncertainty": u}
            raw["runs"][f"{case} | K={k}"] = entry
            if u is None:
                rows.append(f"| {case} | {k} | {seconds[k]:.0f} | no spread | | | | {row['valid_time']:.2f} | |")
                continue
            cover = " | ".join(f"{100 * u['coverage'][h]:.0f}% ({100 * u['coverage_raw'][h]:.0f}%)"
                               f"{_flag(TARGET_COVERAGE[0] <= u['coverage'][h] <= TARGET_COVERAGE[1])}"
                               for h in ("1.0", "2.0", "4.0"))
            ratio = u["trust_horizon"] / row["valid_time"]
            rank = u["trust_rank_correlation"]
            rows.append(f"| {case} | {k} | {seconds[k]:.0f} | {cover} | {u['trust_horizon']:.2f} | "
                        f"{row['valid_time']:.2f} ({ratio:.2f}x){_flag(abs(ratio - 1) <= TARGET_HORIZON)} | "
                        + ("n/a" if rank is None else f"{rank:.2f}{_flag(rank >= TARGET_RANK)}") + " |")
            print(rows[-1], file=sys.stderr, flush=True)  # a long run's progress
            if k == (5 if 5 in sizes else max(sizes)):
                curves[case] = u["calibration_curve"]
        if 5 in seconds:
            raw["runs"][f"{case} | K=5"]["time_ratio"] = seconds[5] / seconds[1]
            rows.append(f"| {case} | K=5 / K=1 train time | {seconds[5] / seconds[1]:.2f}x"
                        f"{_flag(seconds[5] / seconds[1] <= TARGET_TIME)} | | | | | | |")
    lines = [
        f"{n} trajectories per dataset (train / val / test {FRACTIONS[0]:.0%} / {FRACTIONS[1]:.0%} / "
        f"{FRACTIONS[2]:.0%}), trained on [0, 5]; every run {warm} warm-start and {steps} trajectory-matching "
        f"steps (hidden {hidden}); torch threads {torch.get_num_threads()}. Coverage of the 90% intervals "
        "recalibrated on the validation split (raw: as the members' spread says), over the test states' coordinates "
        "at each time; valid time and predicted trust horizon: medians over the test trajectories at the 10% "
        f"error threshold. Targets: coverage {TARGET_COVERAGE[0]:.0%}-{TARGET_COVERAGE[1]:.0%}, predicted trust "
        f"horizon within {TARGET_HORIZON:.0%} of the valid time, rank correlation >= {TARGET_RANK}, K = 5 in <= "
        f"{TARGET_TIME:g}x the time of K = 1; \"(miss)\" marks a value outside its target.",
        "",
        "| data | K | train s | cover @ 1x | cover @ 2x | cover @ 4x | predicted trust horizon | valid time "
        "(predicted / actual) | rank correlation |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    table = "\n".join(lines)
    print(table)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1)
    for (case, curve), color in zip(curves.items(), plt.cm.tab10.colors, strict=False):
        ax.plot(curve["raw"]["levels"], curve["raw"]["observed"], color=color, ls=":")
        ax.plot(curve["recalibrated"]["levels"], curve["recalibrated"]["observed"], color=color, marker="o", ms=3,
                label=case)
    ax.set(xlabel="nominal coverage", ylabel="observed coverage (test states)",
           title=f"K = {5 if 5 in sizes else max(sizes)}: recalibrated (solid), raw (dotted)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_outputs(args, "bench_uncertainty_quick" if args.quick else "bench_uncertainty", "Trust without the truth",
                  table, raw, fig)


if __name__ == "__main__":
    main()

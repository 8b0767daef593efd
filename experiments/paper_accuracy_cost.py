"""Accuracy for cost: what an adaptive solver's tolerance buys on a trained pendulum NeuralODE.

A NeuralODE (``build_model("node", data)``, the defaults) is trained on pendulum trajectories
(``TrajectoryDataset.generate(Pendulum(), 256, t_end=10, dt=0.1, seed)``, train on [0, 5]) with
``physode.fit`` for about 60 s (or loaded with ``--checkpoint``). Its weights are then run in float64
(a copy built with ``dtype="float64"``): float32 rounding (~1e-7) would otherwise floor the solver
error and make tolerances below ~1e-7 meaningless. The sweep sets ``rtol = atol`` from 1e-1 to 1e-9
with dopri5 and rolls the model out from the test split's clean initial states over the data's whole
grid (t = 0..10, 101 output times, one batched solve, every trajectory meeting the tolerance on its
own), and measures:

* NFE: ``model.nfe_forward``, field evaluations of the batched solve;
* wall time of the rollout (median of a few repeats, no_grad);
* error vs truth: relative L2 over the trajectory against ``dataset.test.x_clean`` (the model's own
  error plus the solver's), median over test trajectories;
* solver error: the same against the *same model* solved with dopri8 at rtol = atol = 1e-12 (the
  reference; its own error is estimated as its distance from the 1e-11 solve), median and max over
  trajectories: the solver's contribution alone.

physode's solver steps exactly onto every output time (see physode.integrate), so a rollout over 100
output intervals takes at least one step, about 7 evaluations, per interval whatever the tolerance.
The last two columns show the solver's adaptivity without that floor: the same solve asked only for the
final state (``t = [0, 10]``), its NFE and its final-state solver error (max over trajectories).
One torch thread throughout (these tensors are small). ``--quick``: 64 trajectories, 200 training
steps (a few seconds), one timing repeat. Training by time limit (full mode) stops after however many
steps fit in 60 s on the machine at hand, so the model, and the numbers, vary a little between runs.
Writes experiments/results/paper_accuracy_cost.{md,json} and figures/paper_accuracy_cost.png
(``_quick`` in --quick mode).

    python experiments/paper_accuracy_cost.py [--quick] [--seed 0] [--checkpoint model.pt]
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from _common import experiment_parser, fit, write_outputs

import physode
from physode.models import ContinuousModel
from physode.train import relative_errors

TOLERANCES = [10.0**-k for k in range(1, 10)]
REFERENCE = {"solver": "dopri8", "rtol": 1e-12}


def float64_copy(model: ContinuousModel) -> ContinuousModel:
    """The same model (configuration and weights, normalisation included) computing in float64."""
    copy = type(model)(**{**model.config(), "dtype": "float64"})
    copy.load_state_dict(model.state_dict())
    return copy.eval()


def solve(model: ContinuousModel, x0, times, solver: str, tol: float, repeats: int = 1):
    """``(trajectories (N, T, D), NFE, median seconds)`` of ``model.rollout`` at ``rtol = atol = tol``."""
    model.solver, model.rtol, model.atol = solver, tol, tol
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            pred = model.rollout(x0, times)
        seconds.append(time.perf_counter() - start)
    return pred, model.nfe_forward, sorted(seconds)[len(seconds) // 2]


def trained_model(args, data):
    """``(model, training summary)``: loaded from ``--checkpoint`` or trained here."""
    if args.checkpoint is not None:
        model = physode.load_model(args.checkpoint)
        return model, {"checkpoint": str(args.checkpoint), **(model.training_info or {})}
    torch.manual_seed(args.seed)
    model = physode.build_model("node", data)
    config = physode.TrainConfig(time_limit=args.train_seconds, seed=args.seed)
    if args.quick:  # a short schedule (by steps: the same model on every run) validated often enough to keep its best
        config = physode.TrainConfig(steps=200, val_every=25, time_limit=args.train_seconds, seed=args.seed)
    result = fit(model, data, config)
    return model, {"steps": result.steps, "seconds": result.seconds, "best_val_error": result.best_val_error,
                   "stopped": result.stopped}


def figure(rows, tols):
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    (nfe_ax, time_ax), (err_ax, wp_ax) = axes
    nfe_ax.loglog(tols, [r["nfe"] for r in rows], "o-", label="rollout on the data's grid (101 outputs)")
    nfe_ax.loglog(tols, [r["nfe_final_only"] for r in rows], "s--", label="final state only")
    nfe_ax.set(ylabel="NFE (field evaluations)", title="Cost: evaluations")
    time_ax.loglog(tols, [1e3 * r["seconds"] for r in rows], "o-")
    time_ax.set(ylabel="wall time of the rollout (ms)", title="Cost: wall time")
    err_ax.loglog(tols, [r["error_vs_truth"] for r in rows], "o-", label="vs truth (model + solver), median")
    err_ax.loglog(tols, [r["solver_error"] for r in rows], "s-", label="solver error (vs tight solve), median")
    err_ax.loglog(tols, [r["solver_error_max"] for r in rows], "s:", label="solver error, max")
    err_ax.loglog(tols, [r["final_solver_error_max"] for r in rows], "^--", label="final state only, solver error, max")
    err_ax.loglog(tols, tols, color="gray", lw=0.8, label="= tolerance")
    err_ax.set(ylabel="relative L2 error", title="Accuracy")
    for ax in (nfe_ax, time_ax, err_ax):
        ax.set_xlabel("rtol = atol (dopri5)")
        ax.invert_xaxis()  # tighter (more costly) to the right
    wp_ax.loglog([r["nfe"] for r in rows], [r["solver_error"] for r in rows], "s-", label="solver error, median")
    wp_ax.loglog([r["nfe"] for r in rows], [r["error_vs_truth"] for r in rows], "o-", label="vs truth, median")
    wp_ax.set(xlabel="NFE", ylabel="relative L2 error", title="Work-precision")
    for ax in axes.flat:
        ax.grid(True, which="both", alpha=0.3)
        if ax is not time_ax:
            ax.legend(fontsize=7)
    fig.suptitle("Pendulum NeuralODE: accuracy for cost of dopri5's tolerance")
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = experiment_parser(__doc__, "64 trajectories, 200 training steps (a few seconds), one timing repeat (for the tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the weights and the training windows")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained continuous model (.pt) instead of training")
    parser.add_argument("--train-seconds", type=float, default=None, help="training time limit (default 60 s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small tensors: a second thread only waits, badly so when other jobs share the CPU
    n, repeats = (64, 1) if args.quick else (256, 3)
    args.train_seconds = args.train_seconds or (30.0 if args.quick else 60.0)  # quick: 200 steps, the limit a safety net
    name = "paper_accuracy_cost_quick" if args.quick else "paper_accuracy_cost"

    system = physode.Pendulum()
    if args.checkpoint is not None:
        spec = getattr(physode.load_model(args.checkpoint), "system_spec", None)
        system = physode.system_from_spec(spec) if spec else system
    data = physode.TrajectoryDataset.generate(system, n, t_end=10.0, dt=0.1, seed=args.seed)
    model, training = trained_model(args, data)
    if not isinstance(model, ContinuousModel):
        raise SystemExit(f"--checkpoint holds a {type(model).__name__}; this sweep needs a continuous model (node, anode, hnn)")
    model = float64_copy(model)
    test = data.test
    x0, times, truth = test.x_clean[:, 0], test.times, test.x_clean
    ends = times[:, [0, -1]]

    reference, ref_nfe, ref_seconds = solve(model, x0, times, REFERENCE["solver"], REFERENCE["rtol"])
    looser, _, _ = solve(model, x0, times, REFERENCE["solver"], 10 * REFERENCE["rtol"])
    reference_error = float(relative_errors(looser, reference).max())
    ref_final, _, _ = solve(model, x0, ends, REFERENCE["solver"], REFERENCE["rtol"])

    rows = []
    for tol in TOLERANCES:
        pred, nfe, seconds = solve(model, x0, times, "dopri5", tol, repeats)
        final, nfe_final, _ = solve(model, x0, ends, "dopri5", tol)
        solver_errors = relative_errors(pred, reference)
        final_errors = (final[:, -1] - ref_final[:, -1]).norm(dim=-1) / ref_final[:, -1].norm(dim=-1)
        rows.append({
            "tol": tol, "nfe": nfe, "seconds": seconds,
            "error_vs_truth": float(relative_errors(pred, truth).median()),
            "solver_error": float(solver_errors.median()), "solver_error_max": float(solver_errors.max()),
            "nfe_final_only": nfe_final, "final_solver_error_max": float(final_errors.max()),
        })
        print(f"rtol = atol = {tol:.0e}: NFE {nfe}, {1e3 * seconds:.1f} ms, solver error {rows[-1]['solver_error']:.2e}",
              flush=True)

    model_error = float(relative_errors(reference, truth).median())
    trained = f"loaded from {args.checkpoint}"
    if args.checkpoint is None:
        trained = (f"trained {training['steps']} steps in {training['seconds']:.0f} s "
                   f"(best val error {training['best_val_error']:.3g})")
    lines = [
        f"{data.summary()}; {type(model).__name__} ({model.num_parameters} parameters) {trained}, run in float64. "
        f"Rollouts of the {len(x0)} test trajectories from their clean initial states over t = 0..10 "
        f"({data.n_times} output times), one batched dopri5 solve per tolerance; torch threads {torch.get_num_threads()}.",
        "",
        "| rtol = atol | NFE | wall time (ms) | error vs truth (median) | solver error (median) | solver error (max) | "
        "NFE, final state only | final-state solver error (max) |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {r['tol']:.0e} | {r['nfe']} | {1e3 * r['seconds']:.1f} | {r['error_vs_truth']:.2e} | {r['solver_error']:.2e} | "
          f"{r['solver_error_max']:.2e} | {r['nfe_final_only']} | {r['final_solver_error_max']:.2e} |" for r in rows),
        "",
        f"- Reference: the same model, dopri8 at rtol = atol = 1e-12 (NFE {ref_nfe}, {ref_seconds:.2f} s); its distance from "
        f"the 1e-11 solve, the floor below which solver errors are not resolved: {reference_error:.1e} (max).",
        f"- The model's own error (reference vs truth, median): {model_error:.2e}: tolerances whose solver error is far "
        "below it buy nothing in accuracy against the real system.",
        f"- From rtol 1e-1 to 1e-9 the rollout's NFE grows {rows[-1]['nfe'] / rows[0]['nfe']:.1f}x and its wall time "
        f"{rows[-1]['seconds'] / rows[0]['seconds']:.1f}x while the median solver error falls "
        f"{rows[0]['solver_error'] / max(rows[-1]['solver_error'], 1e-300):.3g}x. At the loosest tolerance the rollout still "
        f"takes {rows[0]['nfe'] / (data.n_times - 1):.1f} evaluations per output interval: the solver steps onto each of the "
        f"{data.n_times - 1} output times, which caps the step at 0.1 and keeps loose tolerances more accurate than asked. "
        f"Asked only for the final state, NFE grows {rows[-1]['nfe_final_only'] / rows[0]['nfe_final_only']:.0f}x "
        f"(from {rows[0]['nfe_final_only']}) over the sweep.",
    ]
    report = "\n".join(lines)
    print(report)
    raw = {"dataset": data.summary(), "seed": args.seed, "training": training, "model": type(model).__name__,
           "reference": {**REFERENCE, "nfe": ref_nfe, "seconds": ref_seconds, "error_vs_1e-11": reference_error},
           "model_error_median": model_error, "rows": rows}
    write_outputs(args, name, "Accuracy for cost: the solver tolerance of a trained NeuralODE", report, raw,
                  figure(rows, TOLERANCES))


if __name__ == "__main__":
    main()

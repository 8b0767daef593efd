"""Augmented neural ODEs (Dupont, Doucet & Teh 2019): a map a plain ODE flow cannot learn, and what the detour costs.

Two experiments of the paper, each with a plain neural ODE (``physode.ODEBlock``), an augmented one
(``ODEBlock(augment_dim=...)``: the flow runs in ``D + augment_dim`` dimensions from ``(x, 0)``) and a
ResNet (a stack of discrete residual blocks ``z + f(z)``):

1. **The crossing map** ``g(1) = -1, g(-1) = 1`` in 1-D, learned by the flow alone (no readout: the
   output is the ODE state at t = 1, the first coordinate of it for the augmented model, the last
   layer's output for the ResNet), full batch, MSE, Adam at lr 3e-2. An ODE flow preserves the order of 1-D states
   (trajectories cannot cross), so ``phi(1) >= phi(-1)`` and the MSE
   ``((phi(1) + 1)^2 + (phi(-1) - 1)^2) / 2`` is at least 1, reached when both points meet at 0. The
   final MSE of the ODE models is also measured with a tight solver (rtol = atol = 1e-7) on the same
   weights, so that a solver error cannot pass for a crossing. Gradients here are by direct backprop
   through dopri5 (the paper code's default; no backward NFE): with the adjoint, the plain ODE's
   backward solve, which re-integrates the state backwards through the strongly contracting flow the
   model learns here, blew up to inf/NaN after a few hundred iterations (seed 0).
2. **The annulus** in 2-D: class -1 uniform on the disk ``r < 0.5``, class +1 uniform on the ring
   ``1 <= r <= 1.5`` (500 + 1500 points, as in the paper's code; a fresh test set of the same size),
   a linear readout after the flow, the paper's loss (Huber / SmoothL1 on the +-1 labels), Adam at
   lr 1e-3, batch 64, 30 epochs. Accuracy is that of the sign of the output. Both ODE models use
   dopri5 at rtol = atol = 1e-3 with adjoint gradients (the same for both), so "NFE per iteration" is
   forward + backward (adjoint) evaluations of the field, as counted by ``ODEBlock``.

The fields are the paper's: an MLP ``[z, t] -> 32 -> 32 -> dim`` with ReLU (16 hidden units for the
1-D task); the ResNet has 5 blocks ``z + W2 relu(W1 z)`` of the same width. Every random choice
(data, initial weights, batches) follows ``--seed``; each model of a task starts from
``torch.manual_seed(seed)`` and sees the same batches. Writes
experiments/results/paper_augmentation.{md,json} and figures/paper_augmentation_{crossing,annulus}.png
(``*_quick`` names with ``--quick``).

    python experiments/paper_augmentation.py [--quick] [--seed 0] [--augment-dim 1]
"""

from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import physode
from _common import experiment_parser, write_outputs
from physode.files import atomic_write

SOLVER = {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-3}
TIGHT = {"solver": "dopri5", "rtol": 1e-7, "atol": 1e-7, "adjoint": False}
MODELS = ("neural ODE", "augmented ODE", "ResNet")
COLOURS = {"neural ODE": "tab:red", "augmented ODE": "tab:blue", "ResNet": "tab:green"}


class Field(nn.Module):
    """``f(t, z)``: an MLP on ``[z, t]`` with two hidden ReLU layers (the paper's ODEFunc, time-dependent)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, t, z):
        return self.net(torch.cat([z, t.to(z).reshape(1, 1).expand(z.shape[0], 1)], dim=1))


class ResNet(nn.Module):
    """``n_blocks`` residual blocks ``z + W2 relu(W1 z + b1) + b2``, each with its own weights."""

    def __init__(self, dim: int, hidden: int, n_blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
                                    for _ in range(n_blocks))

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        """States ``(n_blocks + 1, N, dim)`` after 0, 1, ... blocks."""
        states = [x]
        for block in self.blocks:
            states.append(states[-1] + block(states[-1]))
        return torch.stack(states)

    def forward(self, x):
        return self.layers(x)[-1]


class Net(nn.Module):
    """A body (ODE block or ResNet) and then a linear readout, or (``readout=False``) the first coordinate."""

    def __init__(self, body: nn.Module, feature_dim: int, readout: bool):
        super().__init__()
        self.body = body
        self.readout = nn.Linear(feature_dim, 1) if readout else None

    @property
    def block(self) -> physode.ODEBlock | None:
        return self.body if isinstance(self.body, physode.ODEBlock) else None

    def forward(self, x):
        z = self.body(x)
        return self.readout(z) if self.readout is not None else z[:, :1]


def build(name: str, dim: int, hidden: int, augment_dim: int, readout: bool, seed: int, adjoint: bool) -> Net:
    torch.manual_seed(seed)
    if name == "ResNet":
        return Net(ResNet(dim, hidden, n_blocks=5), dim, readout)
    aug = augment_dim if name == "augmented ODE" else 0
    return Net(physode.ODEBlock(Field(dim + aug, hidden), augment_dim=aug, adjoint=adjoint, **SOLVER), dim + aug, readout)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tight_copy(net: Net) -> Net:
    """The same weights under a tight solver (a new ODEBlock around the same field module)."""
    block = net.block
    tight = physode.ODEBlock(block.field.func, t_end=block.t_end, augment_dim=block.augment_dim, **TIGHT)
    copy = Net(tight, 1, readout=False)
    copy.readout = net.readout
    return copy


def train(net: Net, x, y, loss_fn, iterations: int, lr: float, batch: int | None, seed: int, classify: bool) -> dict:
    """Adam; per iteration the batch loss, (batch) accuracy and the field evaluations of the forward and backward pass."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    block = net.block
    curve = {"loss": [], "accuracy": [], "nfe_forward": [], "nfe_backward": []}
    start = time.perf_counter()
    order, cursor = torch.randperm(len(x), generator=gen), 0
    for _ in range(iterations):
        if batch is None:
            xb, yb = x, y
        else:  # epochs of shuffled batches, as a DataLoader with shuffle=True would give
            if cursor + batch > len(x):
                order, cursor = torch.randperm(len(x), generator=gen), 0
            rows = order[cursor: cursor + batch]
            cursor += batch
            xb, yb = x[rows], y[rows]
        pred = net(xb)
        nfe_forward = block.nfe_forward if block is not None else 0
        loss = loss_fn(pred, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve["loss"].append(float(f"{loss.item():.6g}"))  # 6 digits keep the JSON small
        curve["accuracy"].append(float((torch.sign(pred) == yb).float().mean()) if classify else None)
        curve["nfe_forward"].append(nfe_forward)
        curve["nfe_backward"].append(block.nfe_backward if block is not None else 0)
    return {"curve": curve, "train_seconds": time.perf_counter() - start}


def end_nfe(curve: dict) -> tuple[float, float]:
    """Mean forward and backward NFE per iteration over the last 10% of training."""
    k = max(1, len(curve["nfe_forward"]) // 10)
    return float(np.mean(curve["nfe_forward"][-k:])), float(np.mean(curve["nfe_backward"][-k:]))


# ---------------------------------------------------------------------------------------------- crossing


def crossing(args, iterations: int) -> tuple[dict, plt.Figure]:
    x = torch.tensor([[1.0], [-1.0]])
    y = -x
    mse = nn.MSELoss()
    results, nets = {}, {}
    for name in MODELS:
        net = build(name, 1, 16, args.augment_dim, readout=False, seed=args.seed, adjoint=False)
        run = train(net, x, y, mse, iterations, lr=3e-2, batch=None, seed=args.seed, classify=False)
        with torch.no_grad():
            pred = net(x)
            row = {"mse": float(mse(pred, y)), "prediction": pred.flatten().tolist()}
            if net.block is not None:
                tight_pred = tight_copy(net)(x)
                row["mse_tight_solver"] = float(mse(tight_pred, y))
                row["prediction_tight_solver"] = tight_pred.flatten().tolist()
        fwd, bwd = end_nfe(run["curve"])
        results[name] = {**row, "parameters": n_parameters(net), "nfe_forward_end": fwd, "nfe_backward_end": bwd,
                         "iterations": iterations, **run}
        nets[name] = net
        print(f"crossing, {name}: MSE {row['mse']:.4f} after {iterations} iterations ({run['train_seconds']:.1f} s)",
              flush=True)
    return results, crossing_figure(nets, results)


def crossing_figure(nets: dict, results: dict) -> plt.Figure:
    starts = torch.linspace(-1.5, 1.5, 13).reshape(-1, 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, name in zip(axes, MODELS, strict=True):
        net = nets[name]
        with torch.no_grad():
            if net.block is not None:
                times = torch.linspace(0.0, 1.0, 101)
                paths = net.block.trajectory(starts, times)[..., 0]  # (T, N): the first coordinate
                depth, xlabel = times, "t"
            else:
                paths = net.body.layers(starts)[..., 0]  # (L + 1, N)
                depth, xlabel = torch.arange(len(paths)), "layer (depth)"
        for k, start in enumerate(starts.flatten().tolist()):
            if abs(abs(start) - 1.0) < 1e-6:
                colour = "tab:orange" if start > 0 else "tab:purple"
                marker = "o-" if net.block is None else "-"
                ax.plot(depth, paths[:, k], marker, color=colour, lw=2.2, ms=4, label=f"x = {start:+.0f} (target {-start:+.0f})")
            else:
                ax.plot(depth, paths[:, k], "-" if net.block is not None else ".-", color="0.7", lw=0.8, ms=3)
        end = depth[-1]
        ax.scatter([end, end], [-1.0, 1.0], marker="x", s=80, color="k", zorder=5)
        title = f"{name}: MSE {results[name]['mse']:.3f}"
        if name == "augmented ODE":
            title += f"\n(first coordinate of a {1 + net.block.augment_dim}-D flow)"
        ax.set(xlabel=xlabel, title=title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("state")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("The crossing map g(1) = -1, g(-1) = 1 (x: targets; grey: other starting points)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- annulus


def annulus(n_inner: int, n_outer: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Points uniform (in area) on the disk r < 0.5 (label -1) and on the ring 1 <= r <= 1.5 (label +1)."""

    def ring(n, r0, r1):
        r = torch.sqrt(r0**2 + (r1**2 - r0**2) * torch.rand(n, generator=gen))
        angle = 2 * math.pi * torch.rand(n, generator=gen)
        return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1)

    x = torch.cat([ring(n_inner, 0.0, 0.5), ring(n_outer, 1.0, 1.5)])
    y = torch.cat([-torch.ones(n_inner, 1), torch.ones(n_outer, 1)])
    return x, y


def first_reaching(values: list, level: float, window: int = 20) -> int | None:
    """First iteration (1-based) at which the mean of the last ``window`` values reaches ``level``."""
    run = np.convolve(np.asarray(values, float), np.ones(window) / window, mode="valid")
    hits = np.nonzero(run >= level)[0]
    return int(hits[0]) + window if len(hits) else None


def annulus_experiment(args, n_inner: int, n_outer: int, epochs: int) -> tuple[dict, plt.Figure]:
    gen = torch.Generator().manual_seed(args.seed)
    x, y = annulus(n_inner, n_outer, gen)
    x_test, y_test = annulus(n_inner, n_outer, gen)
    batch = 64
    iterations = epochs * math.ceil(len(x) / batch)
    huber = nn.SmoothL1Loss()
    results, nets = {}, {}
    for name in MODELS:
        net = build(name, 2, 32, args.augment_dim, readout=True, seed=args.seed, adjoint=True)
        run = train(net, x, y, huber, iterations, lr=1e-3, batch=batch, seed=args.seed, classify=True)
        with torch.no_grad():
            pred, pred_test = net(x), net(x_test)
        fwd, bwd = end_nfe(run["curve"])
        curve = run["curve"]
        total = np.add(curve["nfe_forward"], curve["nfe_backward"])
        reach = first_reaching(curve["accuracy"], 0.99)
        results[name] = {
            "loss": float(huber(pred, y)),
            "train_accuracy": float((torch.sign(pred) == y).float().mean()),
            "test_accuracy": float((torch.sign(pred_test) == y_test).float().mean()),
            "parameters": n_parameters(net), "nfe_forward_end": fwd, "nfe_backward_end": bwd,
            "nfe_total_training": int(total.sum()),
            "iterations_to_99": reach, "nfe_to_99": int(total[:reach].sum()) if reach else None,
            "iterations": iterations, **run,
        }
        nets[name] = net
        print(f"annulus, {name}: test accuracy {results[name]['test_accuracy']:.3f}, NFE/iteration at the end "
              f"{fwd:.0f} + {bwd:.0f} ({run['train_seconds']:.1f} s)", flush=True)
    return results, annulus_figure(nets, results, x, y)


def annulus_figure(nets: dict, results: dict, x, y) -> plt.Figure:
    fig, axes = plt.subplots(3, 3, figsize=(15, 14), layout="constrained")
    grid = torch.linspace(-2.0, 2.0, 121)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    plane = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    inner = y.flatten() < 0
    for col, name in enumerate(MODELS):
        net = nets[name]
        with torch.no_grad():
            out = net(plane).reshape(gx.shape)
            features = net.body(x)
        ax = axes[0, col]
        levels = np.linspace(-2.0, 2.0, 21)
        shade = ax.contourf(gx, gy, out.clamp(-2, 2), levels=levels, cmap="RdBu_r", alpha=0.8)
        ax.contour(gx, gy, out, levels=[0.0], colors="k", linewidths=1.2)
        ax.scatter(*x[inner].T, s=3, color="navy")
        ax.scatter(*x[~inner].T, s=3, color="darkred")
        ax.set(title=f"{name}: test accuracy {results[name]['test_accuracy']:.3f}", xlabel="x1", ylabel="x2", aspect="equal")
        # Where the flow / the blocks send the points, seen along the readout: x axis = the output w.z + b,
        # y axis = the main direction of the features orthogonal to w (a 2-D view of the 2-D or 3-D features).
        w = net.readout.weight.detach().flatten()
        w = w / w.norm()
        rest = features - (features @ w)[:, None] * w
        direction = torch.linalg.svd(rest - rest.mean(0), full_matrices=False).Vh[0]
        with torch.no_grad():
            along = net.readout(features).flatten()
        across = rest @ direction
        ax = axes[1, col]
        ax.scatter(along[inner], across[inner], s=3, color="navy", label="r < 0.5 (class -1)")
        ax.scatter(along[~inner], across[~inner], s=3, color="darkred", label="1 <= r <= 1.5 (class +1)")
        ax.axvline(0.0, color="k", lw=1)
        dim = features.shape[1]
        ax.set(title=f"{name}: the {dim}-D features at the end", xlabel="readout w.z + b (decision at 0)",
               ylabel="feature direction orthogonal to w")
        ax.legend(fontsize=8, markerscale=3)
    fig.colorbar(shade, ax=axes[0, :].tolist(), shrink=0.8, label="model output")
    smooth = 20
    for name in MODELS:
        curve = results[name]["curve"]
        kernel = np.ones(smooth) / smooth
        iters = np.arange(smooth, len(curve["loss"]) + 1)
        axes[2, 0].semilogy(iters, np.convolve(curve["loss"], kernel, "valid"), color=COLOURS[name], label=name)
        axes[2, 1].plot(iters, np.convolve(curve["accuracy"], kernel, "valid"), color=COLOURS[name], label=name)
        if name != "ResNet":
            total = np.add(curve["nfe_forward"], curve["nfe_backward"])
            axes[2, 2].plot(np.arange(1, len(total) + 1), total, color=COLOURS[name], lw=0.6, alpha=0.5)
            axes[2, 2].plot(iters, np.convolve(total, kernel, "valid"), color=COLOURS[name], lw=1.8,
                            label=f"{name}, forward + backward")
            axes[2, 2].plot(iters, np.convolve(curve["nfe_forward"], kernel, "valid"), color=COLOURS[name], lw=1.2,
                            ls="--", label=f"{name}, forward")
    axes[2, 0].set(xlabel="iteration", ylabel="training loss (Huber, batch)", title=f"loss ({smooth}-iteration mean)")
    axes[2, 1].set(xlabel="iteration", ylabel="batch accuracy", title=f"accuracy ({smooth}-iteration mean)", ylim=(0.4, 1.02))
    axes[2, 2].set(xlabel="iteration", ylabel="field evaluations per iteration",
                   title="NFE (dopri5, rtol = atol = 1e-3, adjoint)")
    for ax in axes[2]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("The annulus: class -1 inside r = 0.5, class +1 on 1 <= r <= 1.5, a linear readout after the flow")
    return fig


# ---------------------------------------------------------------------------------------------- report


def report(cross: dict, ring: dict, args, setup: str) -> str:
    lines = [setup, "", "| task | model | parameters | final loss | test accuracy | NFE / iteration at the end (fwd + bwd) "
             "| train time (s) |", "|---|---|---|---|---|---|---|"]
    for name in MODELS:
        r = cross[name]
        nfe = f"{r['nfe_forward_end']:.0f} + {r['nfe_backward_end']:.0f}" if name != "ResNet" else "-"
        lines.append(f"| crossing | {name} | {r['parameters']} | MSE {r['mse']:.4f} | - | {nfe} | {r['train_seconds']:.1f} |")
    for name in MODELS:
        r = ring[name]
        nfe = f"{r['nfe_forward_end']:.0f} + {r['nfe_backward_end']:.0f}" if name != "ResNet" else "-"
        lines.append(f"| annulus | {name} | {r['parameters']} | Huber {r['loss']:.4f} | {r['test_accuracy']:.3f} | {nfe} "
                     f"| {r['train_seconds']:.1f} |")
    node, anode = cross["neural ODE"], cross["augmented ODE"]
    lines += [
        "",
        f"Crossing map, same weights under a tight solver (rtol = atol = 1e-7): neural ODE MSE {node['mse_tight_solver']:.4f} "
        f"(g(1) = {node['prediction_tight_solver'][0]:+.3f}, g(-1) = {node['prediction_tight_solver'][1]:+.3f}; "
        f"theory: >= 1), augmented ODE MSE {anode['mse_tight_solver']:.2e}.",
    ]
    for name in ("neural ODE", "augmented ODE"):
        r = ring[name]
        reach = (f"reached 99% batch accuracy (20-iteration mean) at iteration {r['iterations_to_99']} after "
                 f"{r['nfe_to_99']} field evaluations" if r["iterations_to_99"] else "never reached 99% batch accuracy "
                 "(20-iteration mean)")
        lines.append(f"Annulus, {name}: {reach}; {r['nfe_total_training']} field evaluations over all "
                     f"{r['iterations']} iterations; train accuracy {r['train_accuracy']:.3f}.")
    return "\n".join(lines)


def main(argv=None):
    parser = experiment_parser(__doc__, "fewer iterations and points (for tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the initial weights and the batches")
    parser.add_argument("--augment-dim", type=int, default=1, help="zero channels the augmented ODE adds (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation (40x slower on a busy 2-core machine)
    if args.augment_dim < 1:
        parser.error(f"--augment-dim must be at least 1, got {args.augment_dim}")
    suffix = "_quick" if args.quick else ""
    cross_iterations, (n_inner, n_outer, epochs) = (150, (200, 600, 10)) if args.quick else (500, (500, 1500, 30))

    cross, cross_fig = crossing(args, cross_iterations)
    ring, ring_fig = annulus_experiment(args, n_inner, n_outer, epochs)
    setup = (f"seed {args.seed}, augment_dim {args.augment_dim}, torch threads {torch.get_num_threads()}. All ODE models: "
             "dopri5 at rtol = atol = 1e-3. Crossing: "
             f"{cross_iterations} full-batch Adam iterations at lr 3e-2, MSE, direct backprop through the solver (so no "
             f"backward NFE). Annulus: {n_inner} + {n_outer} points, {epochs} epochs of batch 64 "
             f"({ring['ResNet']['iterations']} iterations), Adam lr 1e-3, Huber loss, adjoint gradients. NFE at the end: "
             "mean over the last 10% of iterations.")
    table = report(cross, ring, args, setup)
    print(table)
    raw = {"seed": args.seed, "augment_dim": args.augment_dim, "quick": args.quick, "crossing": cross, "annulus": ring}
    write_outputs(args, f"paper_augmentation{suffix}", "Augmented neural ODEs (Dupont et al. 2019): crossing map and annulus",
                  table, raw, cross_fig, figure_name=f"paper_augmentation_crossing{suffix}")
    with atomic_write(args.figures / f"paper_augmentation_annulus{suffix}.png", "figure") as handle:
        ring_fig.savefig(handle, format="png", dpi=120)
    plt.close("all")


if __name__ == "__main__":
    main()

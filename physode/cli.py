"""The ``physode`` command line: a thin layer over the Python API.

A :class:`~physode.PhysodeError` becomes one line on stderr and exit code 2, with no traceback;
so does a usage error. Ctrl-C and SIGTERM stop a command cleanly (training checkpoints first) with one line
that says how to continue, and exit codes 130 and 143.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
import warnings

import torch

from . import __version__
from .collect import POLICIES, collect
from .data import TrajectoryDataset
from .devices import DEVICES
from .distributed import World, launched_processes, process_group
from .errors import PhysodeError, PhysodeWarning
from .evaluate import REFERENCES
from .simulate import DEFAULT_ATOL, DEFAULT_METHOD, DEFAULT_RTOL, METHODS, RADAU_ATOL, RADAU_RTOL
from .job import PRESETS, evaluate_models, redraw, run_compare
from .models import MODELS
from .signals import STOPPED, Terminated, exit_code, terminate_raises
from .systems import import_system, known_names, resolve_system
from .train import TrainConfig, build_model, fit


SYSTEM_HELP = (f"a system: one of {', '.join(known_names())}, a system registered by an installed package, or your own "
               "named by import path, module:Class (its folder on PYTHONPATH)")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        raise PhysodeError(f"{self.prog}: {message} (see --help)")


def _parameter(text: str):
    """``NAME=VALUE`` with VALUE a Python literal (number, list, None)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"value of {name} must be a number or list, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="physode", description="Learn physical dynamics with neural ODEs.")
    parser.add_argument("--version", action="version", version=f"physode {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sim = commands.add_parser("simulate", help="simulate a system and write a trajectory dataset (.npz)")
    sim.add_argument("system", help=SYSTEM_HELP)
    sim.add_argument("--n", type=int, default=512, help="number of trajectories (default 512)")
    sim.add_argument("--t-end", type=float, default=10.0, help="end time of every trajectory (default 10)")
    sim.add_argument("--dt", type=float, default=0.1, help="time step of the grid (default 0.1)")
    sim.add_argument("--t-train", type=float, default=None, help="training horizon (default t-end / 2)")
    sim.add_argument("--irregular", action="store_true", help="one random sorted time grid per trajectory")
    sim.add_argument("--noise", type=float, default=0.0, help="relative observation noise std (default 0)")
    sim.add_argument("--controls", choices=["random"], default=None, help="random piecewise-constant controls")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--param", type=_parameter, action="append", default=[], metavar="NAME=VALUE",
                     help="system parameter, repeatable, e.g. --param damping=0.1")
    sim.add_argument("--method", default=None,
                     help=f"solver, one of {', '.join(METHODS)} (default {DEFAULT_METHOD}; radau for a stiff system)")
    sim.add_argument("--rtol", type=float, default=None,
                     help=f"relative tolerance (default {DEFAULT_RTOL:g}; radau: {RADAU_RTOL:g})")
    sim.add_argument("--atol", type=float, default=None,
                     help=f"absolute tolerance (default {DEFAULT_ATOL:g}; radau: {RADAU_ATOL:g})")
    sim.add_argument("--step-size", type=float, default=None, help="step of fixed-step and symplectic methods")
    sim.add_argument("-o", "--out", required=True, help="output .npz file")
    _device_option(sim)
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(run=_simulate)

    train = commands.add_parser("train", help="train a model on a dataset; writes model.pt, checkpoint.pt, metrics.jsonl")
    train.add_argument("--data", required=True, help="dataset (.npz) from `physode simulate`, `import` or `collect`")
    train.add_argument("--model", choices=sorted(MODELS), default="node", help=f"{', '.join(MODELS)} (default node)")
    train.add_argument("--out", required=True, help="run folder, e.g. runs/pendulum-node")
    train.add_argument("--steps", type=int, default=TrainConfig.steps, help=f"optimiser steps (default {TrainConfig.steps})")
    train.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    train.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                       help=f"windows per step, over all processes under torchrun (default {TrainConfig.batch_size})")
    train.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the windows (default 0)")
    train.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every,
                       help=f"steps between checkpoints (default {TrainConfig.checkpoint_every})")
    train.add_argument("--val-every", type=int, default=TrainConfig.val_every,
                       help=f"steps between validations and metrics lines (default {TrainConfig.val_every})")
    train.add_argument("--ensemble", type=int, default=None, metavar="K",
                       help="train an ensemble of K models (distinct initial weights, one batched run; default: "
                            "one model)")
    train.add_argument("--no-bootstrap", action="store_true",
                       help="with --ensemble: every member trains on all training trajectories (default: each on its "
                            "own bootstrap resample of them, drawn with --seed)")
    train.add_argument("--no-warm-start", action="store_true",
                       help="no derivative-matching warm start: trajectory matching from the initial weights")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (same settings)")
    train.add_argument("--overwrite", action="store_true", help="replace a run that OUT already holds")
    _device_option(train)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)

    comp = commands.add_parser("compare", help="the main job: simulate (or take --data), train every model, evaluate, draw")
    comp.add_argument("system", nargs="?", default=None, help=SYSTEM_HELP + "; or leave it out and give --data")
    comp.add_argument("--data", default=None, metavar="FILE",
                      help="a dataset (.npz, e.g. from `physode import` or `physode collect`) to train and score on "
                           "instead of simulating a system")
    comp.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="quick (minutes) or full (the README's figures)")
    comp.add_argument("--out", default=None, help="run folder (default runs/SYSTEM-TIMESTAMP); existing stages are reused")
    comp.add_argument("--models", default=None, help=f"comma-separated subset of {','.join(MODELS)} (default: every model "
                      "that can represent the system)")
    comp.add_argument("--seed", type=int, default=0, help="seed of data, weights and windows (default 0)")
    comp.add_argument("--ensemble", type=int, default=None, metavar="K",
                      help="train each model as an ensemble of K (K >= 2: the report adds prediction intervals, their "
                           "coverage and the predicted trust horizon; default: one model each)")
    _evaluation_options(comp)
    _device_option(comp)
    comp.add_argument("--quiet", action="store_true", help="no progress bars")
    comp.set_defaults(run=_compare)

    ev = commands.add_parser("evaluate", help="score trained models on a dataset: report and figures")
    ev.add_argument("models", nargs="+", metavar="MODEL",
                    help="model.pt files, or the run folders holding them; each model is named after its folder")
    ev.add_argument("--data", required=True, help="dataset (.npz) of the models' system (from `physode simulate`), or "
                    "recorded data (from `physode import` or `collect`), scored against its test trajectories")
    ev.add_argument("--out", required=True, help="folder for report.json, report.md and figures/")
    _system_option(ev)
    _evaluation_options(ev)
    _device_option(ev)
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(run=_evaluate)

    rec = commands.add_parser("collect", help="record episodes of any Gymnasium env (Box spaces) as a dataset (.npz)")
    rec.add_argument("--env", required=True, help="a Gymnasium id, e.g. Pendulum-v1 or physode/Pendulum-v0")
    rec.add_argument("--episodes", type=int, required=True, help="how many episodes to record")
    rec.add_argument("--policy", choices=POLICIES, default="random", help="random (default) or zero actions")
    rec.add_argument("--max-steps", type=int, default=None, help="steps per episode (default: the env's limit)")
    rec.add_argument("--dt", type=float, default=None, help="seconds between steps (default: the env's dt)")
    rec.add_argument("--seed", type=int, default=0, help="seed of the env and the policy (default 0)")
    rec.add_argument("--checkpoint", default=None, help="the model.pt that physode/Learned-v0 steps")
    rec.add_argument("-o", "--out", required=True, help="output .npz file")
    rec.add_argument("--quiet", action="store_true", help="no progress bar")
    rec.set_defaults(run=_collect)

    imp = commands.add_parser("import", help="read recorded trajectories from CSV files into a dataset (.npz)")
    imp.add_argument("files", nargs="+", metavar="FILE", help="CSV files: one row per observation, a header of column "
                     "names; one trajectory per file, or many told apart by --trajectory-column")
    imp.add_argument("--time", required=True, metavar="COLUMN", help="the time column")
    imp.add_argument("--states", required=True, metavar="A,B,...", help="comma-separated state columns")
    imp.add_argument("--controls", default=None, metavar="A,B,...",
                     help="comma-separated control columns (held from a row's time to the next row's)")
    imp.add_argument("--trajectory-column", default=None, metavar="COLUMN", help="the column that names each row's trajectory")
    imp.add_argument("--split-column", default=None, metavar="COLUMN",
                     help="a column of train/val/test per row (as `to_csv` writes) that sets the split (default: drawn)")
    imp.add_argument("--t-train", type=float, default=None, help="training horizon (default: half way through the "
                     "median trajectory)")
    imp.add_argument("--time-dependent", action="store_true", help="the dynamics depend on time itself")
    imp.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split (default 0)")
    imp.add_argument("-o", "--out", required=True, help="output .npz file")
    imp.set_defaults(run=_import)

    draw = commands.add_parser("plot", help="redraw the report and every figure of a run folder")
    draw.add_argument("run_dir", help="a folder written by `physode compare`")
    _system_option(draw)
    draw.set_defaults(run=_plot)
    return parser


def _evaluation_options(parser) -> None:
    parser.add_argument("--horizons", type=float, nargs="+", default=None, metavar="H",
                        help="evaluation horizons in multiples of the training horizon (default 1 2 4; against the data: 1, end)")
    parser.add_argument("--reference", choices=REFERENCES, default=None,
                        help="score against the simulated system (any horizon) or the dataset's own test trajectories "
                             "(default: the system where the data have one, else the data)")
    parser.add_argument("--level", type=float, default=0.9,
                        help="nominal level of an ensemble's prediction intervals, in (0, 1) (default 0.9)")


def _system_option(parser) -> None:
    parser.add_argument("--system", default=None, metavar="MODULE:CLASS",
                        help="the data's system when it is your own, by import path (imported and registered first, so "
                             "that the files find it by name)")


def _registered_system(args) -> None:
    """Import and register the system named by ``--system``, so that files naming it resolve."""
    if args.system is not None:
        import_system(args.system)


def _plot(args) -> None:
    _registered_system(args)
    print(f"redrew {redraw(args.run_dir)}/figures and the report")


def _device_option(parser) -> None:
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help=f"one of {', '.join(DEVICES)} (default auto: the GPU when present)")


def _simulate(args) -> None:
    start = time.perf_counter()
    system = resolve_system(args.system, **dict(args.param))
    options = {"method": args.method, "rtol": args.rtol, "atol": args.atol}
    if args.step_size is not None:
        options["step_size"] = args.step_size
    dataset = TrajectoryDataset.generate(
        system, args.n, args.t_end, args.dt, irregular=args.irregular, noise_std=args.noise, seed=args.seed,
        t_train=args.t_train, controls=args.controls, progress=not args.quiet and sys.stderr.isatty(),
        device=args.device, **options,
    )
    path = dataset.save(args.out)
    print(f"wrote {path}: {dataset.summary()} in {time.perf_counter() - start:.1f}s")


def _train(args) -> int | None:
    """Under torchrun (``torchrun --nproc_per_node=N -m physode train ...``) this trains data parallel."""
    if args.no_bootstrap and args.ensemble is None:
        raise PhysodeError("--no-bootstrap applies to an ensemble's members: pass --ensemble K too, or leave it out")
    dataset = TrajectoryDataset.load(args.data)
    config = TrainConfig(steps=args.steps, time_limit=args.time_limit, seed=args.seed, batch_size=args.batch_size,
                         checkpoint_every=args.checkpoint_every, val_every=args.val_every,
                         warm_start=not args.no_warm_start)
    torch.manual_seed(config.seed)
    ensemble = {} if args.ensemble is None else {"ensemble": args.ensemble, "bootstrap": not args.no_bootstrap,
                                                 "bootstrap_seed": args.seed}
    model = build_model(args.model, dataset, **ensemble)
    with process_group(args.device):
        result = fit(model, dataset, config, out_dir=args.out, progress=not args.quiet and sys.stderr.isatty(),
                     resume=args.resume, overwrite=args.overwrite, device=args.device)
        if not World.current(args.device).main:
            return exit_code(result.stopped) if result.stopped in STOPPED else None
    if result.stopped in STOPPED:  # by SIGINT or SIGTERM
        print(f"physode: {result.stopped} at step {result.steps}; {args.out}/checkpoint.pt holds the state: continue with "
              f"`physode train --data {args.data} --model {args.model} --out {args.out} --steps {args.steps} "
              f"--seed {args.seed} --batch-size {args.batch_size} --checkpoint-every {args.checkpoint_every} "
              f"--val-every {args.val_every} " + ("--no-warm-start " if args.no_warm_start else "")
              + (f"--ensemble {args.ensemble} " if args.ensemble is not None else "")
              + ("--no-bootstrap " if args.no_bootstrap else "")
              + (f"--time-limit {args.time_limit} " if args.time_limit is not None else "")
              + f"--device {args.device} {'--quiet ' if args.quiet else ''}--resume`",
              file=sys.stderr)
        return exit_code(result.stopped)
    what = args.model if args.ensemble is None else f"an ensemble of {args.ensemble} {args.model} models"
    print(f"trained {what} on {dataset.name}: {result.steps} steps in {result.seconds:.1f}s, "
          f"best validation error {result.best_val_error:.3g} (stopped: {result.stopped}); wrote {args.out}/model.pt")


def _collect(args) -> None:
    dataset = collect(args.env, args.episodes, args.policy, seed=args.seed, max_steps=args.max_steps, dt=args.dt,
                      env_kwargs=None if args.checkpoint is None else {"checkpoint": args.checkpoint},
                      progress=not args.quiet and sys.stderr.isatty())
    print(f"wrote {dataset.save(args.out)}: {dataset.summary()}")


def _import(args) -> None:
    from .tabular import read_csv

    def names(text):
        return None if text is None else [name.strip() for name in text.split(",") if name.strip()]

    dataset = read_csv(args.files, time=args.time, states=names(args.states), controls=names(args.controls),
                       trajectory_column=args.trajectory_column, split_column=args.split_column, t_train=args.t_train,
                       time_dependent=args.time_dependent, **({} if args.split_column else {"seed": args.seed}))
    print(f"wrote {dataset.save(args.out)}: {dataset.summary()}")


def _evaluate(args) -> None:
    _registered_system(args)
    evaluate_models(args.data, args.models, args.out, horizons=args.horizons, reference=args.reference, level=args.level,
                    progress=not args.quiet and sys.stderr.isatty(), device=args.device)


def _compare(args) -> None:
    models = None if args.models is None else tuple(name.strip() for name in args.models.split(",") if name.strip())
    run_compare(args.system, args.preset, args.out, models, seed=args.seed, horizons=args.horizons,
                reference=args.reference, progress=not args.quiet and sys.stderr.isatty(), device=args.device,
                data=args.data, ensemble=args.ensemble, level=args.level)


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (0, 2 for bad input or a failed write, 130 when interrupted by Ctrl-C,
    143 when stopped by SIGTERM, which every command takes as it takes Ctrl-C: see :mod:`physode.signals`)."""
    with warnings.catch_warnings(), terminate_raises():  # physode's own warnings: one line on stderr, like its errors
        python_way = warnings.showwarning

        def show(message, category, *where):
            if issubclass(category, PhysodeWarning):
                print(f"physode: warning: {message}".replace("\n", " "), file=sys.stderr)
            else:
                python_way(message, category, *where)

        warnings.showwarning = show
        return _run(argv)


def _run(argv) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command != "train" and launched_processes() > 1:
            raise PhysodeError(f"`physode {args.command}` runs in one process; of the commands only `physode train` "
                               "runs under torchrun (data parallel): launch this one without torchrun")
        return args.run(args) or 0
    except PhysodeError as exc:
        print(f"physode: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        stopped = "terminated" if isinstance(exc, Terminated) else "interrupted"
        detail = f" ({exc})" if str(exc) else ""
        print(f"physode: {stopped}{detail}; run the same command again to continue (finished stages and "
              "training checkpoints are reused)", file=sys.stderr)
        return exit_code(stopped)

"""What every experiment script shares: its command line and how it writes tables, raw numbers and figures."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import physode
from physode.files import atomic_write
from physode.signals import STOPPED

ROOT = Path(__file__).resolve().parent.parent


def experiment_parser(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """``--quick`` (the mode the tests run), ``--results`` (tables) and ``--figures`` (PNGs)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--results", type=Path, default=ROOT / "experiments" / "results", help="folder for the tables")
    parser.add_argument("--figures", type=Path, default=ROOT / "figures", help="folder for the figures")
    return parser


def fit(model, data, config, **options):
    """:func:`physode.fit`, stopping the script when a signal stopped the training: ``fit`` itself returns then
    (with its checkpoint written), and a benchmark would go on to score and time a run cut short."""
    result = physode.fit(model, data, config, **options)
    if result.stopped in STOPPED:
        raise SystemExit(f"{Path(sys.argv[0]).name}: training {result.stopped} at step {result.steps}; nothing written")
    return result


def provenance() -> str:
    """Which script, at which commit of the code, wrote a result ("plus uncommitted changes" when the code differed)."""
    script = Path(sys.argv[0]).name
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "physode", "envs",
                                  "experiments/*.py", "tests/problems.py"], cwd=ROOT, capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"written by experiments/{script} (no git checkout: commit unknown)"
    return f"written by experiments/{script} at commit {commit}" + (" plus uncommitted changes" if changed else "")


def write_outputs(args, name: str, title: str, report: str, raw: dict | None = None, figure=None,
                  figure_name: str | None = None) -> None:
    """Write ``results/NAME.md`` (and ``NAME.json``, ``figures/FIGURE_NAME.png``, FIGURE_NAME defaulting to NAME) atomically."""
    made_by = provenance()
    with atomic_write(args.results / f"{name}.md", "results table") as handle:
        handle.write(f"# {title}\n\n{report}\n\n_{made_by}_\n".encode())
    if raw is not None:
        with atomic_write(args.results / f"{name}.json", "results") as handle:
            handle.write((json.dumps({**raw, "provenance": made_by}, indent=2) + "\n").encode())
    if figure is not None:
        with atomic_write(args.figures / f"{figure_name or name}.png", "figure") as handle:
            figure.savefig(handle, format="png", dpi=120)

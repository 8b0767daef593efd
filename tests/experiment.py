"""Run an experiment script of experiments/ in a fresh process, as the tests of the experiments do."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def launch(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python experiments/SCRIPT ARGS...``; returns the finished process (output captured)."""
    return subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args], capture_output=True, text=True,
                          timeout=600)


def run(script: str, *args: str) -> str:
    """The script in ``--quick`` mode, which must succeed; returns its standard output."""
    done = launch(script, "--quick", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout

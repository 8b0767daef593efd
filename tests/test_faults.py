"""Faults from outside: a full disk, a file size limit, a second process in the same folder, SIGTERM.

Every writer (datasets, CSV exports, checkpoints, metrics, reports, figures) that cannot write gives one
PhysodeError naming the file, the cause and the fix, removes its temporary file and leaves the file that was
there as it was; on the command line, exit code 2 and one line on stderr. The full disk is injected at the
system calls where it shows (the fsync that ends an atomic write, the write of an append) or, in a real process,
made by a file size limit (``RLIMIT_FSIZE``: writes past it fail with EFBIG). The real small filesystem and the
real concurrent and signalled `physode train` processes are in test_reliability.py.
"""

import errno
import hashlib
import os
import resource
import signal
import subprocess
import sys
import threading

import pytest
import torch

import physode
import physode.cli
import physode.job
from physode import NeuralODE, Pendulum, PhysodeError, TrainConfig, TrajectoryDataset, build_model, fit
from physode.cli import main
from physode.lock import LOCK_NAME, folder_lock
from physode.plot import save as save_figure
from physode.train import TrainResult, read_metrics
from physode.train.metrics import append_metrics, write_metrics

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names open files through /proc/self/fd")
NO_SPACE = "(No space left on device); free some space or choose another location"


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pendulum.npz"
    TrajectoryDataset.generate(Pendulum(), 8, 1.0, 0.1, seed=0).save(path)
    return path


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(word, after=0)``: from the ``after + 1``-th on, writes to files whose path contains ``word`` fail
    as on a full disk (ENOSPC): the fsync that ends an atomic write, and the write of an append (which first puts
    half of its bytes on the disk, as a disk that fills up mid-way does). Other files are written as usual;
    ``full_disk.clear()`` makes room again."""
    rules = []
    real_fsync, real_write = os.fsync, os.write

    def full(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        for rule in rules:
            if rule["word"] in name:
                rule["seen"] += 1
                return rule["seen"] > rule["after"]
        return False

    def fsync(fd):
        if full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    def write(fd, data):
        if full(fd):
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "write", write)

    def fill(word, after=0):
        rules.append({"word": word, "after": after, "seen": 0})

    fill.clear = rules.clear
    return fill


def _hashes(folder):
    """Every file's hash, temporary files and folders included (nothing may be added, removed or changed)."""
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.rglob("*"))}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("physode: error: ") and "Traceback" not in err, err
    return lines[0]


def _write_report(path):
    dataset = TrajectoryDataset.load(path.parent / "pendulum.npz")
    physode.compare({"node": NeuralODE(2, hidden=8)}, dataset, grid_points=4).save(path.parent)


def _write_figure(path):
    import matplotlib.pyplot as plt

    figure = plt.figure()
    figure.gca().plot([0, 1], [1, 0])
    save_figure(figure, path)
    plt.close(figure)


WRITERS = {  # what each writer calls its file, and a write of it into the given path
    "dataset": ("data.npz", lambda path: TrajectoryDataset.load(path.parent / "pendulum.npz").save(path)),
    "csv file": ("data.csv", lambda path: TrajectoryDataset.load(path.parent / "pendulum.npz").to_csv(path)),
    "checkpoint": ("model.pt", lambda path: physode.save_checkpoint(path, NeuralODE(2), system_spec=Pendulum().spec())),
    "metrics": ("metrics.jsonl", lambda path: write_metrics(path, [{"step": 1, "loss": 0.5}])),
    "report": ("report.json", _write_report),
    "figure": ("figure.png", _write_figure),
}


@pytest.mark.parametrize("what", WRITERS)
def test_a_writer_on_a_full_disk_raises_one_line_and_leaves_the_old_file_whole(what, data_file, full_disk, tmp_path):
    name, write = WRITERS[what]
    (tmp_path / "pendulum.npz").write_bytes(data_file.read_bytes())
    path = tmp_path / name
    write(path)
    before = _hashes(tmp_path)
    full_disk(name)
    with pytest.raises(PhysodeError) as caught:
        write(path)
    assert str(caught.value) == f"cannot write the {what} to {str(path)!r} {NO_SPACE}"
    assert _hashes(tmp_path) == before  # the old file whole, no temporary file left


def test_an_append_to_the_metrics_on_a_full_disk_is_undone(full_disk, tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_metrics(path, {"step": 10, "loss": 1.0})
    before = path.read_bytes()
    full_disk("metrics.jsonl")
    with pytest.raises(PhysodeError, match="cannot write the metrics to .*No space left on device"):
        append_metrics(path, {"step": 20, "loss": 0.5})
    assert path.read_bytes() == before  # not half a line: cut back to its old length


def _with_file_size_limit(limit):
    """A child's set-up: writes past ``limit`` bytes fail with EFBIG (SIGXFSZ, which would kill it, ignored)."""
    def set_up():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return set_up


def test_a_real_process_over_its_file_size_limit_exits_2_and_keeps_the_old_dataset(tmp_path):
    out = tmp_path / "data.npz"
    out.write_bytes(b"an older dataset that must survive")
    before = _hashes(tmp_path)
    done = subprocess.run([sys.executable, "-m", "physode", "simulate", "pendulum", "--n", "64", "--t-end", "2",
                           "-o", str(out), "--quiet"], capture_output=True, text=True, timeout=120,
                          preexec_fn=_with_file_size_limit(8192))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0] == (f"physode: error: cannot write the dataset to {str(out)!r} (File too large); "
                        "raise the file size limit (ulimit -f) or choose another location")
    assert _hashes(tmp_path) == before


def test_a_real_append_cut_short_by_the_file_size_limit_is_undone(tmp_path):
    """The limit lets the line's first bytes in (a short write) and refuses the rest: the file is cut back."""
    path = tmp_path / "metrics.jsonl"
    write_metrics(path, [{"step": 10, "loss": 1.0}, {"step": 20, "loss": 0.5}])
    before = path.read_bytes()
    script = ("import sys; from physode import PhysodeError; from physode.train.metrics import append_metrics\n"
              "try:\n    append_metrics(sys.argv[1], {'step': 30, 'loss': 0.25, 'val_error': 0.125})\n"
              "except PhysodeError as exc:\n    sys.exit(str(exc))")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                          preexec_fn=_with_file_size_limit(len(before) + 10))
    assert done.returncode == 1 and "cannot write the metrics" in done.stderr and "(File too large)" in done.stderr
    assert path.read_bytes() == before


def _train_args(data_file, out, *extra):
    return ["train", "--data", str(data_file), "--out", str(out), "--steps", "6", "--batch-size", "4",
            "--checkpoint-every", "2", "--val-every", "2", "--no-warm-start", "--quiet", *extra]


def _weights(folder):
    return torch.load(folder / "model.pt", weights_only=True)["model"]["state_dict"]


def test_a_checkpoint_that_cannot_be_written_stops_training_and_the_last_one_resumes(data_file, full_disk, tmp_path,
                                                                                   capsys):
    alone, stopped = tmp_path / "alone", tmp_path / "stopped"
    assert main(_train_args(data_file, alone)) == 0
    full_disk("checkpoint.pt", after=1)  # the first checkpoint (step 2) is written, the second is not
    assert main(_train_args(data_file, stopped)) == 2
    path = stopped / "checkpoint.pt"
    assert _one_error_line(capsys) == (f"physode: error: training stopped at step 4: cannot write the checkpoint to "
                                       f"{str(path)!r} {NO_SPACE}; then continue from the last checkpoint written, "
                                       "which is whole, with resume (--resume)")
    assert sorted(p.name for p in stopped.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]  # no temporary file
    assert physode.checkpoint.load_checkpoint(path)["trainer"]["step"] == 2
    full_disk.clear()
    assert main(_train_args(data_file, stopped, "--resume")) == 0
    for name, tensor in _weights(alone).items():
        assert torch.equal(tensor, _weights(stopped)[name]), name  # as if nothing had happened


def test_a_metrics_line_that_cannot_be_written_stops_training_and_changes_nothing(data_file, full_disk, tmp_path,
                                                                                capsys):
    """A run resumed (to more steps) on a disk that has filled up: its next metrics line fails, before anything else
    is written (the validation's line comes before the checkpoint of its step)."""
    run = tmp_path / "run"
    assert main(_train_args(data_file, run)) == 0
    before = _hashes(run)
    full_disk("metrics.jsonl")
    assert main(_train_args(data_file, run, "--resume")[:-1] + ["--steps", "8", "--resume"]) == 2
    line = _one_error_line(capsys)
    assert line == f"physode: error: cannot write the metrics to {str(run / 'metrics.jsonl')!r} {NO_SPACE}"
    assert _hashes(run) == before


@pytest.mark.parametrize("name", ["report.json", ".png"])
def test_evaluate_on_a_full_disk_exits_2_and_keeps_the_old_report_and_figures(name, data_file, full_disk, tmp_path,
                                                                            capsys):
    assert main(_train_args(data_file, tmp_path / "node")) == 0
    out = tmp_path / "scores"
    evaluate = ["evaluate", str(tmp_path / "node"), "--data", str(data_file), "--out", str(out), "--quiet"]
    assert main(evaluate) == 0
    before = _hashes(out)
    capsys.readouterr()
    full_disk(name)
    assert main(evaluate) == 2
    line = _one_error_line(capsys)
    assert NO_SPACE in line and ("the report to" if name == "report.json" else "the figure to") in line
    after = _hashes(out)
    if name == ".png":  # the report, written before the figures, is new (and whole); the figures are the old ones
        after = {p: h for p, h in after.items() if p.suffix == ".png"} | {p: before[p] for p in before if p.suffix != ".png"}
    assert after == before


def test_a_held_folder_is_refused_to_every_command_at_once_and_nothing_there_changes(data_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(data_file, run / "node")) == 0
    (run / "data.npz").write_bytes(data_file.read_bytes())
    before = _hashes(run)
    capsys.readouterr()
    commands = {"train": _train_args(data_file, run / "node", "--overwrite"),
                "resume": _train_args(data_file, run / "node", "--resume"),
                "compare": ["compare", "pendulum", "--preset", "smoke", "--models", "node", "--out", str(run), "--quiet"],
                "evaluate": ["evaluate", str(run / "node"), "--data", str(data_file), "--out", str(run), "--quiet"],
                "plot": ["plot", str(run)]}
    for command, argv in commands.items():
        held = run / "node" if command in ("train", "resume") else run
        with folder_lock(held):
            assert main(argv) == 2, command
        kind = "output folder" if command == "evaluate" else "run folder"
        assert _one_error_line(capsys) == (f"physode: error: the {kind} {str(held)!r} is in use by another physode "
                                           f"process (pid {os.getpid()}); wait for it to end, stop it, or choose "
                                           "another folder"), command
        assert _hashes(run) == before, command
    with folder_lock(run / "new" / "deeper"):  # a fit into a folder held by this very process is refused too
        with pytest.raises(PhysodeError, match="is in use"):
            fit(NeuralODE(2, hidden=8), TrajectoryDataset.load(data_file), TrainConfig(steps=2, warm_start=False),
                out_dir=run / "new" / "deeper")
    assert _hashes(run) == before  # the folders the lock made for nothing are gone with it


def test_a_lock_file_left_by_a_dead_run_neither_blocks_nor_passes_for_a_run(data_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text("4194304\n")  # a killed run's (its lock died with it)
    assert main(_train_args(data_file, run)) == 0  # no --overwrite needed: the folder held no run
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.jsonl", "model.pt"]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [2, 4, 6]


def test_a_folder_made_for_a_run_that_fails_is_removed_with_its_lock(tmp_path):
    with pytest.raises(RuntimeError):
        with folder_lock(tmp_path / "a" / "b") as held:
            assert (held / LOCK_NAME).read_text() == f"{os.getpid()}\n"
            raise RuntimeError("a check after the lock")
    assert list(tmp_path.iterdir()) == []
    with folder_lock(tmp_path / "a"):  # released: taken again at once
        pass


def test_sigterm_stops_any_command_as_ctrl_c_does(tmp_path, capsys, monkeypatch):
    def terminated(name, **params):
        os.kill(os.getpid(), signal.SIGTERM)
        return Pendulum()

    monkeypatch.setattr(physode.cli, "resolve_system", terminated)
    handler = signal.getsignal(signal.SIGTERM)
    assert main(["simulate", "pendulum", "--n", "4", "-o", str(tmp_path / "d.npz"), "--quiet"]) == 143
    assert capsys.readouterr().err.startswith("physode: terminated; run the same command again to continue")
    assert signal.getsignal(signal.SIGTERM) is handler and list(tmp_path.iterdir()) == []


def test_compare_stops_with_143_when_its_training_is_terminated(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(physode.job, "fit", lambda model, *a, **k: TrainResult(model, 3, 1.0, 0.5, "terminated", []))
    out = tmp_path / "run"
    assert main(["compare", "pendulum", "--preset", "smoke", "--models", "resnet", "--out", str(out), "--quiet"]) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["physode: terminated (training resnet terminated at step 3); run the same command again to continue "
                   "(finished stages and training checkpoints are reused)"]
    assert (out / "data.npz").exists() and not (out / LOCK_NAME).exists()


def test_fit_stops_on_sigterm_between_two_steps_and_says_so(data_file, tmp_path):
    def outside(signum, frame):  # where fit does not take SIGTERM itself, it ends the fit at once
        raise RuntimeError("SIGTERM reached the handler that was there before fit")

    dataset = TrajectoryDataset.load(data_file)
    handler = signal.signal(signal.SIGTERM, outside)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        result = fit(build_model("node", dataset, hidden=8), dataset,
                     TrainConfig(steps=100_000, warm_start=False, batch_size=4, window=3, checkpoint_every=10**6),
                     out_dir=tmp_path / "run")
        assert signal.getsignal(signal.SIGTERM) is outside  # given back
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, handler)
    assert result.stopped == "terminated" and 0 < result.steps < 100_000
    trainer = physode.checkpoint.load_checkpoint(tmp_path / "run" / "checkpoint.pt")["trainer"]
    assert trainer["step"] == result.steps and trainer["stopped"] == "terminated"
    assert not (tmp_path / "run" / "model.pt").exists()

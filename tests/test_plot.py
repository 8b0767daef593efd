"""Every figure function runs headless, returns a Figure and writes a non-empty PNG."""

import gc
import json
import sys

import matplotlib.pyplot as plt
import pytest
import torch

import physode
from physode import plot
from physode.evaluate import compare


@pytest.fixture(scope="module")
def setup():
    data = physode.TrajectoryDataset.generate(physode.Pendulum(), 12, t_end=2.0, dt=0.1, seed=1)
    torch.manual_seed(0)
    model = physode.build_model("node", data, hidden=8)
    return data, model


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


def test_vector_field_phase_portrait_error_and_energy(setup, tmp_path):
    data, model = setup
    fig = plot.vector_field_figure(data.system, model, data.train.x_clean.reshape(-1, 2), path=tmp_path / "field.png")
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 4 and is_png(tmp_path / "field.png")
    times = data.t
    truth = data.test.x_clean
    with torch.no_grad():
        pred = model.rollout(truth[:, 0], times).double()
    plot.phase_portrait_figure(times, truth, {"node": pred}, t_train=data.t_train, names=data.system.state_names,
                               path=tmp_path / "phase.png")
    report = compare({"node": model}, data)
    plot.error_horizon_figure(report, path=tmp_path / "error.png")
    plot.energy_figure(data.system, times, {"truth": truth, "node": pred}, path=tmp_path / "energy.png")
    for name in ("phase", "error", "energy"):
        assert is_png(tmp_path / f"{name}.png"), name
    plt.close("all")


def test_training_curves_and_orbits(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps({"step": s, "loss": 1 / s, "val_error": 2 / s, "nfe_forward": 10 + s,
                                             "nfe_backward": 0}) for s in range(1, 6)))
    plot.training_figure(metrics, path=tmp_path / "training.png")
    system = physode.NBody()
    x0 = system.sample_initial_states(2, seed=0)
    t = torch.linspace(0, 2, 41, dtype=torch.float64)
    truth = physode.simulate(system, x0, t)
    plot.orbits_figure(system, truth, truth + 0.01, path=tmp_path / "orbits.png")
    assert is_png(tmp_path / "training.png") and is_png(tmp_path / "orbits.png")
    with pytest.raises(physode.PhysodeError, match="empty"):
        plot.training_figure([])
    with pytest.raises(physode.PhysodeError, match="2-D states"):
        plot.vector_field_figure(system, physode.NeuralODE(12), x0)
    plt.close("all")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads glibc's malloc counters")
def test_drawing_figures_again_and_again_does_not_grow_memory(tmp_path):
    """Log axes are labelled in plain text: matplotlib's mathtext labels keep ~2 KiB per figure for good."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("glibc >= 2.33 (mallinfo2) needed")
    mallinfo2.restype = MallInfo2
    # less than a decade: the minor ticks get labels too (with mathtext: ~7.8 KiB kept per figure, measured)
    metrics = [{"step": s, "loss": 0.5 * 0.9**s, "val_error": 0.6 * 0.92**s, "nfe_forward": 4, "nfe_backward": 0}
               for s in range(0, 12, 2)]
    fig = plot.training_figure(metrics, path=tmp_path / "t.png")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels() + fig.axes[0].get_yticklabels(minor=True)]
    assert any(labels) and not any("$" in label for label in labels)  # plain text, no mathtext
    for k in range(45):
        plot.training_figure(metrics, path=tmp_path / "t.png")
        plt.close("all")
        gc.collect()
        if k == 19:
            before = mallinfo2().uordblks
    per_figure = (mallinfo2().uordblks - before) / 25
    assert per_figure < 500, f"{per_figure:.0f} bytes more in use per figure drawn"

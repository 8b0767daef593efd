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


@pytest.mark.slow
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


class _CudaLikeTensor(torch.Tensor):
    """A CPU stand-in for a tensor on a GPU: arithmetic with it fails as it does across devices, ``.detach()``,
    ``.double()`` and ``.to()`` keep it "on the GPU", and only ``.cpu()`` brings back a plain CPU tensor."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.cpu:
            with torch._C.DisableTorchFunctionSubclass():
                return args[0].as_subclass(torch.Tensor)
        if func in (torch.Tensor.detach, torch.Tensor.double, torch.Tensor.to) or func.__name__ == "__get__":
            return super().__torch_function__(func, types, args, kwargs)
        raise RuntimeError(f"{func.__name__}: expected all tensors to be on the same device (stand-in for cuda:0)")


class _ModelAnsweringOnTheGpu(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def vector_field(self, t, x, u=None):
        return self.model.vector_field(t, x, u).as_subclass(_CudaLikeTensor)


def test_vector_field_figure_brings_a_gpu_models_field_to_the_cpu(setup):
    """A model on a GPU answers ``vector_field`` on its device; the figure must call ``.cpu()`` before comparing
    with the CPU truth. No CPU-only machine has a second device, so the GPU output is simulated by a tensor subclass
    that fails any arithmetic until ``.cpu()`` is called (the test below uses a real GPU where there is one)."""
    data, model = setup
    states = data.train.x_clean.reshape(-1, 2)
    fig = plot.vector_field_figure(data.system, _ModelAnsweringOnTheGpu(model), states, points=9)
    reference = plot.vector_field_figure(data.system, model, states, points=9)
    assert (fig.axes[2].collections[0].get_array() == reference.axes[2].collections[0].get_array()).all()
    plt.close("all")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_vector_field_figure_of_a_model_on_cuda(setup, tmp_path):
    data, model = setup
    on_gpu = physode.build_model("node", data, hidden=8)
    on_gpu.load_state_dict(model.state_dict())
    on_gpu.to("cuda")
    plot.vector_field_figure(data.system, on_gpu, data.train.x_clean.reshape(-1, 2), path=tmp_path / "field.png")
    assert is_png(tmp_path / "field.png")
    plt.close("all")


def test_training_figure_of_a_single_record_draws_markers():
    """A line through one point draws nothing: with one validation record, each point is drawn as a marker."""
    fig = plot.training_figure([{"step": 5, "loss": 0.5, "val_error": 0.7, "nfe_forward": 12, "nfe_backward": 0}])
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 4
    assert all(line.get_marker() not in ("None", "", " ", None) and line.get_markersize() > 0 for line in lines)
    plt.close("all")


def _nbody_orbits_index_5(data, model, tmp_path):
    system = physode.NBody()
    truth = torch.zeros(2, 5, system.state_dim, dtype=torch.float64)
    plot.orbits_figure(system, truth, truth, index=5)


def _phase(data, times=None, **options):
    truth = data.test.x_clean
    plot.phase_portrait_figure(data.t if times is None else times, truth, {"node": truth}, **options)


def _report(statistic):
    from types import SimpleNamespace

    curve = {name: [0.1, 0.2] for name in ("median", "mean", "p90", "nmse")}
    report = SimpleNamespace(curves={"node": curve, "true system": curve}, times=[0.0, 1.0], meta={"t_train": 0.5})
    plot.error_horizon_figure(report, statistic=statistic)


@pytest.mark.parametrize("call, error, match", [
    (lambda d, m, tmp: _phase(d, dims=(0, 40)), physode.PhysodeError, r"dims must be a whole number from 0 to 1 .*40"),
    (lambda d, m, tmp: _phase(d, dims=(0, 1, 0)), physode.PhysodeError, r"dims must be two state indices"),
    (lambda d, m, tmp: _phase(d, times=d.t[:5]), physode.PhysodeError, r"times must have shape \(T,\) or \(N, T\)"),
    (lambda d, m, tmp: plot.phase_portrait_figure(d.t, d.test.x_clean, {"node": d.test.x_clean[:, :3]}),
     physode.PhysodeError, r"predictions\['node'\] must have the shape of truth"),
    (_nbody_orbits_index_5, physode.PhysodeError, r"index must be a whole number from 0 to 1 \(there are 2 trajectories\)"),
    (lambda d, m, tmp: _report("max"), physode.UnknownNameError, r"statistic 'max'.*'mean', 'median', 'nmse', 'p90'"),
    (lambda d, m, tmp: plot.training_figure(tmp / "missing.jsonl"), physode.FileFormatError,
     r"missing.jsonl.*No such file.*pass the metrics.jsonl"),
    (lambda d, m, tmp: plot.training_figure(tmp), physode.FileFormatError, r"Is a directory.*pass the metrics.jsonl"),
    (lambda d, m, tmp: plot.vector_field_figure(d.system, m, d.train.x_clean[:0, 0]), physode.PhysodeError,
     r"data_states is empty"),
    (lambda d, m, tmp: plot.vector_field_figure(d.system, m, d.train.x_clean, points=1), physode.PhysodeError,
     r"points must be a whole number >= 2"),
], ids=["dims-out-of-range", "dims-not-a-pair", "times-of-other-length", "prediction-of-other-shape",
        "orbit-index-out-of-range", "unknown-statistic", "missing-metrics-file", "metrics-folder", "no-states",
        "one-grid-point"])
def test_bad_arguments_are_refused_with_the_fix(setup, tmp_path, call, error, match):
    data, model = setup
    with pytest.raises(error, match=match):
        call(data, model, tmp_path)
    plt.close("all")


@pytest.mark.parametrize("states", [[[0.5, -1.0]], [[0.0, -1.0], [0.0, 1.0]], [[0.0, 2.0]] * 3],
                         ids=["one-state", "zero-width", "all-equal"])
def test_vector_field_figure_of_a_degenerate_box_pads_it(setup, tmp_path, states):
    """A box of zero width (one state, or states on a line) is widened so the field around it is drawn."""
    data, model = setup
    fig = plot.vector_field_figure(data.system, model, torch.tensor(states), path=tmp_path / "field.png")
    assert is_png(tmp_path / "field.png")
    states = torch.tensor(states)
    (x0, x1), (y0, y1) = fig.axes[0].get_xlim(), fig.axes[0].get_ylim()
    assert x0 < float(states[:, 0].min()) <= float(states[:, 0].max()) < x1
    assert y0 < float(states[:, 1].min()) <= float(states[:, 1].max()) < y1
    plt.close("all")


def test_phase_portrait_without_predictions_draws_the_truth(setup):
    data, _ = setup
    truth = data.train.x_clean[:3].numpy()
    fig = plot.phase_portrait_figure(data.t, truth, {})
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 3 and fig.axes[0].get_title() == "truth"
    plt.close("all")


def test_phase_portrait_on_per_trajectory_grids(setup):
    """Per-trajectory times (N, T): each trajectory is split at ``t_train`` on its own grid (dashed, then dotted)."""
    data, _ = setup
    truth = data.train.x_clean[:3].numpy()
    times = torch.stack([data.t, data.t + 0.5, data.t + 1.0]).numpy()  # t_train falls at another index in each row
    fig = plot.phase_portrait_figure(times, truth, {"node": truth}, t_train=1.0, n=3)
    lines = fig.axes[0].get_lines()  # per trajectory: truth, before t_train, after t_train
    for i in range(3):
        assert len(lines[3 * i + 1].get_xdata()) == int((times[i] <= 1.0).sum())
        assert len(lines[3 * i + 2].get_xdata()) == int((times[i] > 1.0).sum())
    plt.close("all")

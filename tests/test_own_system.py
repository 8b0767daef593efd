"""A user's own system, defined outside physode's tree, through the whole pipeline: registry, files, CLI, errors."""

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import physode
from physode import ODESystem, PhysodeError, System, TrajectoryDataset, UnknownSystemError
from physode.cli import main
from physode.systems import registry

MODULE = '''
import dataclasses

import torch

import physode


@dataclasses.dataclass(frozen=True)
class OscillatorParams:
    stiffness: float = 4.0
    damping: float = 0.2


class DampedOscillator(physode.System):
    """q'' = -k q - c q' : closed form known, so the pipeline's truth can be checked."""

    name = "{name}"
    Params = OscillatorParams
    state_names = ("q", "v")

    def vector_field(self, t, x, u=None):
        q, v = x[..., 0], x[..., 1]
        return torch.stack([v, -self.params.stiffness * q - self.params.damping * v], dim=-1)

    def energy(self, x):
        return x[..., 1] ** 2 / 2 + self.params.stiffness * x[..., 0] ** 2 / 2

    def sample_initial_states(self, n, seed=0):
        generator = torch.Generator().manual_seed(seed)
        return 2 * torch.rand(n, 2, generator=generator, dtype=torch.float64) - 1


def rotation(t, x, u):
    return torch.stack([x[..., 1], -x[..., 0]], dim=-1)


circle = physode.ODESystem(rotation, state_names=("q", "v"), initial_states=[(-1, 1), (-1, 1)], name="{name}_ode")
'''


@pytest.fixture
def registry_kept():
    """The registry as it was before the test (a test's own registrations are taken out again)."""
    before = dict(registry.SYSTEMS)
    yield
    registry.SYSTEMS.clear()
    registry.SYSTEMS.update(before)


@pytest.fixture
def user_module(tmp_path, monkeypatch, registry_kept):
    """A module of the user's, written to a folder on sys.path (and on PYTHONPATH for subprocesses)."""
    name = f"userphys_{os.getpid()}_{len(sys.modules)}"
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / f"{name}.py").write_text(MODULE.format(name=MODULE_NAME(name)))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    yield name
    sys.modules.pop(name, None)


def MODULE_NAME(module: str) -> str:
    """The system name the user module's DampedOscillator carries."""
    return f"osc_{module[-6:]}"


def _closed_form(x0, t, k=4.0, c=0.2):
    """The underdamped oscillator q'' = -k q - c q' from (q0, v0)."""
    w = math.sqrt(k - c**2 / 4)
    q0, v0 = x0[:, :1], x0[:, 1:]
    a, b = q0, (v0 + c / 2 * q0) / w
    decay = torch.exp(-c / 2 * t)
    q = decay * (a * torch.cos(w * t) + b * torch.sin(w * t))
    v = decay * (-c / 2 * (a * torch.cos(w * t) + b * torch.sin(w * t)) + w * (-a * torch.sin(w * t) + b * torch.cos(w * t)))
    return torch.stack([q, v], dim=-1)


def test_the_readme_example_of_an_own_system_runs(registry_kept, capsys):
    text = (Path(__file__).parent.parent / "README.md").read_text()
    block = re.search(r"<!-- own-system example.*?-->\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(compile(block, "README.md (own-system example)", "exec"), namespace)
    assert "| node |" in capsys.readouterr().out
    assert physode.make_system("my_duffing", delta=0.2) == namespace["MyDuffing"](delta=0.2)
    assert namespace["x"].shape == (8, 41, 2)


def test_a_subclass_from_the_users_module_runs_the_whole_python_pipeline(user_module, tmp_path):
    module = __import__(user_module)
    system = physode.register_system(module.DampedOscillator)(damping=0.2)
    data = TrajectoryDataset.generate(system, 24, 4.0, 0.1, seed=1)
    # the truth physode simulated for the user's field is the closed form
    expected = _closed_form(data.x[:, 0], data.t)
    assert torch.allclose(data.x, expected, atol=1e-10)
    saved = data.save(tmp_path / "data.npz")
    loaded = TrajectoryDataset.load(saved)
    assert loaded.system == system and loaded.system_spec == {"name": system.name, "params": {"stiffness": 4.0, "damping": 0.2}}
    model = physode.build_model("node", loaded, hidden=16)
    result = physode.fit(model, loaded, physode.TrainConfig(steps=30, val_every=10), out_dir=tmp_path / "node")
    assert physode.load_model(tmp_path / "node" / "model.pt").system_spec == system.spec()
    report = physode.compare({"node": result.model}, loaded)
    assert report.rows["true system"]["median_error"]["1.0"] < 1e-9  # the truth scored against itself
    assert report.rows["node"]["energy_drift"] is not None  # the user's energy is used
    out = physode.job.evaluate_models(saved, [tmp_path / "node"], tmp_path / "eval", log=lambda *_: None)
    assert {p.name for p in (out / "figures").iterdir()} >= {"phase_portraits.png", "energy.png", "vector_field_node.png",
                                                             "error_vs_horizon.png"}


@pytest.mark.parametrize("attribute", ["DampedOscillator", "circle"])
def test_physode_compare_takes_the_users_module_by_import_path(user_module, attribute, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["compare", f"{user_module}:{attribute}", "--preset", "smoke", "--models", "node,resnet", "--out", str(out),
                 "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["rows"]) == {"true system", "node", "resnet"}
    assert report["rows"]["true system"]["field_error_test"] == 0.0
    assert (out / "figures" / "phase_portraits.png").exists() and (out / "figures" / "vector_field_node.png").exists()
    assert (out / "figures" / "energy.png").exists() == (attribute == "DampedOscillator")  # the ODESystem has no energy
    # the run folder's files are read back with the registered system: plot redraws them; in a session that has not
    # registered it, plot says how, and --system registers it
    assert main(["plot", str(out)]) == 0
    name = json.loads((out / "report.json").read_text())["meta"]["system"]["name"]
    del registry.SYSTEMS[name]
    capsys.readouterr()
    assert main(["plot", str(out)]) == 2
    assert "register" in capsys.readouterr().err
    assert main(["plot", str(out), "--system", f"{user_module}:{attribute}"]) == 0


def test_physode_simulate_imports_the_users_module_from_pythonpath(user_module, tmp_path):
    out = tmp_path / "data.npz"
    run = subprocess.run([sys.executable, "-m", "physode", "simulate", f"{user_module}:DampedOscillator", "--n", "4",
                          "--t-end", "1", "--param", "stiffness=9.0", "-o", str(out), "--quiet"],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert run.returncode == 0, run.stderr
    data = TrajectoryDataset.load(out)  # this process has not imported the module: the file loads as data
    assert data.system_spec["params"] == {"stiffness": 9.0, "damping": 0.2} and not data.has_system
    assert torch.allclose(data.x, _closed_form(data.x[:, 0], data.t, k=9.0), atol=1e-10)


def test_an_odesystem_from_a_function_is_a_system(registry_kept):
    def forced(t, x, u):
        t = torch.as_tensor(t, dtype=x.dtype)
        return torch.stack([x[..., 1], -x[..., 0] + torch.cos(2 * t).expand(x.shape[:-1])], dim=-1)

    system = ODESystem(forced, state_names=["q", "v"], initial_states=lambda n, gen: gen.uniform(-1, 1, (n, 2)),
                       name="forced_oscillator", time_dependent=True)
    assert system.state_dim == 2 and system.control_dim == 0 and system.spec() == {"name": "forced_oscillator", "params": {}}
    data = TrajectoryDataset.generate(system, 6, 3.0, 0.1, seed=0)
    # x'' = -x + cos 2t from (q0, v0): q = q0 cos t + v0 sin t + (cos t - cos 2t) / 3
    t, x0 = data.t, data.x[:, 0]
    q = x0[:, :1] * torch.cos(t) + x0[:, 1:] * torch.sin(t) + (torch.cos(t) - torch.cos(2 * t)) / 3
    assert torch.allclose(data.x[..., 0], q, atol=1e-10)
    assert data.time_dependent and physode.build_model("node", data).time_dependent
    with pytest.raises(PhysodeError, match="takes no time input"):
        physode.build_model("resnet", data)
    assert torch.equal(system.sample_initial_states(5, seed=3), system.sample_initial_states(5, seed=3))
    physode.register_system(system)
    assert physode.make_system("forced_oscillator") is system


def test_a_file_naming_an_unregistered_system_loads_as_data_and_says_how_to_register(user_module, tmp_path):
    module = __import__(user_module)
    system = module.DampedOscillator()
    data = TrajectoryDataset.generate(system, 8, 2.0, 0.1)  # not registered: the dataset keeps the object itself
    assert data.system is system and data.has_system
    path = data.save(tmp_path / "data.npz")
    model = physode.build_model("node", data, hidden=8)
    physode.fit(model, data, physode.TrainConfig(steps=5, val_every=5), out_dir=tmp_path / "node")
    loaded = TrajectoryDataset.load(path)
    assert not loaded.has_system and loaded.system_spec == system.spec()
    assert torch.equal(loaded.x, data.x)
    with pytest.raises(UnknownSystemError, match=r"register_system") as caught:
        _ = loaded.system
    assert "\n" not in str(caught.value) and system.name in str(caught.value)
    physode.fit(physode.build_model("node", loaded, hidden=8), loaded, physode.TrainConfig(steps=5, val_every=5))  # trains
    assert physode.load_model(tmp_path / "node" / "model.pt").system_spec == system.spec()
    physode.register_system(module.DampedOscillator)
    assert TrajectoryDataset.load(path).system == system


def test_loading_a_file_never_imports_a_module_it_names(tmp_path, monkeypatch):
    pendulum_data = TrajectoryDataset.generate(physode.Pendulum(), 4, 1.0, 0.1)
    marker = tmp_path / "imported"
    (tmp_path / "trap_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Trap: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("trap_module:Trap", "trap_module"):
        path = pendulum_data.save(tmp_path / "data.npz")
        with np.load(path) as archive:
            arrays = dict(archive)
        meta = json.loads(str(arrays["metadata"]))
        meta["system"] = {"name": name, "params": {}}
        arrays["metadata"] = np.array(json.dumps(meta))
        np.savez(path, **arrays)
        loaded = TrajectoryDataset.load(path)
        assert not loaded.has_system and loaded.name == name
        with pytest.raises(UnknownSystemError):
            _ = loaded.system
    assert not marker.exists() and "trap_module" not in sys.modules


def test_an_installed_packages_entry_point_is_found_by_name(user_module, tmp_path, monkeypatch):
    dist = tmp_path / "src" / "userphys_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: userphys-pkg\nVersion: 1.0\n")
    name = MODULE_NAME(user_module)
    (dist / "entry_points.txt").write_text(f"[physode.systems]\n{name} = {user_module}:DampedOscillator\nwrong_name = "
                                           f"{user_module}:DampedOscillator\n")
    assert name in physode.systems.known_names() and user_module not in sys.modules  # listed, not imported
    with pytest.raises(PhysodeError, match="must be the system's name"):
        physode.make_system("wrong_name")
    system = physode.make_system(name, stiffness=2.0)
    assert type(system).__name__ == "DampedOscillator" and system.params.stiffness == 2.0
    # a broken entry point says which one and how to fix it
    (dist / "entry_points.txt").write_text("[physode.systems]\nbroken_osc = no_such_module_xyz:Thing\n")
    with pytest.raises(PhysodeError, match="broken_osc.*could not be loaded.*reinstall"):
        physode.make_system("broken_osc")


class _Good(System):
    name = "good_test_system"
    state_names = ("a", "b")

    def vector_field(self, t, x, u=None):
        return -x

    def sample_initial_states(self, n, seed=0):
        return torch.ones(n, 2, dtype=torch.float64)


def _variant(name, **methods):
    return type(name, (_Good,), {"name": name, **methods})


BAD_SYSTEMS = {
    "wrong shape": (_variant("bad_shape", vector_field=lambda self, t, x, u=None: x[..., :1]), "returned shape"),
    "wrong dtype": (_variant("bad_dtype", vector_field=lambda self, t, x, u=None: x.float()), "float32"),
    "wrong device": (_variant("bad_device", vector_field=lambda self, t, x, u=None: torch.empty(x.shape, dtype=x.dtype,
                                                                                              device="meta")), "device"),
    "not a tensor": (_variant("bad_type", vector_field=lambda self, t, x, u=None: x.numpy()), "torch tensor"),
    "non-finite": (_variant("bad_nan", vector_field=lambda self, t, x, u=None: x / 0), "not finite"),
    "state names": (_variant("bad_names", state_names=("a", "b", "c"), state_dim=2), "3 state_names"),
}


@pytest.mark.parametrize("make, words", BAD_SYSTEMS.values(), ids=BAD_SYSTEMS)
def test_a_malformed_system_fails_in_one_line_before_anything_is_written(make, words, tmp_path):
    path = tmp_path / "data.npz"
    with pytest.raises(PhysodeError, match=words) as caught:
        TrajectoryDataset.generate(make(), 4, 1.0, 0.1).save(path)
    assert "\n" not in str(caught.value) and not path.exists()


def test_registry_errors_name_the_fix(registry_kept, tmp_path, monkeypatch):
    physode.register_system(_Good)
    physode.register_system(_Good)  # the same class again is fine
    other = type("_Good", (_Good,), {})
    with pytest.raises(PhysodeError, match="already registered.*replace=True"):
        physode.register_system(other)
    physode.register_system(other, replace=True)
    with pytest.raises(PhysodeError, match="System subclass or instance"):
        physode.register_system(lambda t, x, u: x)
    with pytest.raises(PhysodeError, match="already taken by"):
        TrajectoryDataset.generate(type("Clash", (_Good,), {"name": "pendulum"})(), 2, 1.0, 0.1)
    no_name = ODESystem(lambda t, x, u: -x, state_names=("a",), name="no_starts")
    with pytest.raises(PhysodeError, match="no initial-state distribution.*initial_states="):
        no_name.sample_initial_states(3)
    with pytest.raises(PhysodeError, match="pass name="):
        ODESystem(lambda t, x, u: -x, state_names=("a",))
    with pytest.raises(PhysodeError, match="three arguments"):
        ODESystem(lambda t, x: -x, state_names=("a",), name="two_args")
    with pytest.raises(PhysodeError, match="box of 2"):
        ODESystem(lambda t, x, u: -x, state_names=("a", "b"), name="bad_box", initial_states=[(0, 1)])
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_user_module.py").write_text("raise RuntimeError('oops in my module')\n")
    for text, words in [("no_such_module_abc:Thing", "cannot import module 'no_such_module_abc'"),
                        ("broken_user_module:Thing", "RuntimeError: oops in my module"),
                        ("physode:NoSuchThing", "has no 'NoSuchThing'"),
                        ("physode:simulate", "not a physode.System"),
                        ("nope", "unknown system 'nope'.*register_system")]:
        with pytest.raises(PhysodeError, match=words):
            physode.resolve_system(text)


@pytest.mark.parametrize("args, words", [
    (["simulate", "no_such_module_abc:Thing", "-o", "x.npz"], "cannot import module"),
    (["simulate", "physode:NoSuchThing", "-o", "x.npz"], "has no 'NoSuchThing'"),
    (["compare", "nope", "--preset", "smoke"], "unknown system 'nope'"),
    (["compare", "physode:simulate", "--preset", "smoke"], "not a physode.System"),
])
def test_the_cli_refuses_bad_systems_in_one_line_and_writes_nothing(args, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("physode: error:") and re.search(words, err)
    assert list(tmp_path.iterdir()) == []


def test_compare_leaves_out_models_that_cannot_represent_the_system_and_refuses_them_when_asked(user_module, tmp_path,
                                                                                              capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = textwrap.dedent('''
        import torch, physode
        def lorenz_like(t, x, u):
            return torch.stack([x[..., 1] - x[..., 0], -x[..., 1], -x[..., 2]], dim=-1)
        three = physode.ODESystem(lorenz_like, state_names=("x", "y", "z"), initial_states=[(-1, 1)] * 3, name="three_d")
    ''')
    (tmp_path / "src" / "three_d_module.py").write_text(module)
    assert main(["compare", "three_d_module:three", "--models", "hnn", "--preset", "smoke", "--quiet"]) == 2
    assert "even number of states" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    sys.modules.pop("three_d_module", None)


def test_valid_times_are_also_reported_in_lyapunov_times_where_the_system_gives_its_exponent(registry_kept):
    def decay(t, x, u):
        return -x

    for exponent in (None, 2.5):
        system = ODESystem(decay, state_names=("a", "b"), initial_states=[(1, 2), (1, 2)], name="decay",
                           lyapunov_exponent=exponent)
        data = TrajectoryDataset.generate(system, 10, 2.0, 0.1, seed=0)
        slow = physode.ODESystem(lambda t, x, u: -0.8 * x, state_names=("a", "b"), name="slow_decay")
        report = physode.compare({"slower": slow}, data, system=system)
        row = report.rows["slower"]
        # e(t) = |exp(0.2 t) - 1| passes 10% at t = ln(1.1) / 0.2 = 0.48: the first grid time after it is 0.5
        assert row["valid_time"] == pytest.approx(0.5)
        if exponent is None:
            assert "valid_lyapunov_times" not in row and "Lyapunov" not in report.to_markdown()
        else:
            assert row["valid_lyapunov_times"] == pytest.approx(0.5 * exponent)
            assert "valid time (Lyapunov times)" in report.to_markdown() and "0.50 (1.25)" in report.to_markdown()
            assert report.meta["lyapunov_exponent"] == exponent


def test_a_malformed_system_named_on_the_command_line_fails_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys,
                                                                                          registry_kept):
    (tmp_path / "bad_field_module.py").write_text(textwrap.dedent('''
        import physode, torch
        class Flat(physode.System):
            name = "flat_field"
            state_names = ("a", "b")
            def vector_field(self, t, x, u=None):
                return x.sum(-1)
            def sample_initial_states(self, n, seed=0):
                return torch.ones(n, 2, dtype=torch.float64)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "bad_field_module:Flat", "--n", "4", "-o", "out.npz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "returned shape (4,)" in err and not (tmp_path / "out.npz").exists()
    sys.modules.pop("bad_field_module", None)


def test_radau_takes_a_field_that_multiplies_its_control_and_fit_refuses_an_autonomous_model_of_forced_data():
    bilinear = ODESystem(lambda t, x, u: torch.stack([x[..., 1], -x[..., 0] * (1 + u[..., 0])], dim=-1), state_names=("q", "v"),
                         control_dim=1, name="bilinear")
    t = torch.linspace(0, 2, 21, dtype=torch.float64)
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    implicit = physode.simulate(bilinear, x0, t, u=[[0.5]], method="radau", rtol=1e-10, atol=1e-10)
    explicit = physode.simulate(bilinear, x0, t, u=[[0.5]])
    torch.testing.assert_close(implicit, explicit, atol=1e-7, rtol=0)  # q'' = -1.5 q
    torch.testing.assert_close(explicit[0, :, 0], torch.cos(math.sqrt(1.5) * t), atol=1e-10, rtol=0)
    forced = TrajectoryDataset.generate(physode.Duffing(gamma=0.5), 8, 2.0, 0.1)
    with pytest.raises(PhysodeError, match="time_dependent=True"):
        physode.fit(physode.NeuralODE(2), forced, physode.TrainConfig(steps=2))
    with pytest.raises(PhysodeError, match="state_names"):
        ODESystem(lambda t, x, u: x, state_names=None, name="nameless_states")


def test_physode_compare_runs_a_one_dimensional_system_and_draws_its_state_against_time(tmp_path, monkeypatch, capsys,
                                                                                    registry_kept):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "logistic_module.py").write_text(textwrap.dedent('''
        import physode
        def logistic(t, x, u):
            return x * (1 - x)
        growth = physode.ODESystem(logistic, state_names=("p",), initial_states=[(0.05, 0.5)])
    '''))
    out = tmp_path / "run"
    assert main(["compare", "logistic_module:growth", "--preset", "smoke", "--models", "node,resnet", "--out", str(out),
                 "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["rows"]) == {"true system", "node", "resnet"}  # hnn needs an even number of states: left out
    # the truth is the closed form p(t) = 1 / (1 + (1/p0 - 1) e^-t)
    data = TrajectoryDataset.load(out / "data.npz")
    x0 = data.x_clean[:, :1]  # (N, 1, 1)
    expected = 1 / (1 + (1 / x0 - 1) * torch.exp(-data.t.reshape(1, -1, 1)))
    assert torch.allclose(data.x_clean, expected, rtol=1e-10, atol=1e-12)
    assert (out / "figures" / "phase_portraits.png").exists()
    sys.modules.pop("logistic_module", None)


def test_phase_portraits_draw_one_state_against_time():
    import matplotlib

    matplotlib.use("Agg")
    t = torch.linspace(0, 1, 5)
    truth = torch.stack([t, 2 * t], dim=-1).expand(3, 5, 2)
    figure = physode.plot.phase_portrait_figure(t, truth, {"m": truth + 1}, dims=(1,), names=("a", "b"))
    ax = figure.axes[0]
    first = ax.lines[0]
    assert np.allclose(first.get_xdata(), t) and np.allclose(first.get_ydata(), 2 * t)  # b against t
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("t", "b")
    with pytest.raises(PhysodeError, match="dims must be two state indices"):
        physode.plot.phase_portrait_figure(t, truth, {}, dims=(0, 1, 0))


def test_a_stiff_system_is_solved_with_radau_by_default_everywhere_the_truth_is_needed(registry_kept):
    import importlib

    simulation = importlib.import_module("physode.simulate")  # the module (physode.simulate is the function)
    from physode.systems import VanDerPol

    stiff = VanDerPol(mu=1000.0)
    assert simulation.default_method(stiff) == "radau" and simulation.default_method(VanDerPol()) == "dopri8"
    x0 = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    t = torch.linspace(0, 300.0, 4, dtype=torch.float64)
    reference = physode.simulate(stiff, x0, t, method="radau")
    assert torch.equal(stiff.rollout(x0, t), reference)
    data = TrajectoryDataset.generate(stiff, 10, 100.0, 20.0, seed=1)
    assert data.meta["method"] == "radau" and data.meta["rtol"] == simulation.RADAU_RTOL
    # compare solves the stiff truth (here scored against itself) instead of refusing it
    report = physode.compare({"itself": stiff}, data)
    assert report.rows["itself"]["valid_time"] == pytest.approx(report.meta["t_end"])
    assert set(report.rows["itself"]["median_error"].values()) == {0.0}
    # an ODESystem says it is stiff with stiff=True
    def relax(t, x, u):
        return -1e6 * (x - torch.cos(torch.as_tensor(t, dtype=x.dtype)))
    fast = ODESystem(relax, state_names=("x",), initial_states=[(0, 1)], stiff=True, time_dependent=True)
    assert fast.stiff and not ODESystem(relax, state_names=("x",)).stiff
    slow = physode.simulate(fast, torch.tensor([[0.0]], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert abs(slow[0, -1, 0].item() - math.cos(1.0)) < 1e-5  # on the slow manifold x = cos t (lag ~ 1e-6)
    with pytest.raises(PhysodeError, match="stiff.*radau"):
        physode.simulate(fast, torch.zeros(1, 1), torch.tensor([0.0, 1.0]), method="dopri5")


class _Nameless(System):
    """A subclass that forgot ``name``."""

    state_names = ("a",)

    def vector_field(self, t, x, u=None):
        return -x

    def sample_initial_states(self, n, seed=0):
        return torch.ones(n, 1, dtype=torch.float64)


@pytest.mark.parametrize("name", [None, "my:system", " padded", "<lambda>", ""])
def test_a_system_name_that_files_cannot_record_is_refused_everywhere_in_one_line(name, registry_kept, tmp_path):
    cls = _Nameless if name is None else type("Named", (_Nameless,), {"name": name})
    path = tmp_path / "data.npz"
    for attempt in (lambda: TrajectoryDataset.generate(cls(), 2, 1.0, 0.1).save(path),
                    lambda: physode.register_system(cls)):
        with pytest.raises(PhysodeError, match="plain name.*name = ") as caught:
            attempt()
        assert "\n" not in str(caught.value) and not path.exists()
    if name is not None:
        with pytest.raises(PhysodeError, match="plain name.*name="):
            ODESystem(lambda t, x, u: -x, state_names=("a",), name=name)

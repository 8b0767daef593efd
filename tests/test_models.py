"""Learned models: shapes, grids, controls, gradients, the adjoint, augmentation, NFE, step maps and Hamiltonians."""

import copy
import math
import pickle

import numpy as np

import pytest
import torch

from physode import PhysodeError, UnknownNameError
from physode.models import MODELS, AugmentedNeuralODE, HamiltonianODE, NeuralODE, ResNetStep
from physode.models.vector_field import MLP

T = torch.linspace(0.0, 1.0, 6, dtype=torch.float64)


def randomized(model, seed=0, scale=0.5):
    """Give the (zero-initialised) last layer random weights so the field is not trivially zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def float64_models(**kw):
    return [
        randomized(NeuralODE(2, hidden=8, dtype="float64", **kw)),
        randomized(AugmentedNeuralODE(2, augment_dim=2, hidden=8, dtype="float64", **kw)),
        randomized(HamiltonianODE(2, hidden=8, dtype="float64", **kw)),
    ]


#: The models built around an MLP on any state; the structured ones (particles, a sparse library) have their own
#: tests (test_interaction.py, test_sindy.py).
NETWORK_MODELS = [name for name in MODELS if name not in ("interaction", "sindy")]


@pytest.mark.parametrize("name", sorted(NETWORK_MODELS))
def test_every_model_rolls_out_on_shared_and_per_trajectory_grids(name):
    cls = MODELS[name]
    model = cls(2, dt=0.2) if cls is ResNetStep else cls(2)
    randomized(model, scale=0.3)
    x0 = torch.randn(3, 2)
    y = model.rollout(x0, T)
    assert y.shape == (3, 6, 2) and y.dtype == torch.float32
    torch.testing.assert_close(y[:, 0], x0)
    grids = torch.stack([T, T * 1.5, T * 0.5])
    per = model.rollout(x0, grids)
    for i in range(3):  # one batched solve equals one solve per trajectory
        torch.testing.assert_close(per[i], model.rollout(x0[i], grids[i]), rtol=2e-4, atol=2e-5)
    assert model.vector_field(0.0, x0).shape == (3, 2) and model.num_parameters > 0


def test_controls_are_held_over_each_interval():
    model = randomized(NeuralODE(2, control_dim=1, hidden=8, dtype="float64", rtol=1e-10, atol=1e-10))
    x0 = torch.randn(2, 2, dtype=torch.float64)
    u = torch.randn(2, 5, 1, dtype=torch.float64)
    y = model.rollout(x0, T, u)
    for k in range(5):  # restarting each interval from the previous state with its constant control
        step = model.rollout(y[:, k], T[k : k + 2], u[:, k])
        torch.testing.assert_close(step[:, 1], y[:, k + 1], rtol=1e-8, atol=1e-9)
    with pytest.raises(PhysodeError, match="takes controls"):
        model.rollout(x0, T)


@pytest.mark.parametrize("solver", [{"solver": "dopri5", "rtol": 1e-10, "atol": 1e-10}, {"solver": "rk4", "step_size": 0.05}])
def test_a_time_dependent_field_sees_the_same_times_on_shared_and_per_trajectory_grids(solver):
    """A shared grid is solved in real time (the field gets a 0-d t), several grids on integer knots: same answers."""
    model = randomized(NeuralODE(2, hidden=8, time_dependent=True, dtype="float64", **solver), scale=0.5)
    x0 = torch.randn(2, 2, dtype=torch.float64)
    grids = torch.stack([T, T + 0.3]).double()
    per = model.rollout(x0, grids)
    for i in range(2):
        torch.testing.assert_close(per[i], model.rollout(x0[i], grids[i]), rtol=1e-7, atol=1e-8)
    assert (model.rollout(x0[0], T.double() + 0.3) - model.rollout(x0[0], T.double())).abs().max() > 1e-3  # t matters


@pytest.mark.parametrize("model", float64_models(solver="rk4", step_size=0.05), ids=["node", "anode", "hnn"])
def test_gradients_match_finite_differences(model):
    x0 = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=torch.float64)
    weight = model.net[0].weight

    def loss():
        return model.rollout(x0, T).pow(2).sum()

    (grad,) = torch.autograd.grad(loss(), weight)
    eps = 1e-6
    for index in [(0, 0), (3, 1), (7, 0)]:
        with torch.no_grad():
            weight[index] += eps
            up = loss()
            weight[index] -= 2 * eps
            down = loss()
            weight[index] += eps
        assert grad[index].item() == pytest.approx(((up - down) / (2 * eps)).item(), rel=1e-5, abs=1e-8)


def test_resnet_gradients_match_finite_differences():
    model = randomized(ResNetStep(2, dt=0.2, hidden=8, dtype="float64"))
    x0 = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    weight = model.net[0].weight
    (grad,) = torch.autograd.grad(model.rollout(x0, T).pow(2).sum(), weight)
    with torch.no_grad():
        weight[2, 1] += 1e-6
        up = model.rollout(x0, T).pow(2).sum()
        weight[2, 1] -= 2e-6
        down = model.rollout(x0, T).pow(2).sum()
    assert grad[2, 1].item() == pytest.approx(((up - down) / 2e-6).item(), rel=1e-6)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["node", "anode", "hnn"])
def test_adjoint_gradients_match_direct_backprop(index):
    tight = {"rtol": 1e-10, "atol": 1e-10}
    direct = float64_models(**tight)[index]
    adjoint = float64_models(adjoint=True, seminorm=index == 0, **tight)[index]
    x0 = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=torch.float64)
    grads = []
    for model in (direct, adjoint):
        model.zero_grad()
        model.rollout(x0, T).pow(2).sum().backward()
        grads.append(torch.cat([torch.zeros_like(p).flatten() if p.grad is None else p.grad.flatten()  # H's bias: no effect
                                for p in model.parameters()]))
    assert ((grads[0] - grads[1]).norm() / grads[0].norm()).item() <= 1e-4
    assert adjoint.nfe_backward > 0 and direct.nfe_backward == 0


def test_augmented_dimensions_start_at_zero_and_are_dropped():
    model = randomized(AugmentedNeuralODE(2, augment_dim=3, hidden=8))
    seen = []
    model.net.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    x0 = torch.randn(4, 2)
    y = model.rollout(x0, T)
    assert y.shape == (4, 6, 2)
    first = seen[0]  # the first evaluation is at (x0, 0): its augmented inputs are zero
    assert first.shape == (4, 5) and torch.equal(first[:, 2:], torch.zeros(4, 3))
    assert any(s[:, 2:].abs().max() > 0 for s in seen[1:])  # the extra dimensions do move
    torch.testing.assert_close(model.vector_field(0.0, x0), model.flow(0.0, model.initial_solver_state(x0), None)[:, :2])


def test_nfe_matches_a_counting_wrapper():
    model = randomized(NeuralODE(2, hidden=8, adjoint=True), scale=0.3)
    calls = []
    model.net.register_forward_hook(lambda *args: calls.append(1))
    y = model.rollout(torch.randn(3, 2), T)
    assert model.nfe_forward == len(calls) > 0
    forward_calls = len(calls)
    y.sum().backward()
    assert model.nfe_backward == len(calls) - forward_calls > 0
    assert model.nfe_total == len(calls)


def test_resnet_rollout_iterates_steps_and_interpolates_between_them():
    model = randomized(ResNetStep(2, dt=0.25, hidden=8, dtype="float64"), scale=0.3)
    x0 = torch.randn(2, 2, dtype=torch.float64)
    t = torch.tensor([0.0, 0.25, 0.5, 0.625, 1.0], dtype=torch.float64)
    y = model.rollout(x0, t)
    s1 = model.step(x0)
    s2 = model.step(s1)
    s3 = model.step(s2)
    s4 = model.step(s3)
    torch.testing.assert_close(y[:, 1], s1)
    torch.testing.assert_close(y[:, 2], s2)
    torch.testing.assert_close(y[:, 3], (s2 + s3) / 2)  # halfway between steps: linear interpolation
    torch.testing.assert_close(y[:, 4], s4)
    torch.testing.assert_close(model.vector_field(0.0, x0), (s1 - x0) / 0.25)


def test_resnet_uses_the_control_of_the_interval_each_step_starts_in():
    model = randomized(ResNetStep(1, dt=0.5, hidden=4, control_dim=1, dtype="float64"), scale=0.3)
    x0 = torch.zeros(1, 1, dtype=torch.float64)
    t = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    u = torch.tensor([[[1.0], [-2.0]]], dtype=torch.float64)
    y = model.rollout(x0, t, u)
    x = x0
    for uk in (1.0, 1.0, -2.0, -2.0):
        x = model.step(x, torch.tensor([[uk]], dtype=torch.float64))
    torch.testing.assert_close(y[:, 2], x)


def test_resnet_steps_on_the_knots_use_their_own_controls_despite_rounding():
    """A grid of 12 points over 0.7 with dt its spacing: 0 + k dt falls a rounding error short of some knots."""
    t = torch.linspace(0.0, 0.7, 12, dtype=torch.float64)
    model = ResNetStep(1, dt=0.7 / 11, control_dim=1, dtype="float64")
    model.step = lambda x, u=None: x + u  # the state adds up the controls the steps used
    u = torch.arange(11, dtype=torch.float64).reshape(1, 11, 1)  # u_k = k
    y = model.rollout(torch.zeros(1, 1, dtype=torch.float64), t, u)[0, :, 0]
    assert y.diff().round().tolist() == list(range(11))


@pytest.mark.parametrize("solver", [{"solver": "rk4", "step_size": 0.05}, {"solver": "dopri5", "rtol": 1e-10, "atol": 1e-10}])
@pytest.mark.parametrize("grid", ["shared", "per_trajectory"])
def test_adjoint_gradients_reach_controls_and_survive_seminorm(solver, grid):
    """Direct backprop is the reference for x0, the parameters and the controls (held per interval, switching
    sign: their jumps at knots are where a wrong segment shows); the adjoint with and without seminorm."""
    times = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    if grid == "per_trajectory":
        times = times * torch.tensor([[1.0], [0.7], [1.3]], dtype=torch.float64)
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    grads = []
    for adjoint, seminorm in ((False, False), (True, False), (True, True)):
        model = randomized(NeuralODE(2, hidden=8, control_dim=1, dtype="float64", adjoint=adjoint, seminorm=seminorm,
                                     **solver), scale=0.4)
        x0 = torch.tensor([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]], dtype=torch.float64, requires_grad=True)
        u = (3.0 * signs).expand(3, 4).unsqueeze(-1).clone().requires_grad_()
        model.rollout(x0, times, u).pow(2).sum().backward()
        grads.append([x0.grad, u.grad, torch.cat([p.grad.flatten() for p in model.parameters()])])
        if adjoint and solver["solver"] == "rk4":
            assert model.nfe_backward == model.nfe_forward  # the backward solve takes the forward's substeps
        elif adjoint:  # each backward interval starts in its own segment (in the next one: 5x the forward's)
            assert model.nfe_backward <= 3 * model.nfe_forward
    for other in grads[1:]:
        for reference, gradient in zip(grads[0], other, strict=True):
            assert gradient is not None
            assert ((gradient - reference).norm() / reference.norm()).item() <= 1e-6


@pytest.mark.parametrize("name", NETWORK_MODELS)
def test_vector_field_takes_states_of_either_dtype(name):
    """A float32 model's field at float64 states: computed in float32, handed back in float64."""
    model = randomized(MODELS[name](2, control_dim=1, hidden=8, **({"dt": 0.1} if name == "resnet" else {})))
    x, u = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    field = model.vector_field(0.0, x, u)
    assert field.dtype == torch.float64 and field.abs().max() > 0
    torch.testing.assert_close(field, model.vector_field(0.0, x.float(), u.float()).double(), rtol=0, atol=0)


def test_hamiltonian_model_conserves_its_hamiltonian():
    model = randomized(HamiltonianODE(4, hidden=16, dtype="float64", rtol=1e-10, atol=1e-10), scale=0.5)
    x0 = torch.randn(5, 4, dtype=torch.float64)
    y = model.rollout(x0, torch.linspace(0, 3, 31, dtype=torch.float64))
    with torch.no_grad():
        energy = model.hamiltonian(y)
    assert (energy - energy[:, :1]).abs().max() < 1e-7
    assert (y[:, -1] - x0).abs().max() > 1e-3  # and it does move


def test_hamiltonian_model_rolls_out_without_recording_gradients():
    """Its field is the gradient of H: computed alike under no_grad and inference mode (the learned env's)."""
    model = randomized(HamiltonianODE(2, control_dim=1, hidden=8, dtype="float64", solver="rk4", step_size=0.05))
    x0, u = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float64)
    y = model.rollout(x0, T, u)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            again = model.rollout(x0, T, u)
        torch.testing.assert_close(again, y.detach(), rtol=0, atol=1e-15)


def test_normalization_changes_units_not_dynamics():
    plain = randomized(NeuralODE(2, hidden=8, dtype="float64", rtol=1e-10, atol=1e-10))
    shifted = randomized(NeuralODE(2, hidden=8, dtype="float64", rtol=1e-10, atol=1e-10))
    shifted.set_normalization([1.0, -2.0], [2.0, 0.5])
    x = torch.randn(3, 2, dtype=torch.float64)
    z = (x - torch.tensor([1.0, -2.0], dtype=torch.float64)) / torch.tensor([2.0, 0.5], dtype=torch.float64)
    scale = torch.tensor([2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(shifted.vector_field(0.0, x), scale * plain.vector_field(0.0, z))
    with pytest.raises(PhysodeError, match="scale > 0"):
        shifted.set_normalization([0.0, 0.0], [1.0, 0.0])


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-6), (torch.float64, 2e-15)])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_tanh_mlp_sigmoid_form_matches_torch_tanh(dtype, tolerance, depth):
    torch.manual_seed(depth)
    net = MLP(3, 2, hidden=16, depth=depth).to(dtype)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.7)  # saturating and linear regions alike
    x = torch.cat([torch.randn(200, 3, dtype=dtype) * 4, torch.zeros(1, 3, dtype=dtype)])
    plain = torch.nn.Sequential(*net)  # the same layers, always through nn.Tanh (torch.tanh)
    traced = net(x)  # gradients recorded: torch.tanh itself, bit for bit, with its own backward
    assert torch.equal(traced, plain(x)) and traced.requires_grad
    with torch.no_grad():
        fast = net(x)  # the sigmoid form
        batched, one, reference = net(x.reshape(3, 67, 3)), net(x[5]), plain(x)
        assert bool(net(torch.full((1, 3), math.nan, dtype=dtype)).isnan().all())
    assert fast.dtype == dtype and fast.shape == (201, 2) and batched.shape == (3, 67, 2) and one.shape == (2,)
    assert not torch.equal(fast, reference), "without gradients on the CPU the sigmoid form runs, not torch.tanh"
    assert (fast - reference).abs().max() <= tolerance * reference.abs().max()
    torch.testing.assert_close(batched.reshape(201, 2), fast, rtol=0, atol=tolerance)
    torch.testing.assert_close(one, fast[5], rtol=0, atol=tolerance)


@pytest.mark.parametrize("make", [
    lambda: NeuralODE(2, hidden=8, depth=3, control_dim=2, dtype="float64", solver="rk4", step_size=0.05),
    lambda: NeuralODE(2, hidden=8, time_dependent=True, control_dim=1, dtype="float64", solver="rk4", step_size=0.05),
    lambda: NeuralODE(2, hidden=8, time_dependent=True, dtype="float64", solver="rk4", step_size=0.05),
    lambda: AugmentedNeuralODE(2, augment_dim=2, hidden=8, control_dim=1, dtype="float64", solver="rk4", step_size=0.05),
])
@pytest.mark.parametrize("grid", ["shared", "per-trajectory"])
def test_a_solve_without_gradients_folds_the_weights_and_matches_torch_tanh(make, grid):
    """Under no_grad a tanh NeuralODE is integrated through its folded sigmoid form (normalisation, controls and
    time folded into the first layer): the same trajectories as the torch.tanh network that runs with gradients."""
    model = randomized(make(), scale=0.7)
    model.set_normalization([0.3, -1.0], [2.0, 0.5])
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    t = T if grid == "shared" else T + torch.rand(4, 1, generator=gen, dtype=torch.float64)
    u = torch.randn(4, 5, model.control_dim, generator=gen, dtype=torch.float64) if model.control_dim else None
    reference = model.rollout(x0, t, u)  # gradients recorded: the torch.tanh network, unfolded
    with torch.no_grad():
        folded = model.rollout(x0, t, u)
        assert type(model.inference_flow()).__name__ == "_FoldedFlow"
    assert reference.requires_grad and not folded.requires_grad
    assert (folded - reference).abs().max() <= 1e-12 * reference.abs().max()
    assert not torch.equal(folded, reference.detach()), "the folded form ran, not the traced network"


def test_folded_weights_follow_every_change_of_the_weights():
    """The folded weights are kept between solves; any change of a weight or of the normalisation refolds them."""
    model = randomized(NeuralODE(2, hidden=8, control_dim=1, dtype="float64", solver="rk4", step_size=0.05))
    x0, u = torch.tensor([[0.5, -0.2]], dtype=torch.float64), torch.tensor([[0.3]], dtype=torch.float64)

    def agrees():  # the folded solve against the unfolded network (gradients recorded)
        with torch.no_grad():
            folded = model.rollout(x0, T, u)
        return (folded - model.rollout(x0, T, u)).abs().max() <= 1e-12

    assert agrees()
    before = model.rollout(x0, T, u).detach()
    model.net[0].weight.data[0, 0] += 0.5  # through .data: no version counter sees it
    assert agrees()
    model.set_normalization([0.1, 0.2], [3.0, 0.5])
    assert agrees()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.rollout(x0, T, u).sum().backward()
    optimizer.step()
    assert agrees()
    model.load_state_dict(randomized(NeuralODE(2, hidden=8, control_dim=1, dtype="float64"), seed=3).state_dict())
    assert agrees()
    with torch.no_grad():
        assert not torch.equal(model.rollout(x0, T, u), before)
    net, z = model.net, torch.randn(5, 3, dtype=torch.float64)  # the network called by itself keeps its form too
    with torch.no_grad():
        first = net(z)
        net[2].bias.data += 1.0
        torch.testing.assert_close(net(z), torch.nn.Sequential(*net)(z), rtol=0, atol=1e-12)
        assert not torch.equal(net(z), first)


def test_a_model_whose_network_folding_would_skip_something_runs_unfolded():
    """Forward hooks (also weight norm's), and weights cast away from the model's dtype, keep the plain network;
    the folded copies are not pickled, deep-copied or carried to another dtype or device."""
    model = randomized(NeuralODE(2, hidden=8, control_dim=1, solver="rk4", step_size=0.05))
    x0, u = torch.tensor([[0.5, -0.2]]), torch.tensor([[0.3]])
    with torch.no_grad():
        moved = model.rollout(x0, T, u)
        assert "_sigmoid_form" in model.net.__dict__
        for again in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert "_sigmoid_form" not in again.net.__dict__
        hook = model.net.register_forward_hook(lambda module, inputs, output: output * 0)
        torch.testing.assert_close(model.rollout(x0, T, u), x0[:, None].expand(1, 6, 2))  # the hook's zero field
        hook.remove()
        torch.testing.assert_close(model.rollout(x0, T, u), moved)
        wide = copy.deepcopy(model).double()  # float32 by its config, float64 weights: promoted as torch.tanh's path is
        assert "_sigmoid_form" not in wide.net.__dict__ and wide.inference_flow() == wide.flow
        torch.testing.assert_close(wide.rollout(x0, T, u), moved, rtol=1e-5, atol=1e-6)
    torch.nn.utils.parametrizations.weight_norm(model.net[0])
    with torch.no_grad():
        torch.testing.assert_close(model.rollout(x0, T, u), moved, rtol=1e-5, atol=1e-6)

    class Damped(NeuralODE):  # a subclass's own flow is what gets integrated, with or without gradients
        def flow(self, t, z, u):
            return super().flow(t, z, u) - z

    class Halved(NeuralODE):  # and so is one that changes a part of it (here the output's scale)
        def _scale_output(self, dz):
            return 0.5 * super()._scale_output(dz)

    for cls in (Damped, Halved):
        sub = randomized(cls(2, hidden=8, control_dim=1, solver="rk4", step_size=0.05))
        with torch.no_grad():
            assert sub.inference_flow() == sub.flow
            unrecorded = sub.rollout(x0, T, u)
        torch.testing.assert_close(unrecorded, sub.rollout(x0, T, u).detach(), rtol=1e-5, atol=1e-6)


def test_solve_is_rollout_without_the_input_checks():
    model = randomized(NeuralODE(2, hidden=8, control_dim=1, dtype="float64"))
    x0 = torch.tensor([[0.5, -0.2], [1.0, 0.3]], dtype=torch.float64)
    times, u = T.expand(2, -1), torch.full((2, 5, 1), 0.3, dtype=torch.float64)
    torch.testing.assert_close(model.solve(x0.float(), times, u.float()), model.rollout(x0, T, u))  # converted to float64
    assert model.nfe_forward > 0
    with pytest.raises(PhysodeError, match="takes controls"):
        model.solve(x0, times)


def test_config_rebuilds_the_model():
    for model in (AugmentedNeuralODE(3, augment_dim=2, hidden=16, solver="rk4", step_size=0.1), ResNetStep(2, dt=0.1),
                  HamiltonianODE(2, control_dim=1), NeuralODE(2, time_dependent=True, dtype="float64")):
        again = type(model)(**model.config())
        assert again.config() == model.config() and again.num_parameters == model.num_parameters


@pytest.mark.parametrize("make, error, words", [
    (lambda: NeuralODE(2, solver="rk45"), UnknownNameError, "dopri5"),
    (lambda: NeuralODE(2, solver="rk4"), PhysodeError, "step_size"),
    (lambda: NeuralODE(2, rtol=0.0), PhysodeError, "rtol"),
    (lambda: NeuralODE(2, activation="sigmoid"), UnknownNameError, "tanh"),
    (lambda: NeuralODE(0), PhysodeError, "state_dim"),
    (lambda: NeuralODE(2, dtype="float16"), UnknownNameError, "float32"),
    (lambda: AugmentedNeuralODE(2, augment_dim=0), PhysodeError, "augment_dim"),
    (lambda: HamiltonianODE(3), PhysodeError, "even state_dim"),
    (lambda: ResNetStep(2, dt=-0.1), PhysodeError, "dt"),
    (lambda: NeuralODE(2).rollout(torch.zeros(3, 3), T), PhysodeError, r"\(N, 2\)"),
    (lambda: NeuralODE(2).rollout(torch.zeros(3, 2), [0.0, 0.0]), PhysodeError, "strictly increasing"),
    (lambda: NeuralODE(2).vector_field(0.0, torch.zeros(3, 5)), PhysodeError, "last dimension 2"),
])
def test_bad_model_arguments(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_a_blowing_up_field_gives_a_solver_error_not_a_traceback():
    from physode import SolverError

    model = NeuralODE(1, hidden=4, dtype="float64", max_steps=50)
    with torch.no_grad():
        model.net[-1].bias.fill_(1.0)
        model.net[-1].weight.zero_()
    model.flow = lambda t, z, u: z**3  # finite-time blow-up: x' = x^3 from x0 = 10 explodes at t = 0.005
    with pytest.raises(SolverError, match="max_steps|non-finite"):
        model.rollout(torch.tensor([[10.0]], dtype=torch.float64), T)
    assert math.isfinite(model.nfe_total)


def test_a_numpy_integer_is_a_state_dim():
    assert HamiltonianODE(np.int64(2)).state_dim == 2 and NeuralODE(np.int64(3)).state_dim == 3


def test_float32_times_do_not_double_the_fixed_steps():
    """0.05 in float32 is 0.0500000007: the interval took two RK4 steps of step_size=0.05 instead of one."""
    model = NeuralODE(2, solver="rk4", step_size=0.05)
    with torch.no_grad():
        model.rollout(torch.zeros(3, 2), torch.tensor([0.0, 0.05, 0.1], dtype=torch.float32))
    assert model.nfe_forward == 4 * 2  # one RK4 step per interval
    with torch.no_grad():
        model.rollout(torch.zeros(3, 2), torch.tensor([0.0, 0.0501], dtype=torch.float64))
    assert model.nfe_forward == 4 * 2  # an interval really longer than step_size still takes two

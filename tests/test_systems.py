"""Systems: registry, parameters, batched vector fields, invariants and initial-state distributions."""

import json
import math

import numpy as np

import pytest
import torch

import physode
from physode import NBody, Pendulum, PhysodeError, SpringMass, UnknownNameError, make_system, system_from_spec

SYSTEMS = [
    Pendulum(), Pendulum(damping=0.3, length=2.0), SpringMass(n_masses=3, damping=0.2), NBody(),
    NBody(n_bodies=4, dim=3, masses=(1.0, 2.0, 0.5, 1.5), softening=0.1),
]
IDS = ["pendulum", "pendulum-damped", "spring3", "nbody", "nbody3d"]


def test_make_system_by_name_and_params():
    assert make_system("pendulum", length=2.0) == Pendulum(length=2.0)
    assert make_system("spring_mass", n_masses=4).state_dim == 8
    assert make_system("nbody", n_bodies=5, dim=3).state_dim == 30
    assert set(physode.SYSTEMS) >= {"pendulum", "spring_mass", "nbody", "double_pendulum", "cart_pole", "van_der_pol",
                                    "duffing", "lorenz"}
    builtin = {cls.name for cls in physode.systems.BUILTIN_SYSTEMS}  # other tests may have registered their own
    assert {name: type(make_system(name)).name for name in builtin} == {name: name for name in builtin}


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="'nbody', 'pendulum', 'spring_mass',.*'van_der_pol'.*register_system"):
        make_system("triple_pendulum")
    with pytest.raises(UnknownNameError, match="'damping', 'gravity', 'length', 'mass'"):
        make_system("pendulum", lenght=2.0)


@pytest.mark.parametrize("name, params, word", [
    ("pendulum", {"length": -1.0}, "length"),
    ("pendulum", {"gravity": float("nan")}, "gravity"),
    ("pendulum", {"damping": -0.1}, "damping"),
    ("spring_mass", {"n_masses": 0}, "n_masses"),
    ("spring_mass", {"stiffness": "stiff"}, "stiffness"),
    ("nbody", {"n_bodies": 1}, "n_bodies"),
    ("nbody", {"dim": 4}, "dim"),
    ("nbody", {"n_bodies": 3, "masses": [1.0, 2.0]}, "masses"),
    ("nbody", {"masses": [1.0, -2.0, 1.0]}, "masses"),
])
def test_bad_parameters_name_the_parameter(name, params, word):
    with pytest.raises(PhysodeError, match=word):
        make_system(name, **params)


def test_numpy_numbers_are_parameters_stored_as_python_numbers():
    made = [Pendulum(length=np.float32(2.0), rod=np.True_), SpringMass(mass=np.float16(0.5), n_masses=np.int64(2)),
            NBody(n_bodies=np.int32(3), dim=np.int64(3), masses=np.array([1.0, 2.0, 0.5]), gravity=np.float32(2.0))]
    plain = [Pendulum(length=2.0, rod=True), SpringMass(mass=0.5, n_masses=2), NBody(dim=3, masses=(1.0, 2.0, 0.5), gravity=2.0)]
    for system, same in zip(made, plain, strict=True):
        assert system == same and system_from_spec(json.loads(json.dumps(system.spec()))) == same
        assert all(type(v) in (int, float, bool, tuple) for v in vars(system.params).values() if v is not None)
    with pytest.raises(PhysodeError, match="masses"):
        NBody(masses=np.ones((3, 1)))
    with pytest.raises(PhysodeError, match="gravity"):
        Pendulum(gravity=np.bool_(True))


@pytest.mark.parametrize("system", SYSTEMS, ids=IDS)
def test_spec_round_trips_through_json(system):
    spec = json.loads(json.dumps(system.spec()))
    assert system_from_spec(spec) == system
    assert len(system.state_names) == system.state_dim


@pytest.mark.parametrize("system", SYSTEMS, ids=IDS)
def test_vector_field_is_batched_over_leading_dims(system):
    x = system.sample_initial_states(12, seed=1).reshape(3, 4, -1)
    u = torch.randn(3, 4, system.control_dim, dtype=torch.float64)
    batched = system.vector_field(0.0, x, u)
    assert batched.shape == x.shape
    for i in range(3):
        for j in range(4):
            one = system.vector_field(0.0, x[i, j], u[i, j])
            torch.testing.assert_close(batched[i, j], one, rtol=1e-13, atol=1e-13)
    single = system.vector_field(0.0, x.float(), u.float())
    assert single.dtype == torch.float32
    torch.testing.assert_close(single, batched.float(), rtol=1e-5, atol=1e-5)


def _energy_rate(system, x, u=None):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(system.energy(x).sum(), x)
    return (grad * system.vector_field(0.0, x, u)).sum(-1)


@pytest.mark.parametrize("system", [Pendulum(), Pendulum(rod=True, length=0.7), SpringMass(n_masses=4), NBody(),
                                    NBody(n_bodies=4, dim=3, softening=0.1)],
                         ids=["pendulum", "rod", "spring4", "nbody", "nbody3d"])
def test_energy_is_conserved_by_the_field(system):
    x = system.sample_initial_states(32, seed=2)
    rate = _energy_rate(system, x)
    assert rate.abs().max() < 1e-12 * (1 + system.energy(x).abs().max())


def test_damping_dissipates_energy_at_the_exact_rate():
    pend = Pendulum(damping=0.3, mass=2.0, length=1.5)
    x = pend.sample_initial_states(16, seed=3)
    torch.testing.assert_close(_energy_rate(pend, x), -0.3 * 2.0 * 1.5**2 * x[:, 1] ** 2)
    chain = SpringMass(n_masses=3, damping=0.2, mass=0.7)
    x = chain.sample_initial_states(16, seed=3)
    torch.testing.assert_close(_energy_rate(chain, x), -0.2 * 0.7 * (x[:, 3:] ** 2).sum(-1))


def test_control_enters_as_torque_and_force():
    pend = Pendulum(mass=2.0, length=0.5)
    x = pend.sample_initial_states(5, seed=0)
    u = torch.full((5, 1), 3.0, dtype=torch.float64)
    diff = pend.vector_field(0.0, x, u) - pend.vector_field(0.0, x)
    torch.testing.assert_close(diff[:, 1], torch.full((5,), 3.0 / (2.0 * 0.25), dtype=torch.float64))
    chain = SpringMass(n_masses=2, mass=4.0)
    x = chain.sample_initial_states(5, seed=0)
    u = torch.tensor([[1.0, -2.0]], dtype=torch.float64).expand(5, 2)
    diff = chain.vector_field(0.0, x, u) - chain.vector_field(0.0, x)
    torch.testing.assert_close(diff[:, 2:], u / 4.0)


def test_spring_chain_matches_its_stiffness_matrix():
    chain = SpringMass(stiffness=2.0, mass=0.5, n_masses=4)
    q = torch.randn(4, dtype=torch.float64)
    stiffness = 2.0 / 0.5 * (2 * torch.eye(4) - torch.diag(torch.ones(3), 1) - torch.diag(torch.ones(3), -1)).double()
    a = chain.vector_field(0.0, torch.cat([q, torch.zeros(4, dtype=torch.float64)]))[4:]
    torch.testing.assert_close(a, -stiffness @ q)


def test_nbody_field_matches_a_pairwise_loop():
    system = NBody(n_bodies=4, dim=3, masses=(1.0, 2.0, 0.5, 1.5), gravity=0.7, softening=0.1)
    x = system.sample_initial_states(1, seed=5)[0]
    q = x[:12].reshape(4, 3)
    expected = torch.zeros(4, 3, dtype=torch.float64)
    for i in range(4):
        for j in range(4):
            if i != j:
                d = q[j] - q[i]
                expected[i] += 0.7 * system.params.masses[j] * d / (d.dot(d) + 0.01) ** 1.5
    torch.testing.assert_close(system.vector_field(0.0, x)[12:], expected.flatten())
    potential = sum(-0.7 * system.params.masses[i] * system.params.masses[j] / math.sqrt(float(((q[i] - q[j]) ** 2).sum()) + 0.01)
                    for i in range(4) for j in range(i + 1, 4))
    assert system.potential_energy(x).item() == pytest.approx(potential, rel=1e-13)


def test_nbody_momenta_are_conserved_by_the_field():
    for system in (NBody(n_bodies=5, masses=(1.0, 2.0, 3.0, 0.5, 1.0)), NBody(n_bodies=4, dim=3)):
        x = system.sample_initial_states(8, seed=7)
        p = system.position_dim
        a = system.vector_field(0.0, x)[:, p:]
        force = (system.masses(x)[:, None] * a.reshape(8, system.params.n_bodies, -1)).sum(1)
        assert force.abs().max() < 1e-12
        step = 1e-6  # d/dt of angular momentum by central difference along the field
        f = system.vector_field(0.0, x)
        rate = (system.angular_momentum(x + step * f) - system.angular_momentum(x - step * f)) / (2 * step)
        assert rate.abs().max() < 1e-7


def test_initial_states_are_reproducible_and_documented():
    for system in SYSTEMS:
        a, b = system.sample_initial_states(50, seed=11), system.sample_initial_states(50, seed=11)
        assert a.dtype == torch.float64 and a.shape == (50, system.state_dim)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.equal(a, system.sample_initial_states(50, seed=12))
    pend = Pendulum(gravity=3.0, length=2.0)
    x = pend.sample_initial_states(2000, seed=0)
    assert (pend.energy(x) < 0.9 * 2 * 3.0 * 2.0).all()
    assert x[:, 0].abs().max() <= 0.75 * math.pi and x[:, 0].abs().max() > 2.0
    chain = SpringMass(stiffness=4.0, n_masses=2)
    x = chain.sample_initial_states(2000, seed=0)
    assert x[:, :2].abs().max() <= 1.0 and 1.9 < x[:, 2:].abs().max() <= 2.0


@pytest.mark.parametrize("system", [NBody(), NBody(n_bodies=5, masses=(1.0, 2.0, 3.0, 0.5, 1.0)), NBody(n_bodies=4, dim=3)],
                         ids=["3", "5-mixed", "4-3d"])
def test_nbody_initial_states_are_bound_separated_and_at_rest(system):
    x = system.sample_initial_states(200, seed=3)
    n, d = system.params.n_bodies, system.params.dim
    assert system.momentum(x).abs().max() < 1e-12
    q = x[:, : n * d].reshape(200, n, d)
    centre = (system.masses(x)[:, None] * q).sum(1) / system.masses(x).sum()
    assert centre.abs().max() < 1e-12
    assert (system.energy(x) < 0).all()
    gaps = (q[:, :, None] - q[:, None]).norm(dim=-1) + torch.eye(n) * 1e9
    assert gaps.min() > 0.5 * 2 * math.pi / n * max(1, n / 3) * 0.8


def test_a_rod_pendulum_swings_like_a_point_pendulum_of_two_thirds_its_length():
    """Uniform rod about one end: I = m l^2 / 3, arm l / 2, so theta'' = -(3 g / 2 l) sin theta + 3 u / (m l^2)."""
    from problems import pendulum_exact

    rod = Pendulum(rod=True, gravity=10.0, length=1.2, mass=0.5)
    t = torch.linspace(0, 5, 51, dtype=torch.float64)
    x0 = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    exact = pendulum_exact(10.0, 1.2 * 2 / 3, 2.0, t.numpy())
    np.testing.assert_allclose(physode.simulate(rod, x0, t)[0].numpy(), exact, atol=1e-10)
    u = torch.ones(1, 1, dtype=torch.float64)
    torque = rod.vector_field(0.0, x0, u) - rod.vector_field(0.0, x0)
    assert torque[0, 1].item() == pytest.approx(3 / (0.5 * 1.2**2))
    assert rod.energy(torch.tensor([math.pi, 0.0], dtype=torch.float64)).item() == pytest.approx(0.5 * 10.0 * 1.2)
    with pytest.raises(PhysodeError, match="rod must be True"):
        Pendulum(rod=1)


def test_nbody_pairwise_sums_in_chunks_equal_the_whole(monkeypatch):
    """Many bodies: the pairwise sums run in chunks of bodies (bounded memory) and give the same field and energy."""
    from physode.systems import nbody

    system = NBody(n_bodies=7, dim=3, masses=[1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 0.7], softening=0.05)
    x = system.sample_initial_states(5, seed=1)
    whole_field, whole_energy = system.vector_field(0.0, x), system.energy(x)
    monkeypatch.setattr(nbody, "PAIR_BUDGET", 5 * 7 * 2)  # two bodies per chunk, the last chunk one
    torch.testing.assert_close(system.vector_field(0.0, x), whole_field, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(system.energy(x), whole_energy, rtol=1e-14, atol=1e-14)
    big = NBody(n_bodies=1024, dim=2, softening=0.01)
    q = torch.cat([torch.randn(2, 2048, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
                   torch.zeros(2, 2048, dtype=torch.float64)], dim=1)  # a random cluster at rest
    monkeypatch.setattr(nbody, "PAIR_BUDGET", 2**15)  # 16 bodies per chunk
    chunked = big.vector_field(0.0, q)
    monkeypatch.setattr(nbody, "PAIR_BUDGET", 2**24)  # one chunk
    torch.testing.assert_close(chunked, big.vector_field(0.0, q), rtol=1e-12, atol=1e-12)


def _checksums(x):
    w = torch.arange(1, x.numel() + 1, dtype=torch.float64).reshape(x.shape) / x.numel()
    return [float(x.abs().sum()), float((x**2).sum()), float((w * x).sum()), *x[0, :2].tolist()]


@pytest.mark.parametrize("system, n, seed, expected", [
    (NBody(), 4, 3, [26.66246619194743, 18.92266584813998, 0.028044699354092706, -0.8416886858942353, 0.4514817231163314]),
    (NBody(n_bodies=16, dim=3, masses=tuple(1.0 + 0.1 * i for i in range(16)), softening=0.1), 3, 5,
     [438.3314327662472, 1535.5430323085711, 2.995480948728978, 5.543128526268781, 1.2942297030988419]),
    (NBody(n_bodies=16), 2, 0, [266.10294036081956, 949.70793301301, -2.501676218158067, 3.5074733578762882, 4.029329430515707]),
], ids=["3", "16-3d-mixed", "16"])
def test_nbody_few_bodies_still_start_on_the_same_ring(system, n, seed, expected):
    """Up to RING_MAX_BODIES the states are those of the ring sampler before the many-body cluster was added
    (checksums computed with that code), so existing datasets stay the same."""
    from physode.systems.nbody import RING_MAX_BODIES

    assert system.params.n_bodies <= RING_MAX_BODIES == 16
    assert _checksums(system.sample_initial_states(n, seed=seed)) == pytest.approx(expected, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("n_bodies, dim, masses, softening, samples", [
    (17, 2, None, 0.0, 64), (32, 3, "mixed", 0.1, 64), (256, 2, None, 0.05, 16), (1024, 2, None, 0.0, 6),
    (1024, 3, None, 0.01, 6),
], ids=["17", "32-3d-mixed-soft", "256-soft", "1024", "1024-3d"])
def test_nbody_many_bodies_start_in_a_bound_separated_virialised_cluster(n_bodies, dim, masses, softening, samples):
    """Beyond RING_MAX_BODIES: a Plummer-like cluster on a jittered lattice, as the NBody docstring says."""
    if masses == "mixed":
        masses = tuple(float(m) for m in np.random.default_rng(0).uniform(0.2, 3.0, n_bodies))
    system = NBody(n_bodies=n_bodies, dim=dim, masses=masses, softening=softening)
    x = system.sample_initial_states(samples, seed=4)
    assert x.dtype == torch.float64 and x.shape == (samples, system.state_dim) and torch.isfinite(x).all()
    torch.testing.assert_close(x, system.sample_initial_states(samples, seed=4), rtol=0, atol=0)
    assert (x - system.sample_initial_states(samples, seed=5)).abs().min() > 0  # every number differs
    m = system.masses(x)
    q = x[:, : system.position_dim].reshape(samples, n_bodies, dim)
    v = x[:, system.position_dim :].reshape(samples, n_bodies, dim)
    centre = (m[:, None] * q).sum(1)
    assert (centre.norm(dim=-1) <= 1e-12 * (m * q.norm(dim=-1)).sum(-1)).all()
    assert (system.momentum(x).norm(dim=-1) <= 1e-12 * (m * v.norm(dim=-1)).sum(-1)).all()
    kinetic, potential = system.kinetic_energy(x), system.potential_energy(x)
    assert (system.energy(x) < 0).all()
    virial = 2 * kinetic / potential.abs()
    assert (virial >= 0.9 - 1e-12).all() and (virial <= 1.1 + 1e-12).all()
    assert virial.max() - virial.min() > 0.02  # drawn per sample, not one value
    gaps = torch.cdist(q, q, compute_mode="donot_use_mm_for_euclid_dist") + 1e9 * torch.eye(n_bodies)
    assert gaps.min() >= 0.5 - 1e-9  # the documented minimum separation
    assert gaps.min() < 0.75  # and not a much larger one: the bound is what the lattice gives
    radius = q.norm(dim=-1)  # the Plummer radius a is a third of the cut, the farthest body (up to the centring)
    inside = (radius < radius.max(1, keepdim=True).values / 3).double().mean()
    plummer = (0.5 / 0.9) ** (dim / 2)  # (a^2 / 2 a^2)^(dim/2) / s^dim, s^2 = 9 / 10
    if n_bodies >= 256:
        assert plummer - 0.03 < inside < plummer + 0.09


def test_nbody_potential_energy_in_chunks_matches_the_pairwise_sum(monkeypatch):
    """The potential energy (each pair once, chunked over states and bodies) equals the plain pairwise sum."""
    from physode.systems import nbody

    system = NBody(n_bodies=40, dim=3, masses=tuple(1.0 + 0.05 * i for i in range(40)), gravity=0.7, softening=0.2)
    x = system.sample_initial_states(6, seed=2).reshape(2, 3, -1)  # leading dims (2, 3)
    q = x[..., : system.position_dim].reshape(2, 3, 40, 3)
    r = (torch.cdist(q, q, compute_mode="donot_use_mm_for_euclid_dist") ** 2 + 0.04).sqrt()
    mm = system.masses(x)[:, None] * system.masses(x)
    expected = -0.7 * (mm / r).triu(1).sum((-1, -2))
    whole = system.potential_energy(x)
    assert whole.shape == (2, 3)
    torch.testing.assert_close(whole, expected, rtol=1e-13, atol=0)
    for budget in (40 * 7, 40, 1):  # 7 rows of all six states; one state a row; the same
        monkeypatch.setattr(nbody, "PAIR_BUDGET", budget)
        torch.testing.assert_close(system.potential_energy(x), whole, rtol=1e-14, atol=0)
    torch.testing.assert_close(system.potential_energy(x.float()), whole.float(), rtol=1e-5, atol=0)


def test_a_many_body_cluster_keeps_its_energy_and_momentum_under_simulation():
    system = NBody(n_bodies=64, softening=0.05)
    x0 = system.sample_initial_states(8, seed=0)
    xs = physode.simulate(system, x0, torch.linspace(0, 0.1, 3, dtype=torch.float64), method="dopri5", rtol=1e-9, atol=1e-9)
    energy = system.energy(xs)
    assert (energy < 0).all()
    assert ((energy - energy[:, :1]) / energy[:, :1]).abs().max() < 1e-8  # measured 5e-10
    assert system.momentum(xs).abs().max() < 1e-10
    assert (xs[:, -1] - xs[:, 0]).abs().max() > 0.01  # the bodies did move

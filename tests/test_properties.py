"""Property-based tests (hypothesis): datasets survive a file round trip exactly, and the input-cleanup
funnel (physode.checks) accepts exactly the well-formed inputs and returns them unchanged in float64."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from physode import Pendulum, PhysodeError, TrajectoryDataset
from physode.checks import as_float_tensor, rollout_inputs, time_grid

FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def grids(draw, n: int, n_times: int, shared: bool, starts=(-100.0, 100.0), shortest=1e-3):
    """Strictly increasing times: a start and positive increments, one row or one per trajectory."""
    rows = 1 if shared else n
    start = draw(hnp.arrays(np.float64, (rows, 1), elements=st.floats(*starts)))
    steps = draw(hnp.arrays(np.float64, (rows, n_times - 1), elements=st.floats(shortest, 10.0)))
    grid = np.concatenate([start, start + np.cumsum(steps, axis=1)], axis=1)
    return grid[0] if shared else grid


@st.composite
def datasets(draw):
    n, n_times = draw(st.integers(1, 5)), draw(st.integers(2, 6))
    recorded = draw(st.booleans())  # a physode system's data, or recorded data of any width (system_spec None)
    dim = draw(st.integers(1, 4)) if recorded else 2
    t = draw(grids(n, n_times, shared=draw(st.booleans()), starts=(0.0, 0.99), shortest=1.0))  # grids overlap
    x = draw(hnp.arrays(np.float64, (n, n_times, dim), elements=FINITE))
    noise = draw(st.booleans())
    x_clean = draw(hnp.arrays(np.float64, x.shape, elements=FINITE)) if noise else None
    controls = draw(st.integers(1, 2)) if recorded else 1
    u = draw(hnp.arrays(np.float64, (n, n_times - 1, controls), elements=FINITE)) if draw(st.booleans()) else None
    split = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 2)))
    first, last = np.max(t[..., 0]), np.min(t[..., -1])
    t_train = draw(st.one_of(st.none(), st.floats(first, last, exclude_min=True)))
    meta = {"source": "hypothesis", "note": draw(st.text(max_size=20)), "level": draw(st.integers(-5, 5))}
    return TrajectoryDataset(t, x, None if recorded else Pendulum().spec(), x_clean=x_clean, u=u, split=split,
                             t_train=t_train, meta=meta)


@SETTINGS
@given(data=datasets())
def test_a_dataset_survives_a_file_round_trip_exactly(data, tmp_path):
    back = TrajectoryDataset.load(data.save(tmp_path / "data.npz"))
    for name in ("t", "x", "x_clean", "split"):
        assert torch.equal(getattr(back, name), getattr(data, name)), name
    assert (back.u is None) == (data.u is None) and (data.u is None or torch.equal(back.u, data.u))
    assert back.t_train == data.t_train and back.system_spec == data.system_spec and back.meta == data.meta
    assert back.summary() == data.summary()


@SETTINGS
@given(values=hnp.arrays(st.sampled_from([np.float32, np.float64, np.int32, np.int64]), hnp.array_shapes(max_dims=3),
                         elements=st.integers(-1000, 1000)))
def test_real_finite_arrays_pass_the_funnel_unchanged(values):
    tensor = as_float_tensor(values, "x")
    assert tensor.dtype == torch.float64 and tensor.shape == values.shape
    assert np.array_equal(tensor.numpy(), values.astype(np.float64))


@SETTINGS
@given(values=hnp.arrays(np.float64, hnp.array_shapes(min_side=1, max_dims=3), elements=FINITE),
       bad=st.sampled_from([math.nan, math.inf, -math.inf]), where=st.integers(0, 10**6))
def test_any_nan_or_inf_is_refused_by_name(values, bad, where):
    values.flat[where % values.size] = bad
    with pytest.raises(PhysodeError, match="^speed must be finite"):
        as_float_tensor(values, "speed")


@SETTINGS
@given(t=hnp.arrays(np.float64, st.integers(2, 8), elements=st.floats(-50, 50)))
def test_a_grid_is_accepted_exactly_when_it_increases_strictly(t):
    if np.all(np.diff(t) > 0):
        assert np.array_equal(time_grid(t).numpy(), t)
    else:
        with pytest.raises(PhysodeError, match="strictly increasing"):
            time_grid(t)


@SETTINGS
@given(n=st.integers(1, 4), n_times=st.integers(2, 5), dim=st.integers(1, 3), controls=st.integers(1, 2),
       shared=st.booleans(), constant=st.booleans(), data=st.data())
def test_rollout_inputs_bring_every_accepted_form_to_one_batched_form(n, n_times, dim, controls, shared, constant, data):
    x0 = data.draw(hnp.arrays(np.float64, (n, dim), elements=FINITE))
    t = data.draw(grids(n, n_times, shared))
    u_shape = (n, controls) if constant else (n, n_times - 1, controls)
    u = data.draw(hnp.arrays(np.float64, u_shape, elements=FINITE))
    x, times, held, single = rollout_inputs(x0, t, u, dim, controls)
    assert not single and x.shape == (n, dim) and times.shape == (n, n_times)
    assert held.shape == (n, n_times - 1, controls)
    assert torch.equal(times, torch.from_numpy(np.broadcast_to(t, (n, n_times)).copy()))
    assert torch.equal(held, torch.from_numpy(np.broadcast_to(u[:, None] if constant else u, held.shape).copy()))
    with pytest.raises(PhysodeError, match="x0 must have shape"):
        rollout_inputs(np.zeros((n, dim + 1)), t, u, dim, controls)
    with pytest.raises(PhysodeError, match="u must have shape"):
        rollout_inputs(x0, t, np.zeros((n, n_times, controls)), dim, controls)

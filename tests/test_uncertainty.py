"""Trust without the truth: prediction intervals from an ensemble's spread, their recalibration (Kuleshov et al.
2018) checked on synthetic Gaussian errors against sampling error, the predicted error and trust horizon, and what
compare, the figures and the CLI make of an ensemble."""

import json
import math
import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
from scipy.stats import norm

import physode
from physode import EnsemblePrediction, PhysodeError, TrainConfig, TrajectoryDataset, build_model, compare, fit, plot
from physode.evaluate import crossing_times
from physode.uncertainty import (Calibration, calibration_curve, check_level, coverage, predicted_errors,
                                 prediction_interval)

#: a few seconds of training: enough for the members to leave the zero field they start as, and to differ
FAST = {"steps": 20, "batch_size": 16, "window": 4, "val_every": 5, "warm_start_steps": 200}


def _gaussian(n, true_scale, seed, members=5):
    """A prediction whose errors are ``true_scale`` times its spread: ``(prediction, target)`` of ``(n, 3, 2)``
    (time 0 is the initial state: no spread, no error)."""
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, 3, 2, generator=gen, dtype=torch.float64)
    std = 0.1 + torch.rand(n, 3, 2, generator=gen, dtype=torch.float64)
    std[:, 0] = 0.0
    target = mean + true_scale * std * torch.randn(n, 3, 2, generator=gen, dtype=torch.float64)
    return EnsemblePrediction(mean, std, mean.expand(members, -1, -1, -1)), target


def _binomial_bound(p, n):
    """Four standard deviations of an observed share of ``n`` draws with probability ``p``."""
    return 4 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("true_scale", [0.4, 1.0, 2.5, 20.0])  # 20: errors far past the spread (no capped interval)
def test_a_recalibrated_interval_covers_its_nominal_share_of_fresh_gaussian_errors(true_scale):
    fitted, fitted_target = _gaussian(4000, true_scale, seed=0)
    calibration = Calibration.fit(fitted, fitted_target)
    assert calibration.samples == 4000 * 2 * 2  # the initial states (no spread) are left out
    test, test_target = _gaussian(4000, true_scale, seed=1)
    later = torch.zeros(4000, 3, dtype=torch.bool)
    later[:, 1:] = True
    n = int(later.sum()) * 2
    for level in (0.5, 0.8, 0.9, 0.95):
        lower, upper = prediction_interval(test, level, calibration)
        observed = np.nanmean(coverage(lower, upper, test_target, later))
        assert abs(observed - level) < _binomial_bound(level, n) + 0.01  # + the calibration set's own error
        raw = np.nanmean(coverage(*prediction_interval(test, level), test_target, later))
        expected_raw = 2 * norm.cdf(norm.ppf((1 + level) / 2) / true_scale) - 1  # the spread's own coverage
        assert abs(raw - expected_raw) < _binomial_bound(expected_raw, n)
    # the one-sigma multiplier is the errors' own scale
    assert calibration.sigma_scale == pytest.approx(true_scale, rel=0.05)
    assert Calibration().sigma_scale == pytest.approx(1.0)


def _drifting(n, seed, members=5):
    """A prediction over times 0 .. 4 whose errors are half its spread at times 1 and 2 and three times it at 3 and 4
    (a spread that grows slower than the errors): ``(prediction, target, times (5,))``."""
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, 5, 2, generator=gen, dtype=torch.float64)
    std = 0.1 + torch.rand(n, 5, 2, generator=gen, dtype=torch.float64)
    std[:, 0] = 0.0
    factor = torch.tensor([0.0, 0.5, 0.5, 3.0, 3.0], dtype=torch.float64)[None, :, None]
    target = mean + factor * std * torch.randn(n, 5, 2, generator=gen, dtype=torch.float64)
    return EnsemblePrediction(mean, std, mean.expand(members, -1, -1, -1)), target, torch.arange(5.0)


def test_a_recalibration_in_bands_of_time_covers_early_and_late_states_alike():
    fitted, fitted_target, times = _drifting(3000, seed=10)
    banded = Calibration.fit(fitted, fitted_target, times=times, bands=2)
    assert banded.bands == 2 and banded.edges.tolist() == [2.0]  # equal shares: times 1-2 and 3-4
    pooled = Calibration.fit(fitted, fitted_target)
    test, test_target, _ = _drifting(3000, seed=11)
    early, late = torch.zeros(3000, 5, dtype=torch.bool), torch.zeros(3000, 5, dtype=torch.bool)
    early[:, 1:3], late[:, 3:] = True, True
    n = 3000 * 2 * 2
    inside = coverage(*prediction_interval(test, 0.9, banded, times), test_target)
    for which in (early, late):
        assert abs(inside[which.numpy()].mean() - 0.9) < _binomial_bound(0.9, n) + 0.01
    pooled_inside = coverage(*prediction_interval(test, 0.9, pooled), test_target)
    assert pooled_inside[early.numpy()].mean() > 0.97 and pooled_inside[late.numpy()].mean() < 0.85  # one map misses
    kappa = banded.sigma_scales(times)
    assert kappa[1] == pytest.approx(0.5, rel=0.06) and kappa[4] == pytest.approx(3.0, rel=0.06)
    assert banded.sigma_scales(torch.tensor([100.0]))[0] == kappa[4]  # later times: the last band's map
    errors = predicted_errors(test, banded, times)
    assert torch.allclose(errors, torch.as_tensor(kappa)[None] * predicted_errors(test))
    curve = calibration_curve(test, test_target, calibration=banded, times=times)
    assert np.abs(np.array(curve["observed"]) - np.array(curve["levels"])).max() < 0.03
    back = Calibration.from_dict(json.loads(json.dumps(banded.to_dict())))
    assert np.array_equal(back.sigma_scales(times), kappa) and back.bands == 2
    with pytest.raises(PhysodeError, match="2 bands of time: pass the times"):
        banded.bounds(0.9)
    with pytest.raises(PhysodeError, match="needs the times"):
        Calibration.fit(fitted, fitted_target, bands=2)
    with pytest.raises(PhysodeError, match="fewer bands"):
        Calibration.fit(*_drifting(1, seed=12)[:2], times=times, bands=5)


def test_the_calibration_curve_lies_on_the_diagonal_once_recalibrated():
    fitted, target = _gaussian(3000, 2.0, seed=3)
    calibration = Calibration.fit(fitted, target)
    test, test_target = _gaussian(3000, 2.0, seed=4)
    raw = calibration_curve(test, test_target)
    fixed = calibration_curve(test, test_target, calibration=calibration)
    levels = np.array(fixed["levels"])
    assert levels[0] == pytest.approx(0.05) and levels[-1] == pytest.approx(0.95)
    assert np.abs(np.array(fixed["observed"]) - levels).max() < 0.03
    assert (np.array(raw["observed"]) < levels).all()  # a spread half the errors' size covers too little


def test_a_calibration_round_trips_through_json_and_keeps_its_intervals():
    prediction, target = _gaussian(500, 1.7, seed=5)
    calibration = Calibration.fit(prediction, target)
    back = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert back.bounds(0.9) == calibration.bounds(0.9) and back.samples == calibration.samples
    assert Calibration.from_dict(Calibration().to_dict()).identity


def test_the_predicted_error_and_trust_horizon_follow_the_spread():
    mean = torch.ones(2, 4, 2, dtype=torch.float64)
    std = torch.tensor([0.0, 0.01, 0.05, 0.2], dtype=torch.float64)[None, :, None].expand(2, 4, 2).clone()
    std[1] *= 3  # the second trajectory's spread grows three times as fast
    prediction = EnsemblePrediction(mean, std, mean.expand(3, -1, -1, -1))
    errors = predicted_errors(prediction)
    assert torch.allclose(errors[0], std[0].norm(dim=-1) / math.sqrt(2))
    calibration = Calibration.fit(*_gaussian(4000, 2.0, seed=7))  # errors twice the spread
    scaled = predicted_errors(prediction, calibration)
    assert torch.allclose(scaled, calibration.sigma_scale * errors) and 1.9 < calibration.sigma_scale < 2.1
    times = np.broadcast_to(np.arange(4.0), (2, 4))
    horizons = crossing_times(errors.numpy(), times, np.ones((2, 4), dtype=bool), 0.1)
    assert horizons.tolist() == [3.0, 2.0]  # the first time the predicted error passes 10%
    assert crossing_times(errors.numpy(), times, np.ones((2, 4), dtype=bool), 10.0).tolist() == [3.0, 3.0]  # never


def test_bad_levels_and_ensembles_without_spread_are_refused_in_one_line():
    prediction, target = _gaussian(10, 1.0, seed=6)
    for level in (0, 1, 1.5, -0.1, True, "0.9", None):
        with pytest.raises(PhysodeError, match="strictly between 0 and 1"):
            check_level(level)
        with pytest.raises(PhysodeError, match="level"):
            prediction_interval(prediction, level)
    single = EnsemblePrediction(prediction.mean, torch.zeros_like(prediction.std), prediction.mean[None])
    for call in (lambda: prediction_interval(single), lambda: Calibration.fit(single, target),
                 lambda: calibration_curve(single, target)):
        with pytest.raises(PhysodeError, match="at least 2 members.*ensemble=K"):
            call()
    initial_only = EnsemblePrediction(prediction.mean[:, :1], prediction.std[:, :1], prediction.members[:, :, :1])
    with pytest.raises(PhysodeError, match="beyond the initial states"):
        Calibration.fit(initial_only, target[:, :1])


@pytest.fixture(scope="module")
def scored():
    data = TrajectoryDataset.generate(physode.Pendulum(), 24, t_end=2.0, dt=0.1, seed=2)
    torch.manual_seed(1)
    ensemble = build_model("node", data, ensemble=3, hidden=8)
    fit(ensemble, data, TrainConfig(**FAST))
    single = build_model("node", data, hidden=8)
    fit(single, data, TrainConfig(**FAST))
    return data, ensemble, compare({"ensemble": ensemble, "single": single}, data, horizons=(1, 2))


def test_compare_scores_an_ensemble_by_its_mean_and_adds_its_trust_scores(scored):
    data, ensemble, report = scored
    assert "uncertainty" not in report.rows["single"] and set(report.uncertainty) == {"ensemble"}
    u = report.rows["ensemble"]["uncertainty"]
    assert u["members"] == 3 and u["level"] == 0.9 and u["recalibrated"]
    test = data.test
    with torch.no_grad():
        mean = ensemble.rollout(test.x_clean[:, 0], torch.as_tensor(report.times)).double()
    assert torch.allclose(report.trajectories["ensemble"], mean, atol=1e-6)
    kept = report.uncertainty["ensemble"]
    truth = report.truth
    for key, calibration in (("coverage", kept["calibration"]), ("coverage_raw", Calibration())):
        with torch.no_grad():
            prediction = ensemble.predict(test.x_clean[:, 0], torch.as_tensor(report.times))
        lower, upper = prediction_interval(EnsemblePrediction(*(v.double() for v in prediction)), 0.9, calibration,
                                           torch.as_tensor(report.times))
        at = int(np.argmin(np.abs(report.times - 2 * data.t_train)))
        inside = ((truth[:, at] >= lower[:, at]) & (truth[:, at] <= upper[:, at])).double().mean()
        assert u[key]["2.0"] == pytest.approx(float(inside), abs=1e-6)
    assert 0 <= u["trust_horizon"] <= 2 * data.t_train
    assert u["trust_horizon"] == pytest.approx(float(np.median(kept["trust_horizons"])))
    assert report.rows["ensemble"]["valid_time"] == pytest.approx(float(np.median(kept["valid_times"])))
    assert u["trust_rank_correlation"] is None or -1 <= u["trust_rank_correlation"] <= 1
    assert kept["calibration"].samples == int(data.val.mask[:, 1:].sum()) * data.state_dim
    assert kept["calibration"].bands == physode.evaluate.CALIBRATION_BANDS
    text = report.to_markdown()
    assert "Trust without the truth" in text and "| ensemble | 3 |" in text
    json.dumps(report.to_dict())  # the trust scores are plain JSON


def test_the_calibration_and_error_band_figures_draw_an_ensemble_and_name_a_missing_one(scored, tmp_path):
    data, _, report = scored
    plot.calibration_figure(report, path=tmp_path / "calibration.png")
    plot.error_band_figure(report, "ensemble", index=1, names=data.state_names, path=tmp_path / "band.png")
    assert (tmp_path / "calibration.png").stat().st_size > 1000 and (tmp_path / "band.png").stat().st_size > 1000
    with pytest.raises(PhysodeError, match="'single'"):
        plot.error_band_figure(report, "single")
    with pytest.raises(PhysodeError, match="index"):
        plot.error_band_figure(report, index=len(report.truth))
    alone = compare({"single": scored[1].members[0]}, data, horizons=(1,))
    with pytest.raises(PhysodeError, match="no ensemble of 2 or more members"):
        plot.calibration_figure(alone)


def test_compare_refuses_a_bad_level(scored):
    data, ensemble, _ = scored
    with pytest.raises(PhysodeError, match="level must be a coverage level"):
        compare({"ensemble": ensemble}, data, level=90)


# -- the learned env of an ensemble --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble_checkpoint(tmp_path_factory):
    """An ensemble of 3 NeuralODEs trained briefly on controlled pendulum data, saved as one model.pt."""
    data = TrajectoryDataset.generate(physode.Pendulum(), 24, t_end=2.0, dt=0.05, controls="random", seed=0)
    torch.manual_seed(0)
    ensemble = build_model("node", data, ensemble=3, hidden=8)
    out = tmp_path_factory.mktemp("ensemble")
    fit(ensemble, data, TrainConfig(**FAST), out_dir=out)
    return out / "model.pt"


def _member_steps(model, x, action, dt):
    """The members' states ``dt`` after ``x: (1, D)`` under ``action``, ``(K, D)``."""
    u = torch.tensor(action, dtype=torch.float64)[None, None]
    with torch.no_grad():
        return model.member_rollouts(x, torch.tensor([[0.0, dt]], dtype=torch.float64), u)[:, 0, 1].double()


@pytest.mark.parametrize("member", ["mean", "sample"])
def test_a_learned_env_steps_an_ensemble_by_its_mean_or_one_member_and_reports_the_spread(ensemble_checkpoint, member):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    from physode.envs import LearnedDynamicsEnv

    env = LearnedDynamicsEnv(ensemble_checkpoint, member=member)
    model = physode.load_model(ensemble_checkpoint)
    _, info = env.reset(seed=3)
    assert np.array_equal(info["uncertainty"], np.zeros(2))
    chosen = info.get("member")
    assert (chosen is not None) == (member == "sample") and (chosen is None or 0 <= chosen < 3)
    spreads = []
    for k in range(5):
        x = env._state.clone()
        action = np.array([np.sin(k)], dtype=np.float32)
        _, _, _, _, info = env.step(action)
        members = _member_steps(model, x, action, env.dt)
        expected = members.mean(0) if member == "mean" else members[chosen]
        np.testing.assert_allclose(env._state[0].numpy(), expected.numpy(), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(info["uncertainty"], members.std(0, correction=0).numpy(), rtol=1e-5, atol=1e-9)
        assert info.get("member") == chosen  # one member for the whole episode
        spreads.append(np.linalg.norm(info["uncertainty"]))
    assert min(spreads) > 0  # the members differ
    if member == "sample":  # each episode draws its member from the env's generator: seeds repeat it, others vary it
        draws = {LearnedDynamicsEnv(ensemble_checkpoint, member=member).reset(seed=s)[1]["member"] for s in range(12)}
        assert len(draws) > 1 and env.reset(seed=3)[1]["member"] == chosen
        vec = gym.make_vec("physode/Learned-v0", num_envs=3, vectorization_mode="vector_entry_point",
                           checkpoint=str(ensemble_checkpoint), member=member)
        _, vec_info = vec.reset(seed=5)
        singles = [LearnedDynamicsEnv(ensemble_checkpoint, member=member).reset(seed=5 + i)[1]["member"] for i in range(3)]
        assert vec_info["member"].tolist() == singles and vec_info["uncertainty"].shape == (3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gymnasium's advice on unbounded boxes
        check_env(gym.make("physode/Learned-v0", checkpoint=str(ensemble_checkpoint), member=member).unwrapped)


def test_a_learned_env_refuses_to_sample_members_of_a_single_model(ensemble_checkpoint):
    from physode.envs import LearnedDynamicsEnv

    model = physode.load_model(ensemble_checkpoint)
    single = model.members[0]
    single.system_spec = model.system_spec
    with pytest.raises(PhysodeError, match="ensemble of 2 or more members"):
        LearnedDynamicsEnv(single, member="sample")
    with pytest.raises(PhysodeError, match="member"):
        LearnedDynamicsEnv(model, member="median")


def test_physode_compare_trains_ensembles_and_reports_and_draws_their_trust(tmp_path, capsys):
    from physode.cli import main

    out = tmp_path / "run"
    argv = ["compare", "pendulum", "--preset", "smoke", "--models", "node", "--ensemble", "2", "--level", "0.8",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert physode.load_model(out / "node" / "model.pt", expected=physode.Ensemble).size == 2
    report = json.loads((out / "report.json").read_text())
    u = report["rows"]["node"]["uncertainty"]
    assert report["meta"]["level"] == 0.8 and u["members"] == 2 and set(u["coverage"]) == {"1.0", "2.0", "4.0"}
    assert "80% coverage @ t=1 (raw)" in (out / "report.md").read_text()
    assert (out / "figures" / "calibration.png").exists() and (out / "figures" / "error_band_node.png").exists()
    capsys.readouterr()
    assert main(argv[:6] + argv[8:]) == 2  # the same folder without --ensemble: its model is an ensemble of 2
    assert "holds an ensemble of 2, not one; continue the run with --ensemble 2" in capsys.readouterr().err

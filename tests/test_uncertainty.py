"""Trust without the truth: prediction intervals from an ensemble's spread, their recalibration (Kuleshov et al.
2018) checked on synthetic Gaussian errors against sampling error, the predicted error and trust horizon, and what
compare, the figures and the CLI make of an ensemble."""

import json
import math

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


@pytest.mark.parametrize("true_scale", [0.4, 1.0, 2.5])
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
        lower, upper = prediction_interval(EnsemblePrediction(*(v.double() for v in prediction)), 0.9, calibration)
        at = int(np.argmin(np.abs(report.times - 2 * data.t_train)))
        inside = ((truth[:, at] >= lower[:, at]) & (truth[:, at] <= upper[:, at])).double().mean()
        assert u[key]["2.0"] == pytest.approx(float(inside), abs=1e-6)
    assert 0 <= u["trust_horizon"] <= 2 * data.t_train
    assert u["trust_horizon"] == pytest.approx(float(np.median(kept["trust_horizons"])))
    assert report.rows["ensemble"]["valid_time"] == pytest.approx(float(np.median(kept["valid_times"])))
    assert u["trust_rank_correlation"] is None or -1 <= u["trust_rank_correlation"] <= 1
    assert kept["calibration"].samples == int(data.val.mask[:, 1:].sum()) * data.state_dim
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

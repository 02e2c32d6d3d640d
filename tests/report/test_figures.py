"""Figure builders: every figure renders from the fixture runs; the derived angles are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ghuda.report.figures import FIGURES, _after_angles, _weight_curves, make_figure
from ghuda.report.outputs import figure_names


def test_after_angle_gh_is_supplement_under_conflict():
    theta = np.array([30.0, 100.0, 135.0, 170.0])
    cos = np.cos(np.radians(theta))
    after = _after_angles("gh", {}, cos, np.array([1.0, 2.0, 0.5, 3.0]), np.ones(4))
    expected = np.where(theta > 90, 180 - theta, theta)
    np.testing.assert_allclose(after, expected, atol=1e-6)


def test_after_angle_exact_ghpp_is_orthogonal_and_released_ghpp_keeps_directions():
    theta = np.array([100.0, 120.0, 150.0])
    cos = np.cos(np.radians(theta))
    n1, n2 = np.array([1.0, 3.0, 0.2]), np.array([2.0, 1.0, 1.0])
    np.testing.assert_allclose(_after_angles("ghpp_exact", {"t": 0.5}, cos, n1, n2), 90.0,
                               atol=1e-6)
    # released GH++ re-weights the losses: h1 = w1 g1, h2 = w2 g2 keep the angle (w > 0 here)
    np.testing.assert_allclose(_after_angles("ghpp", {"t": 0.5}, cos, n1, n2), theta,
                               atol=1e-6)


def test_zero_gradient_has_no_after_angle():
    out = _after_angles("gh", {}, np.array([-0.5]), np.array([0.0]), np.array([1.0]))
    assert math.isnan(out[0])


def test_weight_curves_match_the_gh_formula():
    angles = np.array([45.0, 90.0, 120.0, 150.0])
    w1, w2 = _weight_curves("gh", {}, angles, ratio=2.0)
    cos = np.cos(np.radians(angles))
    # w1 = 1 - d/|g1|^2 = 1 - cos |g2|/|g1|, w2 = 1 - cos |g1|/|g2| under conflict
    np.testing.assert_allclose(w1, np.where(cos < 0, 1 - cos / 2.0, 1.0), atol=1e-9)
    np.testing.assert_allclose(w2, np.where(cos < 0, 1 - cos * 2.0, 1.0), atol=1e-9)


def test_every_figure_renders_png_and_pdf(fx_summary, tmp_path):
    config, summary = fx_summary
    config["features"] = [{"dataset": "toy", "task": "a->b", "method": "dann",
                           "variants": ["sum", "gh"], "seeds": [0]}]
    config["figures"] = {"tsne_max_points": 30, "tsne_perplexity": 5,
                         "weights_angle_grid": 19}
    names = figure_names(config)
    assert set(names) == set(FIGURES)
    for name in names:
        png, pdf = make_figure(name, config, summary, tmp_path)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert pdf.read_bytes()[:5] == b"%PDF-"
        assert png.stat().st_size > 10_000


def test_unknown_figure_is_an_error(fx_summary, tmp_path):
    config, summary = fx_summary
    with pytest.raises(ValueError, match="unknown figure 'pie'"):
        make_figure("pie", config, summary, tmp_path)
    assert not list(tmp_path.iterdir())

"""Figure builders: every figure renders from the fixture runs; the derived angles are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ghuda.report.figures import _after_angles, curve_harmonizers, make_figure, weight_curves
from ghuda.report.outputs import FIGURE_BUILDERS, figure_names


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
    w1, w2 = weight_curves("gh", {}, angles, ratio=2.0)
    cos = np.cos(np.radians(angles))
    # w1 = 1 - d/|g1|^2 = 1 - cos |g2|/|g1|, w2 = 1 - cos |g1|/|g2| under conflict
    np.testing.assert_allclose(w1, np.where(cos < 0, 1 - cos / 2.0, 1.0), atol=1e-9)
    np.testing.assert_allclose(w2, np.where(cos < 0, 1 - cos * 2.0, 1.0), atol=1e-9)


def test_curve_harmonizers_follow_the_registry():
    """The weights-vs-angle panels: every registered harmonizer whose class says it has a
    weight curve, in registry order; each curve is finite away from fallbacks."""
    import ghuda.harmonize

    names = curve_harmonizers()
    assert names == [n for n in ghuda.harmonize.names() if n in names]
    assert {"gh", "ghpp"} <= set(names)
    assert "sum" not in names
    for name in ghuda.harmonize.names():
        cls = ghuda.harmonize.REGISTRY.get(name)
        assert (name in names) == cls.weight_curve
        if cls.weight_curve:
            w1, w2 = weight_curves(name, {}, np.array([30.0, 120.0]), 1.0)
            assert np.isfinite(w1).all()
            assert np.isfinite(w2).all()


def test_every_figure_renders_png_and_pdf(fx_summary, tmp_path):
    config, summary = fx_summary
    config["features"] = [{"dataset": "toy", "task": "a->b", "method": "dann",
                           "variants": ["sum", "gh"], "seeds": [0]}]
    config["figures"] = {"tsne_max_points": 30, "tsne_perplexity": 5,
                         "weights_angle_grid": 19}
    config.setdefault("tables", {})["ladder"] = {"mechanism_steps": 50}
    names = figure_names(config)
    assert set(names) == set(FIGURE_BUILDERS.names())
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


def _draw(name: str, config, summary):
    from ghuda.report.figures import STYLE, pyplot

    with pyplot().rc_context(STYLE):
        return FIGURE_BUILDERS.get(name)(config, summary)


def test_weight_curves_leave_a_gap_at_a_fallback():
    """Exact GH++ is undefined at 180°: its fallback is not drawn as part of the curve."""
    w1, w2 = weight_curves("ghpp_exact", {"t": 0.5}, np.array([120.0, 179.0, 180.0]), 1.0)
    assert np.isfinite(w1[:2]).all()
    assert np.isfinite(w2[:2]).all()
    assert np.isnan(w1[2])
    assert np.isnan(w2[2])


def test_step_cost_bars_are_centred_on_their_method_and_memory_is_shown(fx_summary):
    config, summary = fx_summary
    runs = summary["runs"]
    summary["runs"] = runs[(runs["method"] == "dann") | (runs["variant"] == "sum")]
    fig = _draw("step_cost", config, summary)
    time_ax, memory_ax = fig.axes[:2]
    assert memory_ax.get_ylabel() == "peak memory (MB)"
    ticks = [t.get_text() for t in memory_ax.get_xticklabels()]
    assert ticks == ["DANN", "CDAN+E"]
    for ax in (time_ax, memory_ax):
        centres = [p.get_x() + p.get_width() / 2 for p in ax.patches]
        dann, cdan = [c for c in centres if c < 0.5], [c for c in centres if c >= 0.5]
        assert (len(dann), len(cdan)) == (3, 1)  # cdan: the baseline only
        assert np.mean(dann) == pytest.approx(0.0)
        assert cdan[0] == pytest.approx(1.0)  # the lone bar sits on its label


def test_conflict_figure_has_bands_in_both_panels_and_distinct_styles(fx_summary):
    config, summary = fx_summary
    fig = _draw("conflict_over_training", config, summary)
    top, bottom = fig.axes[:2]
    assert len(top.collections) == len(bottom.collections) == len(top.lines) > 1
    styles = {(str(line.get_color()), line.get_linestyle(), line.get_marker())
              for line in top.lines}
    assert len(styles) == len(top.lines)


def test_angle_histogram_explains_why_released_ghpp_keeps_the_angle(fx_summary):
    config, summary = fx_summary
    fig = _draw("angle_histograms", config, summary)
    titles = {ax.get_title().split(",")[0]: ax.get_title() for ax in fig.axes if ax.get_title()}
    assert "before = after" in titles["+GH++ (ghpp)"]
    assert "before = after" not in titles["+GH (gh)"]
    assert "zero part" not in " ".join(titles.values())

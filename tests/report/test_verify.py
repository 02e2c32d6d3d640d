"""Verdicts against published numbers."""

from __future__ import annotations

from ghuda.report.reported import ReportedNumbers
from ghuda.report.verify import DIFFERS, MATCH, NOT_RECORDED, verdict_markdown, verdicts


def _reported(published=True, entries=()):
    return ReportedNumbers({"datasets": {"toy": {"published": published, "note": "ours"}},
                            "sources": {"s": {"citation": "Src 2020"}},
                            "entries": list(entries)})


def test_match_differs_not_recorded(fx_summary):
    config, summary = fx_summary
    # oracle Avg of DANN baseline = 68.17; CDAN+E +GH = 73.67
    rep = _reported(entries=[
        {"dataset": "toy", "method": "dann", "variant": "sum", "task": "avg", "value": 69.0,
         "source": "s", "backbone": "resnet50"},
        {"dataset": "toy", "method": "cdan", "variant": "gh", "task": "avg", "value": 80.0,
         "source": "s"},
        {"dataset": "toy", "method": "cdan", "variant": "sum", "task": "a->b", "value": None,
         "source": "s"},
    ])
    table, counts, notes = verdicts(config, summary["runs"], rep)
    assert counts[MATCH] == 1
    assert counts[DIFFERS] == 1
    rows = {(r[1], r[2], r[3]): r for r in table.rows}
    assert rows[("DANN", "baseline", "Avg")][6:8] == ["−0.8", MATCH]
    assert "published with resnet50; run: digit_cnn" in rows[("DANN", "baseline", "Avg")][8]
    assert rows[("CDAN+E", "+GH", "Avg")][7] == DIFFERS
    assert rows[("CDAN+E", "baseline", "a→b")][7] == NOT_RECORDED
    text = verdict_markdown(config, table, counts, notes)
    assert "**Verdict: 1 of 2 compared numbers match** within 2 pp; 1 differ." in text


def test_unpublished_dataset_says_so(fx_summary):
    config, summary = fx_summary
    table, counts, notes = verdicts(config, summary["runs"], _reported(published=False))
    assert not table.rows
    assert not counts
    assert notes == ["Toy: no published numbers exist (ours); nothing to verify."]
    text = verdict_markdown(config, table, counts, notes)
    assert "**Verdict: nothing could be compared.**" in text

"""Golden tests of the table builders on the fixture runs (tests/report/conftest.py).

Expected numbers by hand, DANN on a->b: baseline accuracies 59, 60, 61.5 over seeds 0-2
(mean 60.17, sample std 1.26); +GH adds 1, 1.5, 2 (per seed) on both tasks, so each task's 3
paired differences have mean 1.5 and sd 0.5; tasks as strata: se = sqrt(2 * 0.25 / 3) / 2 =
0.204 with (2 * 0.0833)^2 / (2 * 0.0833^2 / 2) = 4 degrees of freedom, 95% t interval
1.5 +- 2.776 * 0.204 = [0.93, 2.07], t = 7.35 (p = 0.0018), and the exact Wilcoxon p over the
6 pairs = 2 / 2^6 = 0.031; +GH++ adds
exactly 2 everywhere: zero-variance differences, so no t-test p-value and a collapsed interval.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ghuda.report.render import to_latex, to_markdown
from ghuda.report.reported import load_reported
from ghuda.report.tables import build_tables, dataset_table, t_sweep_table, write_tables

REPORTED = """\
datasets:
  toy: {published: true}
sources:
  fx: {citation: "Fixture et al. 2024"}
entries:
  - {dataset: toy, method: dann, variant: sum, task: avg, value: 66.0, source: fx}
  - {dataset: toy, method: dann, variant: gh, task: "a->b", value: 61.0, source: fx}
  - {dataset: toy, method: cdan, variant: gh, task: avg, value: null, source: fx}
"""

NR = "(rep. not recorded)"
DATASET_MD = f"""\
**Toy: target accuracy (%), protocol `last`, mean ± std over seeds per task**

| Method | a→b | b→a | Avg | Δ Avg [CI] | p (t) | p (Wilcoxon) | n | div. | coll. |
|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| DANN | 60.2 ± 1.3 {NR} | 70.2 ± 1.3 {NR} | 65.2 (rep. 66) | — | — | — | 6 | 0/6 | 0/6 |
| +GH | 61.7 ± 1.8 (rep. 61) | 71.7 ± 1.8 {NR} | 66.7 {NR} | +1.5 [+0.9, +2.1] | 0.0018 | 0.031 | 6 | 0/6 | 0/6 |
| +GH++ | 62.2 ± 1.3 {NR} | 72.2 ± 1.3 {NR} | 67.2 {NR} | +2.0 [+2.0, +2.0] | — | 0.031 | 6 | 0/6 | 0/6 |
| CDAN+E | 64.2 ± 1.3 {NR} | 74.2 ± 1.3 {NR} | 69.2 {NR} | — | — | — | 6 | 0/6 | 0/6 |
| +GH | 65.7 ± 1.8 {NR} | 75.7 ± 1.8 {NR} | 70.7 {NR} | +1.5 [+0.9, +2.1] | 0.0018 | 0.031 | 6 | 0/6 | 0/6 |
| +GH++ | 66.2 ± 1.3 {NR} | 76.2 ± 1.3 {NR} | 71.2 {NR} | +2.0 [+2.0, +2.0] | — | 0.031 | 6 | 0/6 | 0/6 |

Protocol last: final iterate; seeds 0–2 (a row's runs: n).

Avg: mean over tasks of each task's mean over the row's runs that completed (diverged runs have no accuracy); for a row below a baseline, over the n pairs where both it and the baseline completed, the same pairs as its Δ, so that Δ = its Avg minus the baseline's Avg over those pairs. n: those runs or pairs.

Δ: paired difference to the baseline (pairs share seed and task): the mean over tasks of each task's mean difference, with its 95% t interval from the within-task spreads (tasks are strata: se² = Σ s²/n over tasks / tasks², Welch-Satterthwaite degrees of freedom; on one task the paired t-test, scipy.stats.ttest_rel); p: that t-test and the Wilcoxon signed-rank test over all pairs (scipy.stats.wilcoxon); n: pairs (no interval or test from fewer than 3 pairs, or with a task of 1 pair).

div.: runs that diverged (non-finite loss; failure.json names the iteration), left out of every mean and of Δ; coll.: runs that completed at chance level or below (final accuracy within 2 points of 100 / classes), kept in the means and in Δ; both out of the row's runs. '(k/n div.)' in a task cell: k of that task's n runs diverged.

rep.: the published number (configs/reported.yaml, with its source); 'not recorded' where none is recorded. Published numbers select on target labels (protocol oracle).
"""  # noqa: E501

SWEEP_TEX = r"""\begin{table}[t]
\centering
\small
\caption{GH++ trade-off t: DANN on Toy a$\to$b, target accuracy (\%), protocol last}
\label{tab:ghpp_t}
\begin{tabular}{lrrrrrr}
\toprule
Variant & t & accuracy & $\Delta$ [CI] & p (t) & p (Wilcoxon) & n \\
\midrule
DANN & --- & 60.2 $\pm$ 1.3 & --- & --- & --- & --- \\
+GH++ (t=0) & 0.00 & 59.2 $\pm$ 1.3 & $-$1.0 [$-$1.0, $-$1.0] & --- & 0.25 & 3 \\
+GH++ & 0.50 & 62.2 $\pm$ 1.3 & +2.0 [+2.0, +2.0] & --- & 0.25 & 3 \\
\bottomrule
\end{tabular}
\par\smallskip\footnotesize $\Delta$: mean paired difference to the baseline over seeds (pairs share seed and task) with its 95\% t interval; p: paired t-test (scipy.stats.ttest\_rel) and Wilcoxon signed-rank test (scipy.stats.wilcoxon); n: pairs (no interval or test from fewer than 3).
\end{table}
"""  # noqa: E501


def _reported(tmp_path: Path):
    path = tmp_path / "reported.yaml"
    path.write_text(REPORTED, encoding="utf-8")
    return load_reported(path)


def test_dataset_table_golden(fx_summary, tmp_path):
    config, summary = fx_summary
    table = dataset_table(config, summary["runs"], "toy", _reported(tmp_path))
    assert to_markdown(table) == DATASET_MD


def test_t_sweep_table_golden_latex(fx_summary):
    config, summary = fx_summary
    assert to_latex(t_sweep_table(config, summary)) == SWEEP_TEX


def test_unpublished_dataset_gets_a_note_not_cells(fx_summary, tmp_path):
    config, summary = fx_summary
    path = tmp_path / "rep.yaml"
    path.write_text("datasets:\n  toy: {published: false, note: built here}\nsources: {}\n"
                    "entries: []\n", encoding="utf-8")
    md = to_markdown(dataset_table(config, summary["runs"], "toy", load_reported(path)))
    assert "rep." not in md.split("\n\n")[1]  # the table body
    assert "Published numbers: none for this dataset (built here)." in md


def test_rows_follow_config_order_and_skip_missing_variants(fx_summary, tmp_path):
    config, summary = fx_summary
    config["tables"]["rows"] = ["sum", "ghpp", "gh", "ghpp_t0"]
    md = to_markdown(dataset_table(config, summary["runs"], "toy", _reported(tmp_path)))
    labels = [line.split(" | ")[0].lstrip("| ") for line in md.splitlines()
              if line.startswith("| ") and "Method" not in line]
    # ghpp_t0 only ran on one task for DANN: its row is marked as a partial average
    assert labels == ["DANN", "+GH++", "+GH", "+GH++ (t=0)", "CDAN+E", "+GH++", "+GH"]
    assert "*: over the tasks this row was run on (a subset)." in md


def test_build_and_write_tables_names_match_outputs(fx_summary, tmp_path):
    from ghuda.report.outputs import table_names

    config, summary = fx_summary
    written = write_tables(build_tables(config, summary, _reported(tmp_path)),
                           tmp_path / "tables")
    assert sorted(p.name for p in written) == sorted(table_names(config))
    tex = (tmp_path / "tables" / "cost.tex").read_text()
    assert r"\toprule" in tex
    assert r"\bottomrule" in tex


def test_diverged_runs_are_counted_and_left_out(fx_summary):
    """DANN+GH seed 2 on b->a diverged (no accuracy); CDAN+E+GH++ diverged on a->b in every
    seed. By hand: DANN+GH b->a keeps 70, 71.5 (mean 70.75, sd 1.06); 5 of its 6 pairs
    remain, its Avg is the mean of its task means over them ((60 + 61.5 + 63.5) / 3 + 70.75)
    / 2 = 66.2, the same pairs as its Δ; CDAN+E+GH++ keeps the 3 b->a pairs (Avg 76.2)."""
    config, summary = fx_summary
    runs = summary["runs"]
    for method, variant, task, seeds in (("dann", "gh", "b->a", [2]),
                                         ("cdan", "ghpp", "a->b", [0, 1, 2])):
        hit = ((runs["method"] == method) & (runs["variant"] == variant)
               & (runs["task"] == task) & runs["seed"].isin(seeds))
        runs.loc[hit, ["acc_last", "acc_source_val", "acc_oracle"]] = float("nan")
        runs.loc[hit, "status"] = "diverged"
    md = to_markdown(dataset_table(config, runs, "toy"))
    body = [line.split(" | ") for line in md.splitlines()
            if line.startswith("| ") and not line.startswith(("| Method", "|:"))]
    dann_gh, cdan_ghpp = body[1], body[5]
    assert (dann_gh[0], cdan_ghpp[0]) == ("| +GH", "| +GH++")
    assert dann_gh[1:4] == ["61.7 ± 1.8", "70.8 ± 1.1 (1/3 div.)", "66.2"]
    assert dann_gh[-3:] == ["5", "1/6", "0/6 |"]
    assert cdan_ghpp[1] == "diverged (3/3)"
    assert cdan_ghpp[3] == "76.2"
    assert cdan_ghpp[-3:] == ["3", "3/6", "0/6 |"]  # only the b->a pairs remain
    assert "div.: runs that diverged" in md


def test_extra_seeds_on_one_task_weigh_tasks_equally(fx_summary):
    """A row (and its baseline) with 3 extra seeds on a->b only: Avg is the mean of the task
    means, not of all runs; the seeds note gives ranges; the protocol table's per-seed means
    keep the seeds that ran both tasks. By hand: DANN a->b 59, 60, 61.5 + three extra runs
    at 100 (mean 80.08), b->a 69, 70, 71.5 (70.17): Avg (80.08 + 70.17) / 2 = 75.1 (all 9 runs
    pooled: 76.7); +GH adds 1.5 to the extra runs as to the first ones, so its Δ stays +1.5."""
    from ghuda.report.frames import balanced_seeds
    from ghuda.report.tables import protocol_table, seed_ranges

    config, summary = fx_summary
    runs = summary["runs"]
    first = runs[(runs["method"] == "dann") & runs["variant"].isin(["sum", "gh"])
                 & (runs["task"] == "a->b") & (runs["seed"] == 1)]
    extra = []
    for seed in (3, 4, 5):
        rows = first.assign(seed=seed)
        rows.loc[:, "acc_last"] = [100.0 + (1.5 if v == "gh" else 0.0)
                                   for v in rows["variant"]]
        extra.append(rows)
    runs = pd.concat([runs, *extra], ignore_index=True)
    md = to_markdown(dataset_table(config, runs, "toy"))
    body = [line.split(" | ") for line in md.splitlines()
            if line.startswith("| ") and not line.startswith(("| Method", "|:"))]
    assert body[0][3] == "75.1"
    assert body[1][4].startswith("+1.5 [")
    assert body[1][7] == "9"
    assert "seeds 0–5 (a row's runs: n)" in md
    assert seed_ranges([0, 1, 2, 5, 7, 8]) == "0–2, 5, 7–8"
    dann = runs[(runs["method"] == "dann") & (runs["variant"] == "sum")]
    assert sorted(balanced_seeds(dann)["seed"].unique()) == [0, 1, 2]
    proto = to_markdown(protocol_table(config, {"runs": runs}))
    assert "| DANN | baseline | 65.2 ± 1.3 |" in proto

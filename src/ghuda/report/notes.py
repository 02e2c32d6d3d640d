"""The note strings under the tables (what a cell or a column means), and `count_notes`."""

from __future__ import annotations

import pandas as pd

from ghuda.report.aggregate import COLLAPSE_MARGIN_PP
from ghuda.report.frames import collapsed_count
from ghuda.report.render import Table

PROTOCOL_TEXT = {
    "last": "last: final iterate",
    "source_val": "source_val: best held-out source-validation accuracy",
    "oracle": "oracle: best target accuracy, selects on TARGET LABELS",
}
PAIRING_NOTE = ("Δ: paired difference to the baseline (pairs share seed and task): the mean "
                "over tasks of each task's mean difference, with its {conf:.0%} t interval "
                "from the within-task spreads (tasks are strata: se² = Σ s²/n over tasks / "
                "tasks², Welch-Satterthwaite degrees of freedom; on one task the paired "
                "t-test, scipy.stats.ttest_rel); p: that t-test and the Wilcoxon signed-rank "
                "test over all pairs (scipy.stats.wilcoxon); n: pairs (no interval or test "
                "from fewer than 3 pairs, or with a task of 1 pair).")

ONE_TASK_PAIRING_NOTE = ("Δ: mean paired difference to the baseline over seeds (pairs share "
                         "seed and task) with its {conf:.0%} t interval; p: paired t-test "
                         "(scipy.stats.ttest_rel) and Wilcoxon signed-rank test "
                         "(scipy.stats.wilcoxon); n: pairs (no interval or test from fewer "
                         "than 3).")

DIVERGED_NOTE = ("k/n div.: k of the n runs diverged (non-finite loss; the run's "
                 "failure.json names the iteration); they have no accuracy and are left out "
                 "of the mean ± std and of the paired differences.")
COLLAPSED_NOTE = ("k/n coll.: k of the n runs collapsed (completed at chance level or below: "
                  "final accuracy within {margin:g} points of 100 / classes); they are "
                  "included in the mean ± std and in the paired differences.")
AVG_NOTE = ("Avg: mean over tasks of each task's mean over the row's runs that completed "
            "(diverged runs have no accuracy); for a row below a baseline, over the n pairs "
            "where both it and the baseline completed, the same pairs as its Δ, so that Δ = "
            "its Avg minus the baseline's Avg over those pairs. n: those runs or pairs.")
COUNT_NOTE = ("div.: runs that diverged (non-finite loss; failure.json names the iteration), "
              "left out of every mean and of Δ; coll.: runs that completed at chance level or "
              "below (final accuracy within {margin:g} points of 100 / classes), kept in the "
              "means and in Δ; both out of the row's runs. '(k/n div.)' in a task cell: k of "
              "that task's n runs diverged.")


def count_notes(table: Table, frame: pd.DataFrame, column: str) -> None:
    """The notes explaining 'div.' and 'coll.' cells, once per table, where they occur."""
    if frame[column].isna().any() and DIVERGED_NOTE not in table.notes:
        table.notes.append(DIVERGED_NOTE)
    note = COLLAPSED_NOTE.format(margin=COLLAPSE_MARGIN_PP)
    if collapsed_count(frame) and note not in table.notes:
        table.notes.append(note)

"""Drift and data quality of the batches a scoring run scored, as the nightly job reports them.

The measures live in dbt (models_sql/marts/batch_feature_drift.sql per feature, batch_drift.sql
per batch, thresholds as drift_* vars): a batch is the split = 'score' leads of one load,
compared with the training rows. main.batch_drift is a view over the scores, so it is read after
scoring; this module only selects the batches one scoring run touched and words the warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from leadscore import db

# batch_drift columns read here, in this order (BatchDrift's fields)
_COLUMNS = (
    "load_id", "file_name", "batch_leads", "has_enough_leads", "max_psi", "max_psi_feature",
    "psi_warn_features", "unseen_warn_features", "missing_rate_warn_features", "scored_leads",
    "estimated_positive_rate", "expected_positive_rate", "positive_rate_ratio", "is_positive_rate_warn",
    "has_warning",
)
# features named per measure in a warning line; the rest are counted ("and 7 more")
FEATURES_NAMED = 5


@dataclass(frozen=True)
class BatchDrift:
    load_id: int
    file_name: str | None
    batch_leads: int
    has_enough_leads: bool
    max_psi: float | None
    max_psi_feature: str | None
    psi_warn_features: str | None
    unseen_warn_features: str | None
    missing_rate_warn_features: str | None
    scored_leads: int
    estimated_positive_rate: float | None
    expected_positive_rate: float | None
    positive_rate_ratio: float | None
    is_positive_rate_warn: bool
    has_warning: bool

    def warning(self) -> str:
        """One line naming what crossed a threshold: the features with their PSI, unseen share or
        missing-rate change (largest first), and the estimated positive rate against the expected."""
        parts = []
        for label, features in (("PSI over threshold", self.psi_warn_features),
                                ("unseen categories", self.unseen_warn_features),
                                ("missing rate changed", self.missing_rate_warn_features)):
            if features:
                parts.append(f"{label}: {_first(features)}")
        if self.is_positive_rate_warn and self.positive_rate_ratio is not None:
            parts.append(f"estimated positive rate {self.estimated_positive_rate:.3f} against "
                         f"{self.expected_positive_rate:.3f} expected ({self.positive_rate_ratio:.2f}x)")
        return f"load {self.load_id} ({self.file_name}, {self.batch_leads} leads): " + "; ".join(parts)


@dataclass
class DriftReport:
    batches: list[BatchDrift] = field(default_factory=list)

    @property
    def flagged(self) -> list[BatchDrift]:
        return [b for b in self.batches if b.has_warning]

    def summary(self) -> str:
        """'2 batch(es) checked, 1 flagged (load 3)' for the nightly summary."""
        flagged = self.flagged
        text = f"{len(self.batches)} batch(es) checked, {len(flagged)} flagged"
        if flagged:
            text += " (" + ", ".join(f"load {b.load_id}" for b in flagged) + "; see main.batch_drift)"
        return text

    def as_dict(self) -> dict:
        return {
            "batches_checked": len(self.batches),
            "batches_flagged": len(self.flagged),
            "warnings": [b.warning() for b in self.flagged],
        }


def _first(features: str, n: int = FEATURES_NAMED) -> str:
    items = features.split(", ")
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def batches_of_run(con: duckdb.DuckDBPyConnection, run_id: str) -> DriftReport:
    """The batch_drift rows of the loads whose leads scoring run `run_id` scored, by load_id."""
    rows = db.fetch_all(
        con,
        f"select {', '.join(_COLUMNS)} from main.batch_drift "
        "where load_id in (select distinct leads.load_id from ops.score_history as history "
        "inner join raw.leads as leads on history.lead_id = leads.lead_id where history.run_id = ?) "
        "order by load_id",
        [run_id],
    )
    return DriftReport([BatchDrift(*row) for row in rows])

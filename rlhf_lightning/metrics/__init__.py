"""torchmetrics ``Metric``s for reward models: pairwise / ranking accuracy, margins, Kendall's tau, concordance."""

from rlhf_lightning.metrics.ranking import (
    ConcordanceAccuracy,
    KendallTau,
    MeanMargin,
    PairwiseAccuracy,
    RankingAccuracy,
)

__all__ = ["ConcordanceAccuracy", "KendallTau", "MeanMargin", "PairwiseAccuracy", "RankingAccuracy"]

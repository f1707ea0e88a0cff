"""Accuracy and speed figures, computed without any UI.

Panes draw these values; they never compute them. Running variants (``RunningNer``,
``RunningClassification``, ``ThroughputMeter``, ``LatencyRecorder``) keep bounded state
so a live view can take a snapshot a few times a second during a long run.
"""

from kiln_lab.core.metrics.classification import (
    ClassificationScores,
    RunningClassification,
    score_classification,
)
from kiln_lab.core.metrics.ner import NerScores, RunningNer, TagTable, extract_entities, score_ner
from kiln_lab.core.metrics.scores import ClassScore, EntityScore
from kiln_lab.core.metrics.speed import LatencyRecorder, ThroughputMeter

__all__ = [
    "ClassScore",
    "ClassificationScores",
    "EntityScore",
    "LatencyRecorder",
    "NerScores",
    "RunningClassification",
    "RunningNer",
    "TagTable",
    "ThroughputMeter",
    "extract_entities",
    "score_classification",
    "score_ner",
]

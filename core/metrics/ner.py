"""Entity-level NER scores with seqeval's conventions, plus token accuracy.

The vendor guides report NER as seqeval's default (conlleval-compatible) entity F1 and
its token accuracy, so Kiln reproduces those figures exactly, including how seqeval
reads malformed tag sequences a model can produce (``I-PER`` after ``O`` starts an
entity; ``B-PER I-LOC`` is two entities). Scores are computed from per-type counts, so
``RunningNer`` can refresh a live pane during a long evaluation without re-scanning the
sentences scored so far.

Supported tags: ``O``, and ``B``/``I``/``E``/``S`` either alone or followed by ``-TYPE``
(BIO, IOB2, IOE and IOBES all read the way seqeval's default mode reads them). Any other
tag raises ``DataError``: seqeval only warns about such tags and then produces entities
that are lost or that cross sentence boundaries, which is never a figure worth reporting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from core.errors import DataError
from core.metrics.scores import EntityScore, divide

Entity = tuple[str, int, int]
"""(type, start, end) with ``end`` inclusive, token positions within one sentence."""

_TAG_HINT = (
    "NER labels must be 'O' or B-/I-/E-/S- followed by a type (BIO or IOBES); "
    "map special labels such as X, [CLS] or [PAD] to 'O' before scoring"
)
_SENTENCES_HINT = "pass one list of tags per sentence, true and predicted aligned token by token"


@lru_cache(maxsize=1024)
def _parse_tag(tag: str) -> tuple[str, str] | None:
    """(prefix letter, type) as seqeval's default mode reads it, or None if unsupported.

    seqeval takes the first character as the prefix and everything after the first
    ``-`` as the type, with ``_`` for an empty type (so ``O`` has type ``_``).
    """
    if tag == "O":
        return "O", "_"
    if not isinstance(tag, str) or not tag or tag[0] not in "BIES":
        return None
    if len(tag) == 1:
        return tag, "_"
    if tag[1] != "-":
        return None
    return tag[0], tag[2:] or "_"


def _chunk_ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """seqeval's ``end_of_chunk`` restricted to supported tags: does a chunk end before ``tag``?"""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != type_


def _chunk_starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """seqeval's ``start_of_chunk`` restricted to supported tags: does a chunk start at ``tag``?"""
    if tag in ("B", "S"):
        return True
    if tag in ("E", "I") and prev_tag in ("E", "S", "O"):
        return True
    return tag != "O" and prev_type != type_


def _entities(tags: Sequence[str], sentence: int | None = None) -> list[Entity]:
    """The chunks of one sentence, in order; raises DataError on an unsupported tag."""
    prev_tag, prev_type, begin = "O", "", 0
    chunks: list[Entity] = []
    for i in range(len(tags) + 1):
        if i < len(tags):
            parsed = _parse_tag(tags[i])
            if parsed is None:
                where = f" in sentence {sentence}" if sentence is not None else ""
                raise DataError(
                    f"unsupported NER tag {tags[i]!r} at token {i}{where}", hint=_TAG_HINT
                )
            tag, type_ = parsed
        else:
            # seqeval appends an 'O' after every sentence, which closes any open chunk.
            tag, type_ = "O", "_"
        if _chunk_ends(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _chunk_starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def extract_entities(tags: Sequence[str]) -> set[Entity]:
    """Entities of one sentence as ``(type, start, end_inclusive)``, read like seqeval.

    Equal to ``set(seqeval.metrics.sequence_labeling.get_entities(list(tags)))`` for
    every sequence of supported tags (see the module docstring); raises ``DataError``
    for any other tag.
    """
    if isinstance(tags, str):
        raise DataError("expected a sequence of tags, got a single string", hint=_SENTENCES_HINT)
    return set(_entities(tags))


@dataclass(frozen=True)
class NerScores:
    """Entity and token figures for a set of sentences; what panes and reports show.

    ``overall`` is seqeval's "micro avg" (pooled over all entities); ``per_type`` holds
    every type seen in the true or the predicted tags, sorted by name.
    """

    overall: EntityScore
    per_type: dict[str, EntityScore]
    token_accuracy: float
    tokens: int
    sentences: int

    def to_dict(self) -> dict:
        """A plain JSON-able dict, with the figure names model cards refer to."""
        return {
            "entity_f1": self.overall.f1,
            "entity_precision": self.overall.precision,
            "entity_recall": self.overall.recall,
            "entity_support": self.overall.support,
            "token_accuracy": self.token_accuracy,
            "per_type": {name: score.to_dict() for name, score in self.per_type.items()},
            "tokens": self.tokens,
            "sentences": self.sentences,
        }


def _seqeval_score(true_positives: int, predicted: int, actual: int) -> EntityScore:
    """P/R/F1 computed with seqeval's own arithmetic, so results match it bit for bit."""
    precision = divide(true_positives, predicted)
    recall = divide(true_positives, actual)
    denominator = precision + recall
    f1 = 2 * precision * recall / denominator if denominator else 0.0
    return EntityScore(precision, recall, f1, actual)


class RunningNer:
    """NER scores accumulated batch by batch, for live panes during a long evaluation.

    Only per-type counts are kept, so ``snapshot()`` costs O(number of types) however
    many sentences have been scored, and the result equals ``score_ner`` on all the
    sentences seen so far (in any batch split).
    """

    def __init__(self) -> None:
        self._true_positives: Counter[str] = Counter()
        self._predicted: Counter[str] = Counter()
        self._actual: Counter[str] = Counter()
        self._tokens = 0
        self._correct_tokens = 0
        self._sentences = 0

    @property
    def sentences(self) -> int:
        """Sentences scored so far."""
        return self._sentences

    def update(
        self, true_batch: Sequence[Sequence[str]], pred_batch: Sequence[Sequence[str]]
    ) -> None:
        """Add sentences; raises ``DataError`` (and adds nothing) if they do not align."""
        _check_aligned(true_batch, pred_batch, first_index=self._sentences)
        counts: list[tuple[list[Entity], list[Entity]]] = []
        for offset, (true_tags, pred_tags) in enumerate(zip(true_batch, pred_batch, strict=True)):
            index = self._sentences + offset
            counts.append((_entities(true_tags, index), _entities(pred_tags, index)))
        # Only mutate once the whole batch is known to be valid.
        for true_entities, pred_entities in counts:
            self._actual.update(entity[0] for entity in true_entities)
            self._predicted.update(entity[0] for entity in pred_entities)
            self._true_positives.update(
                entity[0] for entity in set(true_entities) & set(pred_entities)
            )
        for true_tags, pred_tags in zip(true_batch, pred_batch, strict=True):
            self._tokens += len(true_tags)
            self._correct_tokens += sum(t == p for t, p in zip(true_tags, pred_tags, strict=True))
        self._sentences += len(true_batch)

    def snapshot(self) -> NerScores:
        """The scores so far, as an immutable value."""
        names = sorted(set(self._actual) | set(self._predicted))
        per_type = {
            name: _seqeval_score(
                self._true_positives[name], self._predicted[name], self._actual[name]
            )
            for name in names
        }
        overall = _seqeval_score(
            sum(self._true_positives.values()),
            sum(self._predicted.values()),
            sum(self._actual.values()),
        )
        return NerScores(
            overall=overall,
            per_type=per_type,
            token_accuracy=divide(self._correct_tokens, self._tokens),
            tokens=self._tokens,
            sentences=self._sentences,
        )


def score_ner(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> NerScores:
    """Entity P/R/F1 (overall and per type) and token accuracy, as seqeval computes them.

    ``true`` and ``pred`` hold one tag sequence per sentence; entities never cross a
    sentence boundary. Token accuracy is 0.0 when there are no tokens (seqeval divides
    by zero there). Raises ``DataError`` if sentence counts or lengths differ, or a tag
    is not supported.
    """
    running = RunningNer()
    running.update(true, pred)
    return running.snapshot()


def _check_aligned(
    true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *, first_index: int = 0
) -> None:
    for name, batch in (("true", true), ("predicted", pred)):
        if isinstance(batch, str) or any(isinstance(sentence, str) for sentence in batch):
            raise DataError(
                f"{name} tags must be a list of sentences, each a list of tags, not strings",
                hint=_SENTENCES_HINT,
            )
    if len(true) != len(pred):
        raise DataError(
            f"{len(true)} true sentences but {len(pred)} predicted", hint=_SENTENCES_HINT
        )
    for offset, (true_tags, pred_tags) in enumerate(zip(true, pred, strict=True)):
        if len(true_tags) != len(pred_tags):
            raise DataError(
                f"sentence {first_index + offset} has {len(true_tags)} true tags "
                f"but {len(pred_tags)} predicted",
                hint=_SENTENCES_HINT,
            )

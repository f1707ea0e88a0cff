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

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kiln_lab.core.errors import DataError
from kiln_lab.core.metrics.scores import EntityScore, divide

Entity = tuple[str, int, int]
"""(type, start, end) with ``end`` inclusive, token positions within one sentence."""

_TAG_HINT = (
    "NER labels must be 'O' or B-/I-/E-/S- followed by a type (BIO or IOBES); "
    "map special labels such as X, [CLS] or [PAD] to 'O' before scoring"
)
_SENTENCES_HINT = "pass one list of tags per sentence, true and predicted aligned token by token"


_O, _B, _I, _E, _S = range(5)
_PREFIX_CODES = {"O": _O, "B": _B, "I": _I, "E": _E, "S": _S}


@lru_cache(maxsize=1024)
def _parse_tag(tag: str) -> tuple[str, str] | None:
    """(prefix letter, type) as seqeval's default mode reads it, or None if unsupported.

    seqeval takes the first character as the prefix and everything after the first
    ``-`` as the type, with ``_`` for an empty type (so ``O`` has type ``_``).
    """
    if tag == "O":
        return "O", "_"
    if not tag or tag[0] not in "BIES":
        return None
    if len(tag) == 1:
        return tag, "_"
    if tag[1] != "-":
        return None
    return tag[0], tag[2:] or "_"


class TagTable:
    """Each distinct tag as a small integer, with its prefix and type, so a whole batch of
    sentences is chunked by numpy instead of by a Python loop over every token.

    Codes are handed out as tags are first seen, so a table started from a model's labels
    also takes any other supported tag a data set uses. Two tags share a code exactly
    when they are the same string, so comparing codes compares tags.
    """

    def __init__(self, tags: Iterable[str] = ()) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []
        self.types: list[str] = []
        self._type_codes: dict[str, int] = {}
        self._prefix = np.zeros(0, dtype=np.int8)
        self._type = np.zeros(0, dtype=np.int32)
        self._tables: tuple[np.ndarray, np.ndarray] | None = None
        self.outside = self.code("O")
        for tag in tags:
            self.code(tag)

    def code(self, tag: str, *, sentence: int | None = None, token: int | None = None) -> int:
        """The tag's code; raises ``DataError``, naming where it was, if it is unsupported."""
        if isinstance(tag, str) and tag in self.codes:
            return self.codes[tag]
        parsed = _parse_tag(tag) if isinstance(tag, str) else None
        if parsed is None:
            where = f" at token {token}" if token is not None else ""
            where += f" in sentence {sentence}" if sentence is not None else ""
            raise DataError(f"unsupported NER tag {tag!r}{where}", hint=_TAG_HINT)
        prefix, type_ = parsed
        if type_ not in self._type_codes:
            self._type_codes[type_] = len(self.types)
            self.types.append(type_)
        self.codes[tag] = len(self.names)
        self.names.append(tag)
        self._prefix = np.append(self._prefix, np.int8(_PREFIX_CODES[prefix]))
        self._type = np.append(self._type, np.int32(self._type_codes[type_]))
        return self.codes[tag]

    def encode(self, sentences: Sequence[Sequence[str]], first_index: int = 0) -> np.ndarray:
        """Every sentence's tag codes, concatenated in order."""
        try:
            return np.fromiter(
                map(self.codes.__getitem__, itertools.chain.from_iterable(sentences)),
                dtype=np.int32,
            )
        except (KeyError, TypeError):
            # A tag not seen before, or not a string: add it, or say exactly where it is.
            flat = [
                self.code(tag, sentence=first_index + s, token=t)
                for s, tags in enumerate(sentences)
                for t, tag in enumerate(tags)
            ]
            return np.asarray(flat, dtype=np.int32)

    def chunks(
        self, flat: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The entities of the concatenated sentences ``flat`` (``lengths`` tokens each).

        Returns their first and last positions, their type codes, and the length of the
        sequence those positions index: the tokens with one ``O`` after each sentence.
        """
        total, count = int(flat.shape[0]), int(lengths.shape[0])
        span = total + count
        if span == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, 0
        # seqeval reads the sentences as one sequence with an O after each, which closes
        # any chunk still open at a sentence's end: build that sequence.
        seq = np.full(span, self.outside, dtype=np.int32)
        seq[np.arange(total) + np.repeat(np.arange(count), lengths)] = flat
        prev = np.concatenate(([self.outside], seq[:-1]))
        ends, starts = self._transitions()
        first = np.flatnonzero(starts[prev, seq])
        last = np.flatnonzero(ends[prev, seq]) - 1
        # Every tag but O lies in an open chunk, and a chunk that starts right after
        # another ends that one, so the k-th start and the k-th end belong together.
        if first.shape != last.shape:  # pragma: no cover - would be a bug in the tables
            raise AssertionError("chunk starts and ends do not pair up")
        return first, last, self._type[seq[first]].astype(np.int64), span

    def _transitions(self) -> tuple[np.ndarray, np.ndarray]:
        """For every (previous tag, tag) pair: does a chunk end before it, start at it?

        seqeval's ``end_of_chunk`` and ``start_of_chunk``, restricted to supported tags,
        tabulated once per set of tags so a sequence is read with two lookups.
        """
        if self._tables is not None and self._tables[0].shape[0] == len(self.names):
            return self._tables
        prev_prefix, prefix = self._prefix[:, None], self._prefix[None, :]
        changed = self._type[:, None] != self._type[None, :]
        after_end = (prev_prefix == _E) | (prev_prefix == _S)
        after_inside = (prev_prefix == _B) | (prev_prefix == _I)
        ends = (
            after_end
            | (after_inside & ((prefix == _B) | (prefix == _S) | (prefix == _O)))
            | ((prev_prefix != _O) & changed)
        )
        starts = (
            (prefix == _B)
            | (prefix == _S)
            | (((prefix == _E) | (prefix == _I)) & (after_end | (prev_prefix == _O)))
            | ((prefix != _O) & changed)
        )
        self._tables = (ends, starts)
        return self._tables


def extract_entities(tags: Sequence[str]) -> set[Entity]:
    """Entities of one sentence as ``(type, start, end_inclusive)``, read like seqeval.

    Equal to ``set(seqeval.metrics.sequence_labeling.get_entities(list(tags)))`` for
    every sequence of supported tags (see the module docstring); raises ``DataError``
    for any other tag.
    """
    if isinstance(tags, str):
        raise DataError("expected a sequence of tags, got a single string", hint=_SENTENCES_HINT)
    table = TagTable()
    first, last, kinds, _ = table.chunks(table.encode([tags]), np.array([len(tags)]))
    return {
        (table.types[k], int(a), int(b))
        for k, a, b in zip(kinds.tolist(), first.tolist(), last.tolist(), strict=True)
    }


@dataclass(frozen=True)
class NerScores:
    """Entity and token figures for a set of sentences; what panes and reports show.

    ``overall`` is seqeval's "micro avg" (pooled over all entities); ``per_type`` holds
    every type seen in the true or the predicted tags, sorted by name.
    """

    overall: EntityScore
    per_type: dict[str, EntityScore]
    token_accuracy: float
    """Over the tokens the model saw: ``tokens - truncated_tokens``."""
    tokens: int
    """Every token scored for entities, truncated ones included."""
    sentences: int
    truncated_tokens: int = 0
    """Tokens cut off by the sequence length: the model never saw them, so they are left
    out of token accuracy (a 100,000-character sentence cut to 128 tokens would otherwise
    score its unseen tail as correct ``O``). Entity scores keep them, predicted ``O``, so
    entities the model could not see still count as missed."""

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
            "truncated_tokens": self.truncated_tokens,
            "sentences": self.sentences,
        }


def _seqeval_score(true_positives: int, predicted: int, actual: int) -> EntityScore:
    """P/R/F1 computed with seqeval's own arithmetic, so results match it bit for bit."""
    precision = divide(true_positives, predicted)
    recall = divide(true_positives, actual)
    denominator = precision + recall
    f1 = 2 * precision * recall / denominator if denominator else 0.0
    return EntityScore(precision, recall, f1, actual)


def check_codes(
    true: np.ndarray, pred: np.ndarray, lengths: np.ndarray, unseen: np.ndarray | None
) -> None:
    """``DataError`` unless the tag codes, sentence lengths and truncation marks align."""
    if true.shape != pred.shape or int(lengths.sum()) != true.shape[0]:
        raise DataError(
            f"{true.shape[0]} true tags, {pred.shape[0]} predicted, "
            f"{int(lengths.sum())} in the sentence lengths",
            hint=_SENTENCES_HINT,
        )
    if unseen is not None and unseen.shape != true.shape:
        raise DataError(
            f"{unseen.shape[0]} truncation marks for {true.shape[0]} tags",
            hint=_SENTENCES_HINT,
        )


class RunningNer:
    """NER scores accumulated batch by batch, for live panes during a long evaluation.

    Only per-type counts are kept, so ``snapshot()`` costs O(number of types) however
    many sentences have been scored, and the result equals ``score_ner`` on all the
    sentences seen so far (in any batch split).
    """

    def __init__(self, table: TagTable | None = None) -> None:
        self.table = table or TagTable()
        self._true_positives: Counter[str] = Counter()
        self._predicted: Counter[str] = Counter()
        self._actual: Counter[str] = Counter()
        self._tokens = 0
        self._correct_tokens = 0
        self._truncated_tokens = 0
        self._sentences = 0

    @property
    def sentences(self) -> int:
        """Sentences scored so far."""
        return self._sentences

    def update(
        self,
        true_batch: Sequence[Sequence[str]],
        pred_batch: Sequence[Sequence[str]],
        unseen: np.ndarray | None = None,
    ) -> None:
        """Add sentences; raises ``DataError`` (and adds nothing) if they do not align.

        ``unseen`` marks, over the sentences' tokens concatenated, those truncation cut
        off (see :attr:`NerScores.truncated_tokens`); None: the model saw every token.
        """
        _check_aligned(true_batch, pred_batch, first_index=self._sentences)
        true = self.table.encode(true_batch, self._sentences)
        pred = self.table.encode(pred_batch, self._sentences)
        lengths = np.fromiter(map(len, true_batch), dtype=np.int64, count=len(true_batch))
        self.update_codes(true, pred, lengths, unseen)

    def update_codes(
        self,
        true: np.ndarray,
        pred: np.ndarray,
        lengths: np.ndarray,
        unseen: np.ndarray | None = None,
    ) -> None:
        """Add sentences given as ``self.table`` codes, concatenated, ``lengths`` tags each.

        The evaluation loop's path: it decodes a batch straight to codes, so no tag
        string is made for scoring. ``unseen`` as in :meth:`update`.
        """
        check_codes(true, pred, lengths, unseen)
        # Both taggings chunked in one pass: the predicted sentences follow the true ones.
        first, last, kinds, span = self.table.chunks(
            np.concatenate((true, pred)), np.concatenate((lengths, lengths))
        )
        half, types = span // 2, max(len(self.table.types), 1)
        predicted = first >= half
        # One integer per (start, end, type) within a tagging: the entities both have.
        keys = ((first % half) * half + last % half) * types + kinds if half else kinds
        hits = np.intersect1d(keys[~predicted], keys[predicted], assume_unique=True)
        true_kinds, pred_kinds = kinds[~predicted], kinds[predicted]
        for counter, kinds in (
            (self._actual, true_kinds),
            (self._predicted, pred_kinds),
            (self._true_positives, hits % types),
        ):
            for code, count in enumerate(np.bincount(kinds, minlength=types).tolist()):
                if count:
                    counter[self.table.types[code]] += count
        self._tokens += int(true.shape[0])
        correct = true == pred
        if unseen is not None and unseen.any():
            self._truncated_tokens += int(np.count_nonzero(unseen))
            correct &= ~unseen
        self._correct_tokens += int(np.count_nonzero(correct))
        self._sentences += int(lengths.shape[0])

    def add_sentence_counts(
        self,
        counts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        *,
        truncated: int = 0,
    ) -> None:
        """Add sentences already chunked: the per-sentence counts of
        :func:`~kiln_lab.core.metrics.outcomes.sentence_counts` (entities per type in
        ``self.table.types`` order, tokens seen and correct), whose column sums are the
        pooled counts; ``truncated`` tokens were cut off, so not seen. The evaluation
        loop's path: it keeps those counts for the intervals anyway, so finding the
        entities a second time here would double the cost of scoring."""
        true_positives, predicted, actual, seen, correct = counts
        for counter, table in (
            (self._true_positives, true_positives),
            (self._predicted, predicted),
            (self._actual, actual),
        ):
            for code, count in enumerate(table.sum(0).tolist()):
                if count:
                    counter[self.table.types[code]] += count
        self._tokens += int(seen.sum()) + truncated
        self._correct_tokens += int(correct.sum())
        self._truncated_tokens += truncated
        self._sentences += int(seen.shape[0])

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
            token_accuracy=divide(self._correct_tokens, self._tokens - self._truncated_tokens),
            tokens=self._tokens,
            sentences=self._sentences,
            truncated_tokens=self._truncated_tokens,
        )


def score_ner(
    true: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    unseen: np.ndarray | None = None,
) -> NerScores:
    """Entity P/R/F1 (overall and per type) and token accuracy, as seqeval computes them.

    ``true`` and ``pred`` hold one tag sequence per sentence; entities never cross a
    sentence boundary. Token accuracy is 0.0 when there are no tokens (seqeval divides
    by zero there); with ``unseen`` (truncated tokens, see ``RunningNer.update``) it
    covers only the tokens the model saw. Raises ``DataError`` if sentence counts or
    lengths differ, or a tag is not supported.
    """
    running = RunningNer()
    running.update(true, pred, unseen)
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

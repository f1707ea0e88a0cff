"""Bad input, tried systematically: any file ends in data or a ``KilnError`` with a location.

Property-based fuzzing (hypothesis) of the three dataset readers and of the two YAML
loaders (profiles and model cards). Inputs are arbitrary text and bytes, and
near-valid content built to hit the parsers' edges: random column counts, tabs, odd
tags, typo'd keys, wrong types, nested junk, hostile YAML. Every outcome must be
either a result or the area's ``KilnError`` with ``.path`` set (and ``.line`` inside
the file where a line is at fault), never another exception.

The fast suite runs a modest number of examples; the ``slow`` variants (``make
test-all``) run ten times as many.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln_lab.core.data import XNLI_LABELS, Dataset, TextExample, TokenExample, read_file
from kiln_lab.core.errors import ConfigError, DataError, KilnError, LabelMismatch
from kiln_lab.core.models import ModelCard, load_card_file
from kiln_lab.core.profiles import Profile, load_profile_file

REPO = Path(__file__).resolve().parents[2]
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
MODEL_LABELS: dict[str, tuple[str, ...]] = {
    "bio": NER_LABELS,
    "tsv": ("neg", "pos"),
    "xnli": XNLI_LABELS,
}
FAST = {"max_examples": 150, "deadline": None}
DEEP = {"max_examples": 1500, "deadline": None}
FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def _editor_line_count(path: Path) -> int:
    """Lines as an editor counts them (LF, CRLF or a lone CR), as the data readers
    (core.data.textio) and YAML errors report them."""
    return len(re.split(r"\r\n|\r|\n", path.read_text(encoding="utf-8", errors="replace")))


# --- the dataset readers -----------------------------------------------------------------


def check_reader_outcome(path: Path, fmt: str, labels: tuple[str, ...] | None) -> Dataset | None:
    """The contract: a non-empty Dataset, or a DataError naming the file (and line)."""
    try:
        dataset = read_file(path, fmt, labels)
    except KilnError as exc:
        assert isinstance(exc, DataError), f"{type(exc).__name__} from a data file: {exc}"
        assert exc.path == str(path), exc
        assert exc.message and exc.hint, exc
        if exc.line is None:
            # Only whole-file problems may come without a line.
            assert "empty dataset" in exc.message, exc
        else:
            lines = _editor_line_count(path)
            assert 1 <= exc.line <= lines, (exc.line, lines, exc)
        exc.one_line()
        return None
    assert isinstance(dataset, Dataset)
    examples = dataset.split("file").examples
    assert examples, "a dataset must hold at least one example"
    if labels is not None:
        assert dataset.labels == labels
        for example in examples:
            found = example.tags if isinstance(example, TokenExample) else (example.label,)
            assert set(found) <= set(labels), found
    return dataset


_CELL_TEXT = st.text(st.characters(blacklist_characters="\n\t", codec="utf-8"), max_size=6)
_TAGS = st.sampled_from(
    ["O", "B-PER", "I-PER", "B-LOC", "I-ORG", "B-MISC", "E-PER", "S-LOC", "M-X", "B-", "I-"]
    + ["B--", "b-per", "o", "X", "B-PER-X", "B-中", "0", "1", "pos", "", "B\u3000PER"]
) | st.text(max_size=5)
_SEPARATORS = st.sampled_from([" ", "\t", "  ", " \t ", "\u3000", "\xa0", "\x1f", ""])
_LINE_ENDS = st.sampled_from(["\n", "\r\n", "\n\n", "\r", "\n \n"])


@st.composite
def near_bio(draw: st.DrawFn) -> str:
    """Character-per-line files with random columns, separators, tags and blank lines."""
    lines = []
    for _ in range(draw(st.integers(0, 14))):
        if draw(st.integers(0, 9)) < 6:  # mostly valid lines, so the odd one is reached
            char = draw(st.characters(whitelist_categories=("Lo", "Ll", "Nd", "Po")))
            tag = draw(st.sampled_from(NER_LABELS))
            lines.append(f"{char}{draw(st.sampled_from([' ', chr(9)]))}{tag}\n")
            if draw(st.integers(0, 5)) == 0:
                lines.append("\n")
            continue
        columns = draw(st.lists(_CELL_TEXT, min_size=0, max_size=3))
        sep = draw(_SEPARATORS)
        line = sep.join([*columns, draw(_TAGS)])
        if draw(st.booleans()):
            line = draw(_SEPARATORS) + line
        lines.append(line + draw(_LINE_ENDS))
    prefix = draw(st.sampled_from(["", "\ufeff"]))
    return prefix + "".join(lines)


_LABEL_CELLS = st.sampled_from(
    ["0", "1", "2", "3", "-1", "999", "pos", "neg", "entailment", "neutral", "contradiction"]
    + ["contradictory", "", " ", "١", "Pos", "1.0"]
)
_HEADERS = st.sampled_from(
    [["label", "text"], ["sentence", "label"], ["premise", "hypothesis", "label"]]
    + [["qid", "label", "text_a"], ["label", "text_a", "text_b"]]
    + [["sentence1", "sentence2", "gold_label", "language"]]
) | st.lists(
    st.sampled_from(
        ["label", "text", "text_a", "text_b", "sentence", "sentence1", "sentence2", "premise"]
        + ["hypothesis", "gold_label", "language", "lang", "qid", "id", "review", "foo", ""]
    ),
    min_size=1,
    max_size=5,
)


@st.composite
def near_tsv(draw: st.DrawFn) -> str:
    """Tab-separated rows, with or without a header, random widths and label cells."""
    rows = []
    width = draw(st.sampled_from([2, 2, 3, 3, 4, 1, 5]))
    if draw(st.booleans()):
        rows.append("\t".join(draw(_HEADERS)))
    for _ in range(draw(st.integers(0, 10))):
        ragged = draw(st.integers(0, 9)) == 0  # mostly rectangular, so rows get read
        size = draw(st.integers(1, 5)) if ragged else width
        cells = draw(st.lists(_LABEL_CELLS | _CELL_TEXT, min_size=size, max_size=size))
        rows.append("\t".join(cells))
    return "".join(row + draw(_LINE_ENDS) for row in rows)


def _reader_body(tmp_path: Path, content: str | bytes, fmt: str, with_labels: bool) -> None:
    path = _write(tmp_path / f"fuzz.{fmt}", content)
    check_reader_outcome(path, fmt, MODEL_LABELS[fmt] if with_labels else None)


_ANY_CONTENT = st.text() | st.binary(max_size=200)
_FORMATS = st.sampled_from(sorted(MODEL_LABELS))

test_readers_any_content = settings(**FAST, suppress_health_check=FIXTURE_OK)(
    given(content=_ANY_CONTENT, fmt=_FORMATS, with_labels=st.booleans())(_reader_body)
)
test_readers_near_valid_bio = settings(**FAST, suppress_health_check=FIXTURE_OK)(
    given(content=near_bio(), fmt=st.just("bio"), with_labels=st.booleans())(_reader_body)
)
test_readers_near_valid_tables = settings(**FAST, suppress_health_check=FIXTURE_OK)(
    given(content=near_tsv(), fmt=st.sampled_from(["tsv", "xnli"]), with_labels=st.booleans())(
        _reader_body
    )
)
test_readers_deep = pytest.mark.slow(
    settings(**DEEP, suppress_health_check=FIXTURE_OK)(
        given(
            content=_ANY_CONTENT | near_bio() | near_tsv(),
            fmt=_FORMATS,
            with_labels=st.booleans(),
        )(_reader_body)
    )
)


# Round trips: a reader that is too strict is as bad as one that crashes.
_TOKEN_CHARS = st.characters(whitelist_categories=("Lo", "Lu", "Ll", "Nd", "Po"))
_SENTENCES = st.lists(
    st.lists(st.tuples(_TOKEN_CHARS, st.sampled_from(NER_LABELS)), min_size=1, max_size=8),
    min_size=1,
    max_size=6,
)


@settings(**FAST, suppress_health_check=FIXTURE_OK)
@given(sentences=_SENTENCES, sep=st.sampled_from([" ", "\t"]), crlf=st.booleans())
def test_valid_bio_round_trips(
    tmp_path: Path, sentences: list[list[tuple[str, str]]], sep: str, crlf: bool
) -> None:
    end = "\r\n" if crlf else "\n"
    text = end.join(end.join(f"{c}{sep}{t}" for c, t in s) + end for s in sentences)
    dataset = check_reader_outcome(_write(tmp_path / "ok.bio", text), "bio", NER_LABELS)
    assert dataset is not None
    got = [(e.tokens, e.tags) for e in dataset.split("file").examples]
    assert got == [(tuple(c for c, _ in s), tuple(t for _, t in s)) for s in sentences]


_TEXTS = st.text(st.characters(blacklist_characters="\n\t\r", codec="utf-8"), min_size=1).filter(
    lambda t: t.strip() != ""
)


@settings(**FAST, suppress_health_check=FIXTURE_OK)
@given(rows=st.lists(st.tuples(st.sampled_from(["neg", "pos", "0", "1"]), _TEXTS), min_size=1))
def test_valid_tsv_with_header_round_trips(tmp_path: Path, rows: list[tuple[str, str]]) -> None:
    text = "label\ttext\n" + "".join(f"{label}\t{body}\n" for label, body in rows)
    dataset = check_reader_outcome(_write(tmp_path / "ok.tsv", text), "tsv", ("neg", "pos"))
    assert dataset is not None
    names = {"0": "neg", "1": "pos"}
    assert [(e.label, e.text) for e in dataset.split("file").examples] == [
        (names.get(label, label), body.strip()) for label, body in rows
    ]


@settings(**FAST, suppress_health_check=FIXTURE_OK)
@given(
    rows=st.lists(
        st.tuples(_TEXTS, _TEXTS, st.sampled_from([*XNLI_LABELS, "0", "2", "contradictory"])),
        min_size=1,
        max_size=10,
    )
)
def test_valid_xnli_round_trips(tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    text = "premise\thypothesis\tlabel\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows)
    dataset = check_reader_outcome(_write(tmp_path / "ok.tsv", text), "xnli", None)
    assert dataset is not None
    alias = {"0": "entailment", "2": "contradiction", "contradictory": "contradiction"}
    examples = dataset.split("file").examples
    assert all(isinstance(e, TextExample) for e in examples)
    assert [e.label for e in examples] == [alias.get(c, c) for _, _, c in rows]


def test_reader_named_cases(tmp_path: Path) -> None:
    """Cases the fuzzers found interesting, kept as plain regressions."""
    cases = {
        "only-blank.bio": "\n\n \n\t\n",
        "only-bom.tsv": "\ufeff",
        "nul-bytes.bio": "\x00 O\n\x00\x00\n",
        "lone-cr.bio": "中 O\r好 O\r",
        "u2028-inside.bio": "中\u2028O\n",
        "header-only.tsv": "label\ttext\n",
        "header-only.xnli": "premise\thypothesis\tlabel\n",
        "five-columns.xnli": "a\tb\tc\td\te\n",
        "arabic-digit-label.tsv": "label\ttext\n١\tgood\n",
        "huge-label-id.tsv": "label\ttext\n999\tgood\n",
        "utf16.tsv": "label\ttext\n1\tgood\n".encode("utf-16"),
    }
    for name, content in cases.items():
        fmt = name.rsplit(".", 1)[1]
        path = _write(tmp_path / name, content)
        for labels in (None, MODEL_LABELS[fmt]):
            check_reader_outcome(path, fmt, labels)
    with pytest.raises(LabelMismatch) as info:
        read_file(tmp_path / "huge-label-id.tsv", "tsv", ("neg", "pos"))
    assert info.value.line == 2


# --- the YAML loaders ----------------------------------------------------------------------

LoaderFn = Callable[[Path], Any]
LOADERS: dict[str, tuple[LoaderFn, type]] = {
    "profile": (load_profile_file, Profile),
    "card": (load_card_file, ModelCard),
}
BASES: dict[str, list[dict[str, Any]]] = {
    "profile": [yaml.safe_load(p.read_text()) for p in sorted((REPO / "profiles").glob("*.yaml"))],
    "card": [
        yaml.safe_load(p.read_text()) for p in sorted((REPO / "assets" / "cards").glob("*.yaml"))
    ],
}


def check_loader_outcome(path: Path, kind: str) -> Any:
    """The contract: a typed config, or a ConfigError naming the file (and a line in it)."""
    loader, model = LOADERS[kind]
    try:
        result = loader(path)
    except KilnError as exc:
        assert isinstance(exc, ConfigError), f"{type(exc).__name__}: {exc}"
        assert exc.path == str(path), exc
        assert exc.message, exc
        if exc.line is not None:
            assert 1 <= exc.line <= _editor_line_count(path), (exc.line, exc)
        assert len(exc.one_line()) < 2000, "an error message must stay readable"
        return None
    assert isinstance(result, model)
    return result


_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["{onnx}", "{nope}", "{", "}", "{env}", "a{4294967296}", "(", "..", "/"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _typo(draw: st.DrawFn, key: str) -> str:
    if not key:
        return "x"
    i = draw(st.integers(0, len(key) - 1))
    op = draw(st.sampled_from(["drop", "swap", "insert", "case"]))
    if op == "drop":
        return key[:i] + key[i + 1 :] or "x"
    if op == "swap" and len(key) > 1:
        j = min(i + 1, len(key) - 1)
        chars = list(key)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    if op == "case":
        return key.upper()
    return key[:i] + draw(st.sampled_from(string.ascii_lowercase + "_-")) + key[i:]


def _mutate(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """One structural change somewhere in ``value`` (a dict or list, descended at random)."""
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value, key=str)))
        op = draw(st.sampled_from(["drop", "typo", "junk", "descend", "descend", "add"]))
        out = dict(value)
        if op == "drop":
            del out[key]
        elif op == "typo":
            out[_typo(draw, str(key))] = out.pop(key)
        elif op == "junk":
            out[key] = draw(_JUNK)
        elif op == "add":
            out[draw(st.text(min_size=1, max_size=8))] = draw(_JUNK)
        else:
            out[key] = _mutate(draw, value[key], depth + 1)
        return out
    if isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        op = draw(st.sampled_from(["drop", "junk", "descend", "dup"]))
        out_list = list(value)
        if op == "drop":
            del out_list[i]
        elif op == "junk":
            out_list[i] = draw(_JUNK)
        elif op == "dup":
            out_list.append(out_list[i])
        else:
            out_list[i] = _mutate(draw, value[i], depth + 1)
        return out_list
    return draw(_JUNK)


_HOSTILE_SNIPPETS = [
    ": ",
    "- ",
    "[",
    "{",
    "}",
    "\t",
    "&a ",
    "*a",
    "*nope",
    "!!python/object/apply:os.system ['touch pwned']\n",
    "!!binary x",
    "!!set {a}",
    "? [a, b]\n: c\n",
    "%YAML 9.9\n",
    "---\n",
    "...\n",
    "'",
    '"',
    "|",
    ">",
    "\x00",
    "\ufeff",
    "2001-13-45",
    "<<: *a\n",
    "key: value\n",
    "\n  ",
]


@st.composite
def mutated_yaml(draw: st.DrawFn, kind: str) -> str:
    """A shipped profile or card, changed structurally, then (sometimes) as text."""
    data: Any = draw(st.sampled_from(BASES[kind]))
    for _ in range(draw(st.integers(1, 4))):
        data = _mutate(draw, data)
    shape = draw(st.sampled_from(["mapping", "mapping", "mapping", "list", "scalar"]))
    if shape == "list":
        data = [data]
    elif shape == "scalar":
        data = draw(_JUNK)
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        snippet = draw(st.sampled_from(_HOSTILE_SNIPPETS) | st.text(max_size=4))
        cut = draw(st.integers(0, 3))
        text = text[:at] + snippet + text[at + cut :]
    return text


def _loader_body(tmp_path: Path, kind: str, text: str) -> None:
    path = _write(tmp_path / f"fuzz-{kind}.yaml", text)
    check_loader_outcome(path, kind)
    assert not (tmp_path / "pwned").exists()


@st.composite
def _kind_and_text(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(sorted(LOADERS)))
    return kind, draw(mutated_yaml(kind))


def _kind_text_body(tmp_path: Path, case: tuple[str, str]) -> None:
    _loader_body(tmp_path, *case)


test_yaml_loaders_mutated_configs = settings(**FAST, suppress_health_check=FIXTURE_OK)(
    given(case=_kind_and_text())(_kind_text_body)
)
test_yaml_loaders_any_text = settings(**FAST, suppress_health_check=FIXTURE_OK)(
    given(kind=st.sampled_from(sorted(LOADERS)), text=st.text(max_size=300))(_loader_body)
)
test_yaml_loaders_deep = pytest.mark.slow(
    settings(**DEEP, suppress_health_check=FIXTURE_OK)(
        given(case=_kind_and_text())(_kind_text_body)
    )
)


def test_shipped_configs_survive_the_mutator_unchanged(tmp_path: Path) -> None:
    """The bases themselves load: the fuzzers start from valid files."""
    for kind, bases in BASES.items():
        assert bases
        for i, data in enumerate(bases):
            path = _write(tmp_path / f"{kind}{i}.yaml", yaml.safe_dump(data, allow_unicode=True))
            assert check_loader_outcome(path, kind) is not None, (kind, data.get("name"))


LAUGHS = "".join(
    f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}" if i else "x"] * 9) + "]\n"
    for i in range(8)
)

HOSTILE_YAML = {
    "nested-5000-deep": "name: " + "[" * 5000 + "]" * 5000,
    "self-referencing-alias": "name: &a [*a]\n",
    "self-referencing-mapping": "title: t\nname: &a {b: *a}\n",
    "billion-laughs": LAUGHS + "name: *h\n",
    "impossible-date": "name: x\ntitle: t\nnotes:\n  when: 2001-13-45\n",
    "python-object-tag": "name: !!python/object/apply:os.system ['touch pwned']\n",
    "huge-regex-repeat": (
        "name: x\ntitle: t\nruntime: external\nprecisions: [fp32]\ntoolchain:\n"
        "  compile: {command: [tool, '{onnx}', '{output}'], artifact: out.bin}\n"
        "  benchmark: {command: [tool, '{output}'], figures: {samples_per_s: 'a{4294967296}(x)'}}\n"
    ),
    "two-documents": "name: a\n---\nname: b\n",
    "not-utf8": b"name: \xff\xfe\n",
    "empty": "",
    "top-level-list": "- name: x\n",
    "nan-seq-len": "max_seq_len: .nan\n",
    "yaml-only-line-breaks": "name: x\x85title: \u2028[\n",
    "escape-past-unicode": 'name: "\\U00110000"\n',
}


@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_hostile_yaml_is_a_config_error_quickly(tmp_path: Path, kind: str, case: str) -> None:
    """Deep nesting, alias cycles and alias bombs used to escape as RecursionError or take
    15 s walking every expanded node; an impossible date escaped as ValueError."""
    import time

    path = _write(tmp_path / f"{case}.yaml", HOSTILE_YAML[case])
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        LOADERS[kind][0](path)
    assert time.perf_counter() - start < 5
    assert info.value.path == str(path)
    if info.value.line is not None:
        assert 1 <= info.value.line <= _editor_line_count(path)
    assert not (tmp_path / "pwned").exists(), "a YAML tag ran code"
    if case == "escape-past-unicode":
        assert info.value.line == 1
    if case == "impossible-date":
        assert info.value.line == 4 and "quote" in (info.value.hint or "")


def test_error_message_quotes_a_value_short(tmp_path: Path) -> None:
    big = list(range(10_000))
    path = _write(tmp_path / "big.yaml", yaml.safe_dump({**BASES["card"][0], "title": big}))
    with pytest.raises(ConfigError) as info:
        load_card_file(path)
    assert "title" in info.value.message and len(info.value.message) < 300
    assert info.value.line is not None


def test_nan_and_infinity_never_pass_as_numbers(tmp_path: Path) -> None:
    for value in (math.nan, math.inf, -math.inf):
        data = {**BASES["card"][0], "max_seq_len": value}
        path = _write(tmp_path / "n.yaml", yaml.safe_dump(data))
        with pytest.raises(ConfigError) as info:
            load_card_file(path)
        assert "max_seq_len" in info.value.message and info.value.line is not None

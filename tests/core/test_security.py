"""Security: what Kiln runs, what it unpickles, what code it trusts, where it writes.

- External commands are argument lists (never a shell); placeholder values are whole
  arguments, inert whatever they hold.
- YAML is read with the safe loader only; no pickle from files the user did not make
  (``weights_only=True``; safetensors preferred: see test_faults_model.py for a
  malicious ``pytorch_model.bin`` that is refused, not run).
- ``trust_remote_code`` is off unless a card opts in with a YAML ``true``, and then the
  run log says so.
- Reports and artifacts stay inside their directories: a ``../`` in a run id cannot
  leave ``KILN_HOME``. (The run store's 0600 mode is tested in test_events_store.py.)

The source checks walk the syntax tree of every module in ``core/``, ``tui/`` and
``bench/`` rather than grep, so comments and docstrings do not trip them and a call
split over lines does not slip past.
"""

from __future__ import annotations

import ast
import logging
import stat
from pathlib import Path

import pytest
import yaml

from kiln_lab.core.errors import ConfigError, RunNotFound
from kiln_lab.core.models import ModelCard, get_card, load_card_file
from kiln_lab.core.models.loading import load_model
from kiln_lab.core.paths import artifacts_dir, cache_dir, kiln_home

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("core", "tui", "bench")
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}
YAML_READERS = {"load", "load_all", "compose", "compose_all", "parse", "scan"}
YAML_UNSAFE = {"full_load", "full_load_all", "unsafe_load", "unsafe_load_all"}
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal"}
SHELL_FUNCS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput")}
SHELL_FUNCS |= {("subprocess", "getstatusoutput")}
SUBPROCESS_FUNCS = {"run", "Popen", "call", "check_call", "check_output"}


def _sources() -> list[Path]:
    files = [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 30, "the source tree was not found"
    return files


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _findings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every unsafe call in one module, as (line, what)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            module = getattr(node, "module", None) or ""
            touched = {module.split(".")[0], *(n.split(".")[0] for n in names)}
            # ``import pickle`` alone is allowed (for ``pickle.UnpicklingError``).
            if touched & PICKLE_MODULES and not (module == "" and names == ["pickle"]):
                found.append((node.lineno, f"imports a pickle module: {module or names}"))
            continue
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        parts = name.split(".")
        last, first = parts[-1], parts[0]
        loader = _dotted(_keyword(node, "Loader") or ast.Constant(None)).split(".")[-1]
        if first == "yaml" and last in YAML_UNSAFE:
            found.append((node.lineno, f"{name}: only safe_load / SafeLoader"))
        elif first == "yaml" and last in YAML_READERS and loader not in SAFE_LOADERS:
            found.append((node.lineno, f"{name} without Loader=yaml.SafeLoader"))
        if any(k.arg == "shell" and not _is_false(k.value) for k in node.keywords):
            found.append((node.lineno, f"{name}(shell=...): pass an argument list"))
        if tuple(parts[-2:]) in SHELL_FUNCS:
            found.append((node.lineno, f"{name} runs a shell"))
        if first == "subprocess" and last in SUBPROCESS_FUNCS and node.args:
            command = node.args[0]
            if isinstance(command, ast.Constant | ast.JoinedStr | ast.BinOp):
                found.append((node.lineno, f"{name} with a command string: pass a list"))
        if name in ("eval", "exec"):
            found.append((node.lineno, f"{name}() of a string"))
        if first == "pickle" and last in ("load", "loads", "Unpickler"):
            found.append((node.lineno, f"{name}: never unpickle files"))
        if name.endswith("torch.load") and not _is_true(_keyword(node, "weights_only")):
            found.append((node.lineno, f"{name} without weights_only=True"))
        if last == "load" and first in ("np", "numpy") and _is_true(_keyword(node, "allow_pickle")):
            found.append((node.lineno, f"{name}(allow_pickle=True)"))
        if _is_true(_keyword(node, "trust_remote_code")):
            found.append((node.lineno, "trust_remote_code=True hard-coded: take it from the card"))
    return found


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def test_the_source_has_no_shell_no_unsafe_yaml_no_pickle() -> None:
    problems = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.relative_to(REPO)}:{line}: {what}" for line, what in _findings(tree)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "snippet",
    [
        "yaml.load(text)",
        "yaml.load(text, Loader=yaml.Loader)",
        "yaml.load_all(text, Loader=yaml.FullLoader)",
        "yaml.full_load(text)",
        "yaml.compose(text)",
        "subprocess.run(cmd, shell=True)",
        "subprocess.Popen(f'tool {path}')",
        "subprocess.check_output('ls ' + d)",
        "os.system('tool')",
        "os.popen(cmd)",
        "torch.load(path)",
        "torch.load(path, weights_only=False)",
        "pickle.loads(blob)",
        "np.load(path, allow_pickle=True)",
        "AutoModel.from_pretrained(p, trust_remote_code=True)",
        "eval(text)",
    ],
)
def test_the_source_check_catches_each_unsafe_form(snippet: str) -> None:
    assert _findings(ast.parse(snippet)), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "yaml.safe_load(text)",
        "yaml.compose(text, Loader=yaml.SafeLoader)",
        "subprocess.Popen([exe, '-c', code], shell=False)",
        "torch.load(path, weights_only=True)",
        "AutoConfig.from_pretrained(p, trust_remote_code=card.trust_remote_code)",
        "model.eval()",
    ],
)
def test_the_source_check_passes_the_safe_forms(snippet: str) -> None:
    assert not _findings(ast.parse(snippet)), snippet


def test_a_model_path_full_of_shell_metacharacters_is_one_argument(
    tmp_path: Path, kiln_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compile command of an external profile gets ``{onnx}`` and ``{output}`` from
    paths holding ``;``, ``$(...)``, backticks, ``&&``, quotes and spaces (model and
    KILN_HOME both): the tool sees each as one argument, and nothing else runs."""
    from kiln_lab.core.profiles import load_profile_file
    from kiln_lab.core.toolchain import ToolContext, compile_with_tool

    marker = tmp_path / "pwned"
    hostile = f"m; touch {marker} $(touch {marker}) `touch {marker}` && echo 'x\" *"
    home = tmp_path / f"home {hostile}"
    monkeypatch.setenv("KILN_HOME", str(home))
    model = tmp_path / hostile / "model.onnx"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"graph bytes the fake compiler copies")
    profile = load_profile_file(REPO / "tests" / "data" / "profiles" / "good-external.yaml")
    context = ToolContext(
        precision="fp32", batch_size=2, seq_len=8, input_names=("input_ids",), onnx=model
    )
    built = compile_with_tool(profile, context)
    assert str(model) in built.argv and str(built.artifact) in built.argv
    assert built.artifact.read_bytes() == model.read_bytes()
    assert built.artifact.is_relative_to(home)
    assert not marker.exists() and not list(tmp_path.rglob("pwned"))


# --- trust_remote_code ------------------------------------------------------------------


def _card_yaml(tmp_path: Path, value: str | None) -> Path:
    data = yaml.safe_load(Path(get_card("tiny-ner-bert").card_path).read_text())
    text = yaml.safe_dump(data, sort_keys=False)
    if value is not None:
        text += f"trust_remote_code: {value}\n"
    path = tmp_path / "card.yaml"
    path.write_text(text)
    return path


def test_trust_remote_code_is_off_by_default(tiny_assets: Path, tmp_path: Path) -> None:
    assert ModelCard.model_fields["trust_remote_code"].default is False
    card = load_card_file(_card_yaml(tmp_path, None))
    assert card.trust_remote_code is False and card.summary()["trust_remote_code"] is False


@pytest.mark.parametrize("value", ['"yes"', '"true"', "1", '"on"', "[true]"])
def test_only_a_yaml_true_opts_in(tiny_assets: Path, tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_card_file(_card_yaml(tmp_path, value))
    assert "trust_remote_code" in info.value.message and info.value.line is not None


def test_an_opted_in_card_is_passed_through_and_said(
    tiny_assets: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import transformers

    seen: list[object] = []
    # Every reader Kiln may use: the config, the tokenizer (by the class its config names,
    # or AutoTokenizer) and the model, which is built on first use.
    readers = (
        transformers.AutoConfig,
        transformers.AutoTokenizer,
        transformers.BertTokenizer,
        transformers.BertForTokenClassification,
    )
    for cls in readers:
        real = cls.from_pretrained

        def spy(*args: object, _real=real, **kwargs: object) -> object:
            if "trust_remote_code" in kwargs:  # transformers also calls it internally
                seen.append(kwargs["trust_remote_code"])
            return _real(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    weights = tiny_assets / "models" / "tiny-ner-bert"
    with caplog.at_level(logging.WARNING, logger="kiln_lab.core.models.loading"):
        load_model(load_card_file(_card_yaml(tmp_path, None)), weights_dir=weights).model  # noqa: B018
    assert len(seen) >= 2 and set(seen) == {False} and not caplog.records
    seen.clear()
    card = load_card_file(_card_yaml(tmp_path, "true"))
    assert card.summary()["trust_remote_code"] is True  # `kiln models --json` shows it
    with caplog.at_level(logging.WARNING, logger="kiln_lab.core.models.loading"):
        load_model(card, weights_dir=weights).model  # noqa: B018
    assert len(seen) >= 3 and set(seen) == {True}
    assert any("trust_remote_code" in r.getMessage() for r in caplog.records)


# --- where things are written ----------------------------------------------------------


@pytest.mark.parametrize(
    "run_id", ["../x", "..", "../../etc", "/etc", "a/../../b", "a\\..\\b", ".hidden", "", "x\0"]
)
def test_a_run_id_cannot_leave_kiln_home(kiln_home: Path, run_id: str) -> None:
    with pytest.raises(ConfigError) as info:
        artifacts_dir(run_id)
    assert "plain name" in info.value.message
    with pytest.raises(ConfigError):
        cache_dir("artifacts", run_id)
    assert not (kiln_home.parent / "x").exists() and not (kiln_home / "x").exists()


def test_generated_run_ids_are_plain_names(kiln_home: Path) -> None:
    from kiln_lab.core.store import new_run_id

    path = artifacts_dir(new_run_id())
    assert path.parent == kiln_home / "artifacts"


def test_a_user_given_run_id_with_dots_is_just_not_found(kiln_home: Path) -> None:
    from kiln_lab.core.store import RunStore

    with RunStore() as store:
        store.create_run({"model": "m"})
        for run_id in ("../x", "../../etc/passwd", "/etc/passwd"):
            with pytest.raises(RunNotFound):
                store.run(run_id)


def test_like_wildcards_in_a_run_id_match_nothing(kiln_home: Path) -> None:
    from kiln_lab.core.store import RunStore

    with RunStore() as store:
        store.create_run({"model": "m"}, run_id="20261122-004700-3fa2")
        for pattern in ("_", "2026112_", "%"):
            with pytest.raises(RunNotFound):
                store.run(pattern)


def test_report_formats_cannot_name_a_path(tmp_path: Path) -> None:
    from kiln_lab.core.report import write_report

    out = tmp_path / "out"
    for fmt in ("../md", "md/../../x", "/tmp/x"):
        with pytest.raises(ConfigError):
            write_report([], [], fmt, out)
    path = write_report([], [], "md", out)
    assert path.parent == out.resolve()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["report.md"]


def test_kiln_home_and_cache_entries_are_user_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "fresh" / "home"
    monkeypatch.setenv("KILN_HOME", str(home))
    assert kiln_home() == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    from kiln_lab.core.export import new_workdir

    work = new_workdir(".check-", "a check")
    assert stat.S_IMODE(work.stat().st_mode) == 0o700

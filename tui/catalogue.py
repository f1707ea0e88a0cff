"""What the pickers offer: model cards, datasets and profiles, read from kiln_lab.core.

:func:`load_catalogue` reads YAML, looks for weights and checks each profile (which
imports ONNX Runtime), so the app calls it from a thread worker, never before the
first frame. :class:`Selection` is the operator's choice; it becomes a ``RunConfig``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from kiln_lab.core.runconfig import AUTO

DEMO_MODEL = "zh-ner-tiny"
DEMO_PROFILE = "auto"
DEMO_PRECISION = "auto"
"""The demo lets Kiln pick the build: on a Xeon with AMX OpenVINO bf16 ran it 2.5x as fast
as ONNX Runtime fp32, while a CPU without AVX512-BF16 emulates bf16 slowly, so no fixed
profile is the right first run everywhere."""
AUTO_TITLE = "Auto · the fastest accurate CPU build, measured here"

TASK_SHORT = {
    "token-classification": "NER",
    "sequence-classification": "classification",
    "sentence-pair-classification": "sentence pairs",
}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    title: str
    family: str
    task: str
    max_seq_len: int
    default_dataset: str
    weights: str | None
    """Where the weights were found; None means only a performance-only run is possible."""
    missing: str = ""
    """What was looked for, when the weights are absent."""
    references: tuple[Any, ...] = ()

    @property
    def task_short(self) -> str:
        return TASK_SHORT.get(self.task, self.task)


@dataclass(frozen=True)
class ProfileEntry:
    name: str
    title: str
    runtime: str
    precisions: tuple[str, ...]
    available: bool | None
    """None while the availability check (which may import torch) is still going."""
    reason: str = ""
    fix: str = ""
    batch_size: int = 32
    seq_len: int | None = None


@dataclass(frozen=True)
class Catalogue:
    models: tuple[ModelEntry, ...] = ()
    profiles: tuple[ProfileEntry, ...] = ()
    datasets: tuple[tuple[str, str], ...] = ()
    dataset_tasks: tuple[tuple[str, str], ...] = ()
    """(name, task) of every built-in dataset: the data picker offers a model its task's."""
    problems: tuple[dict[str, Any], ...] = ()
    """KilnErrors met while reading cards or profiles, as dicts (shown, never fatal)."""

    def model(self, name: str | None) -> ModelEntry | None:
        return next((m for m in self.models if m.name == name), None)

    def profile(self, name: str | None) -> ProfileEntry | None:
        return next((p for p in self.profiles if p.name == name), None)

    def datasets_for(self, task: str | None) -> tuple[tuple[str, str], ...]:
        """The built-in datasets of ``task`` (every one when the task is unknown)."""
        tasks = dict(self.dataset_tasks)
        return tuple(d for d in self.datasets if task is None or tasks.get(d[0], task) == task)


@dataclass(frozen=True)
class Selection:
    """The operator's choice on the main screen; None means the default."""

    model: str | None = None
    profile: str | None = None
    precision: str = "fp32"
    dataset: str | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    limit: int | None = None
    dataset_file: str | None = None
    """The operator's own data file (then ``dataset`` is None), chosen in the file picker."""
    dataset_format: str | None = None
    """Its format (bio, tsv, xnli), as detected from its content."""

    def with_(self, **changes: Any) -> Selection:
        return replace(self, **changes)

    def to_config(self, catalogue: Catalogue) -> Any:
        """The ``RunConfig`` for this choice (a model without weights runs perf-only)."""
        from kiln_lab.core.errors import ConfigError
        from kiln_lab.core.runconfig import RunConfig

        if not self.model:
            raise ConfigError("no model chosen", hint="pick a model card on the left")
        entry = catalogue.model(self.model)
        return RunConfig(
            model=self.model,
            profile=self.profile or DEMO_PROFILE,
            precision=self.precision,
            dataset=None if self.dataset_file else self.dataset,
            dataset_file=self.dataset_file,
            dataset_format=self.dataset_format if self.dataset_file else None,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            limit=self.limit,
            perf_only=entry is not None and entry.weights is None,
        )


def default_selection(catalogue: Catalogue, last_config: dict[str, Any] | None = None) -> Selection:
    """The last run's choice if its model and profile still exist, else the demo."""
    if last_config and catalogue.model(last_config.get("model")):
        profile = catalogue.profile(last_config.get("profile"))
        if profile is not None:
            precision = last_config.get("precision", "fp32")
            return Selection(
                model=last_config.get("model"),
                profile=profile.name,
                precision=precision if precision in profile.precisions else profile.precisions[0],
                dataset=last_config.get("dataset"),
                dataset_file=last_config.get("dataset_file"),
                dataset_format=last_config.get("dataset_format"),
                batch_size=last_config.get("batch_size"),
                seq_len=last_config.get("seq_len"),
                limit=last_config.get("limit"),
            )
    model = catalogue.model(DEMO_MODEL) or (catalogue.models[0] if catalogue.models else None)
    profile = catalogue.profile(DEMO_PROFILE) or next(
        (p for p in catalogue.profiles if p.available is not False),
        catalogue.profiles[0] if catalogue.profiles else None,
    )
    return Selection(
        model=model.name if model else None,
        profile=profile.name if profile else None,
        precision=DEMO_PRECISION
        if profile is None or DEMO_PRECISION in profile.precisions
        else profile.precisions[0],
    )


def load_catalogue(*, check_profiles: bool = True) -> Catalogue:
    """Read every card, profile and built-in dataset (slow-ish: call from a thread).

    ``check_profiles=False`` skips the availability checks (some import torch, seconds):
    profiles come back with ``available=None``; :func:`with_availability` fills them in.
    """
    from kiln_lab.core.errors import KilnError, ModelNotFound

    problems: list[dict[str, Any]] = []
    models: list[ModelEntry] = []
    try:
        from kiln_lab.core.models import list_cards, locate_weights

        for card in list_cards():
            weights, missing = None, ""
            try:
                weights = str(locate_weights(card))
            except ModelNotFound as exc:
                missing = exc.message
            models.append(
                ModelEntry(
                    name=card.name,
                    title=card.title,
                    family=card.family,
                    task=card.task,
                    max_seq_len=card.max_seq_len,
                    default_dataset=card.default_dataset,
                    weights=weights,
                    missing=missing,
                    references=tuple(r.model_dump() for r in card.reference),
                )
            )
    except KilnError as exc:
        problems.append(exc.to_dict())
    profiles: list[ProfileEntry] = []
    try:
        from kiln_lab.core.profiles import check_availability, list_profiles

        for profile in list_profiles():
            status = check_availability(profile) if check_profiles else None
            profiles.append(
                ProfileEntry(
                    name=profile.name,
                    title=profile.title,
                    runtime=profile.runtime,
                    precisions=tuple(profile.precisions),
                    available=status.available if status else None,
                    reason=status.reason if status else "",
                    fix=status.fix if status else "",
                    batch_size=profile.defaults.batch_size,
                    seq_len=profile.defaults.seq_len,
                )
            )
        profiles.insert(0, auto_entry(profiles))
    except KilnError as exc:
        problems.append(exc.to_dict())
    datasets: tuple[tuple[str, str], ...] = ()
    dataset_tasks: tuple[tuple[str, str], ...] = ()
    try:
        from kiln_lab.core.data import builtin_datasets
        from kiln_lab.core.data.builtin import builtin_tasks

        datasets = tuple(builtin_datasets().items())
        dataset_tasks = tuple(builtin_tasks().items())
    except KilnError as exc:
        problems.append(exc.to_dict())
    return Catalogue(tuple(models), tuple(profiles), datasets, dataset_tasks, tuple(problems))


def with_availability(catalogue: Catalogue) -> Catalogue:
    """The catalogue with every profile's availability checked (call from a thread)."""
    from kiln_lab.core.errors import KilnError
    from kiln_lab.core.profiles import check_availability, get_profile

    problems = list(catalogue.problems)
    profiles = []
    for entry in catalogue.profiles:
        if entry.name == AUTO:
            continue
        try:
            status = check_availability(get_profile(entry.name))
        except KilnError as exc:
            problems.append(exc.to_dict())
            profiles.append(replace(entry, available=False, reason=exc.message))
            continue
        profiles.append(
            replace(entry, available=status.available, reason=status.reason, fix=status.fix)
        )
    if any(entry.name == AUTO for entry in catalogue.profiles):
        profiles.insert(0, auto_entry(profiles))
    return replace(catalogue, profiles=tuple(profiles), problems=tuple(problems))


def auto_entry(profiles: Sequence[ProfileEntry]) -> ProfileEntry:
    """The picker's "auto": the profile and precision chosen by a probe of every CPU build
    (``--profile auto``); it can run where any of the profiles it tries can."""
    from kiln_lab.core.stages.auto import CANDIDATES

    tried = {name for name, _ in CANDIDATES}
    states = [entry.available for entry in profiles if entry.name in tried]
    available = True if True in states else (None if None in states else False)
    return ProfileEntry(
        name=AUTO,
        title=AUTO_TITLE,
        runtime=AUTO,
        precisions=(AUTO, *dict.fromkeys(p for _, p in CANDIDATES)),
        available=available,
        reason="" if available is not False else f"none of {', '.join(sorted(tried))} can run",
        fix=""
        if available is not False
        else "install onnxruntime, openvino or torch into Kiln's environment",
    )


def environment_checks() -> list[tuple[str, bool, str]]:
    """(what, ok, detail) lines for the welcome screen; no heavy import happens here."""
    import platform

    from kiln_lab.core.environment import cpu_info, package_version

    checks: list[tuple[str, bool, str]] = []
    version = platform.python_version()
    checks.append(("Python", version.startswith("3.11"), version))
    for package, why in (
        ("torch", "loads and exports the models"),
        ("transformers", "model and tokenizer classes"),
        ("onnxruntime", "runs the CPU · ONNX Runtime profile"),
        ("onnx", "reads and rewrites exported graphs"),
    ):
        found = package_version(package)
        checks.append((package, found is not None, found or f"not installed ({why})"))
    cpu = cpu_info()
    cores = cpu.get("usable_cores") or cpu.get("logical_cores")
    checks.append(("CPU", True, f"{cpu.get('model', 'unknown')} · {cores} cores"))
    return checks

"""``--profile auto`` / ``--precision auto``: the fastest accurate build for this CPU.

On a 2-core Xeon with AMX, OpenVINO bf16 ran bert-base 2x faster than ONNX Runtime's
dynamic int8 (Kiln's int8 default) and 4.5x faster than either fp32, while on a CPU
without AVX512-BF16 the same bf16 build is emulated and slow. No fixed default is right
everywhere, so Kiln measures: every build this CPU offers (bf16 only with AVX512-BF16 or
AMX, int8 only with VNNI or AMX, fp32 always; ONNX Runtime, OpenVINO, PyTorch) is built
through the ordinary stages, checked for parity against PyTorch fp32, scored on the dev
split (never the examples the run reports on; int8 through the accuracy guard) and timed
on a short probe. The fastest build inside the accuracy budget wins, and the decision,
with every candidate's figures, is logged, recorded in the run and cached per model, data,
shape, budget, CPU and library versions, so the next run skips the probe.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from kiln_lab.core.environment import cpu_info, package_version
from kiln_lab.core.errors import KilnError
from kiln_lab.core.runconfig import AUTO, RunConfig

log = logging.getLogger(__name__)

PROBE_SECONDS = 1.5
CANDIDATES: tuple[tuple[str, str], ...] = (
    ("cpu-onnxruntime", "fp32"),
    ("cpu-onnxruntime", "int8"),
    ("cpu-openvino", "fp32"),
    ("cpu-openvino", "bf16"),
    ("cpu-openvino", "int8"),
    ("cpu-torch", "fp32"),
    ("cpu-torch", "bf16"),
)
"""Every CPU build Kiln can make, in the order they are tried (ties go to the first)."""
_NEEDS = {"bf16": ("avx512_bf16", "amx_bf16"), "int8": ("avx512_vnni", "amx_int8")}


def candidates(cfg: RunConfig) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """The builds worth trying on this machine, and the others with why not."""
    from kiln_lab.core.profiles import check_availability, get_profile
    from kiln_lab.core.runtimes import get_runtime

    flags = set(cpu_info()["flags"])
    chosen, skipped = [], []
    for profile_name, precision in CANDIDATES:
        if cfg.profile not in (AUTO, profile_name) or cfg.precision not in (AUTO, precision):
            continue
        why = None
        needs = _NEEDS.get(precision)
        profile = get_profile(profile_name)
        availability = check_availability(profile)
        if precision not in profile.precisions:
            why = f"{profile_name} does not offer {precision}"
        elif needs and not flags & set(needs):
            why = f"this CPU has no {' or '.join(needs)}: {precision} would be emulated"
        elif not availability.available:
            why = availability.reason
        else:
            try:
                get_runtime(profile.runtime).require(profile, precision)
            except KilnError as exc:
                why = exc.message
        if why:
            skipped.append({"profile": profile_name, "precision": precision, "why": why})
        else:
            chosen.append((profile_name, precision))
    if not chosen:
        raise KilnError(
            "no build to choose from: "
            + "; ".join(f"{s['profile']} {s['precision']}: {s['why']}" for s in skipped),
            hint="name --profile and --precision yourself",
        )
    return chosen, skipped


@dataclass
class Tried:
    """One candidate's figures on the probe."""

    profile: str
    precision: str
    samples_per_s: float = 0.0
    metric: float | None = None
    drop_points: float | None = None
    parity: str | None = None
    within_budget: bool = False
    seconds: float = 0.0
    error: str | None = None


def _cache_path(cfg: RunConfig, chosen: list[tuple[str, str]]) -> Any:
    from kiln_lab.core.export import cache_key
    from kiln_lab.core.paths import cache_dir

    cpu = cpu_info()
    key = cache_key(
        kind="auto",
        version=1,
        model=cfg.model,
        weights=_weights_identity(cfg),
        data=cfg.dataset_label,
        perf_only=cfg.perf_only,
        shape=[cfg.batch_size, cfg.seq_len],
        budget=[cfg.accuracy_budget, cfg.budget_mode, cfg.guard_samples],
        candidates=chosen,
        cpu=[cpu["model"], cpu["flags"], cpu["usable_cores"]],
        versions=[package_version(p) for p in ("onnxruntime", "openvino", "torch", "kiln-lab")],
    )
    return cache_dir("auto") / f"{key}.json"


def _weights_identity(cfg: RunConfig) -> list[Any]:
    """Which weights the decision was made for: their directory and each file's size and
    mtime (a retrained model probes again), without hashing gigabytes on every run."""
    from pathlib import Path

    from kiln_lab.core.models import get_card, locate_weights

    if cfg.perf_only:
        return ["random"]
    try:
        where = locate_weights(get_card(cfg.model), Path(cfg.weights) if cfg.weights else None)
    except KilnError:
        return [cfg.weights]
    files = sorted(p for p in Path(where).iterdir() if p.is_file())
    return [str(where), *[(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]]


def choose(cfg: RunConfig, run_id: str, cancelled: Any) -> dict[str, Any]:
    """Try every candidate (or read the cached decision); the decision as a dict."""
    chosen, skipped = candidates(cfg)
    path = _cache_path(cfg, chosen)
    if path.exists():
        try:
            decision = json.loads(path.read_text())
        except ValueError:
            path.unlink(missing_ok=True)
        else:
            log.info(
                "auto: %s %s, decided earlier on this machine (%s); delete %s to probe again",
                decision["profile"],
                decision["precision"],
                decision["why"],
                path,
            )
            return decision | {"cached": True}
    log.info(
        "auto: trying %d builds on this CPU (%s)",
        len(chosen),
        ", ".join(f"{p} {q}" for p, q in chosen),
    )
    reference: dict[str, float] = {}
    tried = [
        _try(cfg, run_id, profile, precision, reference, cancelled) for profile, precision in chosen
    ]
    good = [t for t in tried if t.within_budget]
    if not good:
        raise KilnError(
            "auto: no build passed parity within the accuracy budget ("
            + "; ".join(f"{t.profile} {t.precision}: {t.error or t.parity}" for t in tried)
            + ")",
            hint="name --profile and --precision yourself, or raise --accuracy-budget",
        )
    best = max(good, key=lambda t: t.samples_per_s)
    runner_up = sorted((t.samples_per_s for t in good), reverse=True)[1:2]
    why = f"fastest of {len(good)} within the budget at {best.samples_per_s:.1f} samples/s"
    if runner_up:
        why += f", {best.samples_per_s / runner_up[0]:.2f}x the next"
    decision = {
        "profile": best.profile,
        "precision": best.precision,
        "why": why,
        "budget_points": cfg.accuracy_budget,
        "budget_mode": cfg.budget_mode,
        "reference_metric": reference.get("metric"),
        "tried": [asdict(t) for t in tried],
        "skipped": skipped,
        "cached": False,
    }
    path.write_text(json.dumps(decision, indent=2))
    log.info("auto: chose %s %s: %s", best.profile, best.precision, why)
    return decision


def build(cfg: RunConfig, run_id: str, cancelled: Any = lambda: False) -> tuple[Any, ...]:
    """One concrete build through the ordinary stages, quietly (no stage events):
    ``(resolved, loaded, compiled, parity)``. Also what ``bench/builds.py`` times."""
    from kiln_lab.core.stages import compile, export, load, optimize, quantize, verify
    from kiln_lab.core.stages.context import StageContext
    from kiln_lab.core.stages.resolve import preflight

    ctx = StageContext(cfg, run_id, lambda event: None, cancelled, nested=True)
    resolved = preflight(cfg)
    loaded = load.run(ctx, resolved)
    graphs = optimize.run(ctx, resolved, loaded, export.run(ctx, resolved, loaded))
    quantized = quantize.run(ctx, resolved, loaded, graphs)
    compiled = compile.run(ctx, resolved, loaded, quantized.graphs)
    return resolved, loaded, compiled, verify.run(ctx, resolved, loaded, compiled)


def _try(
    cfg: RunConfig,
    run_id: str,
    profile: str,
    precision: str,
    reference: dict[str, float],
    cancelled: Any,
) -> Tried:
    started = time.perf_counter()
    tried = Tried(profile, precision)
    sub = dataclasses.replace(cfg, profile=profile, precision=precision)
    try:
        resolved, loaded, compiled, parity = build(sub, run_id, cancelled)
        tried.parity = parity.status if parity is not None else "reference"
        batches = _probe_batches(sub, resolved, loaded)
        if not sub.perf_only:
            tried.metric = _score(sub, resolved, loaded, compiled, batches, reference, cancelled)
            drop = reference["metric"] - tried.metric
            if cfg.budget_mode == "relative" and reference["metric"]:
                drop /= reference["metric"]
            tried.drop_points = 100.0 * drop
        tried.samples_per_s = _probe_speed(compiled.model, _probe_arrays(resolved, loaded, batches))
        tried.within_budget = tried.parity != "fail" and (
            tried.drop_points is None or tried.drop_points <= cfg.accuracy_budget
        )
    except KilnError as exc:
        tried.error = exc.message if hasattr(exc, "message") else str(exc)
    tried.seconds = round(time.perf_counter() - started, 2)
    log.info(
        "auto: %s %s: %s",
        profile,
        precision,
        tried.error
        or (
            f"{tried.samples_per_s:.1f} samples/s, parity {tried.parity}"
            + (
                f", dev {tried.metric:.4f} ({-(tried.drop_points or 0):+.2f} points)"
                if tried.metric is not None
                else ""
            )
            + ("" if tried.within_budget else ", outside the budget")
            + f" ({tried.seconds:.1f} s to build and probe)"
        ),
    )
    return tried


def _probe_batches(cfg: RunConfig, resolved: Any, loaded: Any) -> list[Any]:
    """The dev examples the guard would use (never the reported ones), encoded; none for
    a performance-only run."""
    if cfg.perf_only:
        return []
    examples = resolved.apart("dev").examples[: cfg.guard_samples]
    return loaded.encoder.encode_all(examples, resolved.batch_size)


def _probe_arrays(resolved: Any, loaded: Any, batches: list[Any]) -> list[dict[str, Any]]:
    """What the speed probe runs: the dev batches, or random inputs at the run's shape."""
    from kiln_lab.core.benchmark import synthetic_batch

    if batches:
        return [batch.arrays for batch, _ in batches]
    vocab = int(loaded.model.config.vocab_size)
    return [synthetic_batch(resolved.batch_size, resolved.seq_len, loaded.input_names, vocab)]


def _score(
    cfg: RunConfig,
    resolved: Any,
    loaded: Any,
    compiled: Any,
    batches: list[Any],
    reference: dict[str, float],
    cancelled: Any,
) -> float:
    from kiln_lab.core.evaluate import evaluate
    from kiln_lab.core.runtimes.torch import TorchModel

    examples = resolved.apart("dev").examples[: cfg.guard_samples]
    metric = resolved.card.primary_metric

    def score(model: Any) -> float:
        result = evaluate(
            model,
            iter(batches),
            examples,
            task=resolved.card.task,
            labels=resolved.card.labels,
            emit=lambda e: None,
            cancelled=cancelled,
            stage="resolve",
        )
        return float(result.accuracy[metric])

    if "metric" not in reference:
        reference["metric"] = score(TorchModel(loaded.model.model, loaded.input_names))
    return score(compiled.model)


def _probe_speed(model: Any, batches: list[Any]) -> float:
    """Samples per second over at least PROBE_SECONDS of runs (after one warm-up pass)."""
    for batch in batches[:2]:
        model.run(batch)
    samples, start = 0, time.perf_counter()
    while time.perf_counter() - start < PROBE_SECONDS:
        for batch in batches:
            model.run(batch)
            samples += next(iter(batch.values())).shape[0]
            if time.perf_counter() - start >= PROBE_SECONDS:
                break
    return samples / (time.perf_counter() - start)

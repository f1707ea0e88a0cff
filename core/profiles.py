"""Hardware profiles: one YAML file per target, parsed into typed frozen configs.

A profile says which runtime executes the model, which precisions it offers, how to
tell whether it can run on this machine, its default knobs (threads, instances, batch
sizes), and, for vendor toolchains, the compile and benchmark command lines. A profile
that cannot run here is listed as unavailable with the reason and the fix, never hidden
(:mod:`core.availability` does the looking).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator, model_validator

from kiln_lab.core.commandline import COMPILE_OUTPUTS, MODEL_INPUTS, check_placeholders, used
from kiln_lab.core.configfile import FrozenConfig, find_config, load_config
from kiln_lab.core.errors import ConfigError, KilnError, ToolchainMissing
from kiln_lab.core.paths import profiles_dir
from kiln_lab.core.runconfig import MIN_SEQ_LEN, CalibrationMethod, Precision, QuantizationKind

RuntimeName = Literal["torch", "torchscript", "onnxruntime", "openvino", "external"]
Device = Literal["cpu", "cuda", "ascend-npu", "cambricon-mlu", "vastai-vacc"]
FigureName = Literal[
    "samples_per_s", "latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms"
]

Template = Annotated[str, AfterValidator(check_placeholders)]
"""A string with placeholders, checked against the known names at load time."""


def _each_input_template(text: str) -> str:
    return check_placeholders(text, each_input=True)


class EachInput(FrozenConfig):
    """Arguments repeated once per model input, with ``{input_name}`` and ``{input_index}``."""

    each_input: tuple[Annotated[str, AfterValidator(_each_input_template)], ...] = Field(
        min_length=1
    )


def _argument(value: Any) -> str | EachInput:
    """One argument: text with placeholders, or ``{each_input: [...]}``."""
    if isinstance(value, EachInput):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float | dict):
        raise ValueError(f"an argument is text or {{each_input: [...]}}, not {value!r}")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return check_placeholders(value)
    if set(value) != {"each_input"}:
        raise ValueError(
            f"a mapping argument takes only 'each_input', found {', '.join(map(str, value))}"
        )
    parts = value["each_input"]
    if not isinstance(parts, list | tuple) or not parts:
        raise ValueError("each_input takes a non-empty list of arguments")
    checked = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, str | int | float):
            raise ValueError(f"each_input arguments are text, not {part!r}")
        checked.append(check_placeholders(str(part), each_input=True))
    return EachInput(each_input=tuple(checked))


Argument = Annotated[str | EachInput, PlainValidator(_argument)]
"""A command-line argument: text (placeholders checked at load time) or per-input."""


class ProbeCommand(FrozenConfig):
    """A command that must exit 0 for the profile to be available (a device query)."""

    run: tuple[str, ...] = Field(min_length=1)
    """Argument list, e.g. ``[npu-smi, info]``; never run through a shell."""
    missing: str
    """What is missing when it fails, in the operator's words."""
    fix: str = ""
    timeout_s: float = Field(default=15.0, gt=0)


class Detection(FrozenConfig):
    """What must be present for the profile to run here; every missing piece is reported."""

    python_modules: tuple[str, ...] = ()
    pip_packages: dict[str, str] = {}
    """The pip package that provides a module, for the fix hint (default: the module's name)."""
    executables: tuple[str, ...] = ()
    env_vars: tuple[str, ...] = ()
    execution_providers: tuple[str, ...] = ()
    """ONNX Runtime providers that must be listed by ``get_available_providers()``."""
    device: Literal["cuda"] | None = None
    """A device query: ``cuda`` needs an NVIDIA GPU that NVML (or torch) can see."""
    torch_cuda: bool = False
    """PyTorch itself must be a CUDA build that sees the GPU."""
    libraries: tuple[str, ...] = ()
    """Shared libraries that must be loadable (e.g. ``nvinfer`` for TensorRT)."""
    commands: tuple[ProbeCommand, ...] = ()
    setup_hint: str = ""
    """The usual fix when something is missing (e.g. 'source /opt/vendor/set_env.sh')."""


class Defaults(FrozenConfig):
    batch_size: int = Field(default=32, ge=1)
    seq_len: int | None = Field(default=None, ge=MIN_SEQ_LEN)
    """None: the card's max_seq_len."""
    intra_op_threads: int | None = Field(default=None, ge=1)
    """None: the runtime's default (all physical cores)."""
    inter_op_threads: int | None = Field(default=None, ge=1)
    instances: int = Field(default=1, ge=1)
    """Concurrent model instances (sessions, streams, vamp ``--instance``)."""
    processes: int = Field(default=1, ge=1)
    """Concurrent processes, each with its own instance(s) (vamp ``--processes``)."""
    cpu_affinity: tuple[Annotated[int, Field(ge=0)], ...] = ()
    """CPUs to pin the run (and the tools it starts) to; empty: leave the affinity alone."""
    batch_sizes: tuple[Annotated[int, Field(ge=1)], ...] = ()
    """Benchmark grid's batch sizes when the run names none."""
    seq_lens: tuple[Annotated[int, Field(ge=2)], ...] = ()
    """Benchmark grid's sequence lengths when the run names none."""


class GraphOptions(FrozenConfig):
    """Graph rewriting before the runtime sees the model."""

    fusion: bool = False
    """ONNX Runtime transformer fusion (Attention, SkipLayerNorm, BiasGelu, ...)."""
    simplify: bool = False
    """Simplify the exported graph with onnxslim first (constant folding, dead nodes),
    as vendor recipes do with onnxsim before their compilers."""


class Int8Options(FrozenConfig):
    """How this target builds int8 when asked for it."""

    method: QuantizationKind = "static"
    """static: QDQ with calibrated activation ranges; dynamic: ranges per batch at run time."""
    calibration_method: CalibrationMethod = "minmax"
    calibration_samples: int = Field(default=200, ge=1)
    """Samples drawn from the dataset's train split to calibrate activation ranges."""
    per_channel: bool = False
    no_float_repair: str | None = None
    """External profiles: why this vendor's compiler cannot be told to keep chosen layers
    in float (no documented per-layer setting), so the accuracy guard measures int8 through
    the tool but cannot repair it. Said in every int8 run on the profile."""


class KeepFloat(FrozenConfig):
    """Ops kept at higher precision (like Ascend's --keep_dtype file)."""

    op_types: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()


class OpenVINOOptions(FrozenConfig):
    """OpenVINO CPU plugin settings (the profile's threads and instances apply too)."""

    performance_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"
    """LATENCY: one stream unless ``defaults.instances`` asks for more."""


class ToolStep(FrozenConfig):
    """One external command: an argument list, run without a shell."""

    command: tuple[Argument, ...] = Field(min_length=1)
    env: dict[str, Template] = {}
    """Extra environment variables for the tool (values may hold placeholders)."""
    files: dict[str, Template] = {}
    """Files written into the working directory before the tool runs (name -> text)."""
    timeout_s: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _file_names_are_plain(self) -> ToolStep:
        for name in self.files:
            if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name.startswith("."):
                raise ValueError(f"file name {name!r} must be a plain name (no '/', no '..')")
        return self

    def placeholders(self) -> set[str]:
        return used(self.command) | used(self.env.values()) | used(self.files.values())


class CompileStep(ToolStep):
    artifact: str = Field(pattern=r"^[A-Za-z0-9._-][A-Za-z0-9._/-]*$")
    """The file the tool must produce, relative to ``{output_dir}``; ``{output}`` is its path."""
    outputs: tuple[str, ...] = ()
    """More files (globs relative to ``{output_dir}``) recorded as artifacts when present."""

    @model_validator(mode="after")
    def _reads_a_model_and_writes_somewhere(self) -> CompileStep:
        names = self.placeholders()
        if not names & set(MODEL_INPUTS):
            raise ValueError(
                "the compile command never names its input: use {onnx} or {torchscript}"
            )
        if not names & set(COMPILE_OUTPUTS):
            raise ValueError(
                "the compile command never says where to write: use {output}, {output_dir} "
                "or {output_stem}"
            )
        if ".." in self.artifact.split("/"):
            raise ValueError("artifact must stay inside {output_dir}")
        return self


class Figure(FrozenConfig):
    """A regular expression whose one group is a number in the tool's output."""

    pattern: str
    scale: float = 1.0
    """Multiplies the captured number (e.g. 0.001 for microseconds -> milliseconds)."""

    @model_validator(mode="before")
    @classmethod
    def _bare_pattern(cls, data: Any) -> Any:
        return {"pattern": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_group(self) -> Figure:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        if compiled.groups != 1:
            raise ValueError(
                f"needs exactly one (group) around the number, found {compiled.groups}"
            )
        return self


class BenchmarkStep(ToolStep):
    figures: dict[FigureName, Figure]
    """How to read the tool's figures; ``samples_per_s`` is required."""
    throughput_unit: Literal["samples", "batches"] = "samples"
    """``batches``: the tool reports inferences per second; Kiln multiplies by the batch."""
    iterations: int = Field(default=100, ge=1)
    warmup: int = Field(default=10, ge=0)

    @model_validator(mode="after")
    def _reads_the_artifact(self) -> BenchmarkStep:
        if "samples_per_s" not in self.figures:
            raise ValueError("figures must include samples_per_s")
        if not self.placeholders() & set(COMPILE_OUTPUTS):
            raise ValueError(
                "the benchmark command never names the compiled model: use {output} "
                "(or {output_dir} / {output_stem})"
            )
        return self


class InferInputs(FrozenConfig):
    """How the infer tool wants its inputs written (one module per layout: core/layouts)."""

    layout: Literal["npz-list", "ais-bench", "polygraphy-json"]
    """npz-list: one .npz per sample and a data list (VastAI vsx / vamp); ais-bench: one
    directory per model input, one file per batch (Ascend ais_bench); polygraphy-json: one
    JSON file per batch (``polygraphy run --load-inputs``)."""
    dtype: Literal["int32", "int64"] = "int64"
    keys: Literal["names", "indexed"] = "names"
    """Array names: the model's input names, or input_0, input_1, ... in input order."""
    file_format: Literal["npy", "bin"] = "npy"
    """ais-bench only: .npy files, or raw .bin (the shape comes from the compiled model)."""
    full_length: bool = False
    """Pad every sample to the run's sequence length even without ``static_shapes``: for
    builds whose batch may vary but whose sequence length is fixed (MagicMind's)."""


class InferOutputs(FrozenConfig):
    """How to read the infer tool's outputs back (always by file name, never by order)."""

    key: str | None = None
    """The output holding the logits (an .npz key, a Polygraphy output name); None: the
    only or first one."""
    file_format: Literal["npy", "bin"] = "npy"
    """ais-bench only: ``--outfmt NPY`` or ``BIN``."""


class InferStep(ToolStep):
    """Runs the compiled model over files: Kiln writes the inputs, reads the outputs back
    and scores them itself, so accuracy is measured on the device, through its own tool."""

    inputs: InferInputs
    outputs: InferOutputs = InferOutputs()
    batches_per_call: int = Field(default=16, ge=1)
    """Batches written per tool run: fewer tool start-ups, or livelier figures."""

    @model_validator(mode="after")
    def _reads_and_writes_files(self) -> InferStep:
        names = self.placeholders()
        missing = [n for n in ("infer_input", "infer_output") if n not in names]
        if missing:
            raise ValueError(
                "the infer command must name "
                + " and ".join(f"{{{n}}}" for n in missing)
                + " (where Kiln writes the inputs and where the tool writes its outputs)"
            )
        if not names & set(COMPILE_OUTPUTS):
            raise ValueError("the infer command never names the compiled model: use {output}")
        return self


class Toolchain(FrozenConfig):
    """An external compiler and benchmark tool (vendor SDKs, command-line programs)."""

    compile: CompileStep
    benchmark: BenchmarkStep | None = None
    infer: InferStep | None = None
    """The vendor's own inference tool, run over files for parity and accuracy."""
    evaluate_with: Literal["infer", "onnxruntime", "openvino", "paddle", "none"] = "none"
    """How Kiln runs the compiled artifact for parity and accuracy: ``infer`` through the
    tool (the default when there is an ``infer`` step), a local runtime that reads the
    artifact, or ``none``: only speed is measured."""
    precision_values: dict[Precision, str] = {}
    """How the tool spells each precision in ``{precision}`` (default: fp32, fp16, ...)."""
    precision_args: dict[Precision, tuple[Argument, ...]] = {}
    """Extra compile arguments appended for one precision (e.g. int8's calibration flags)."""
    calibration_keys: Literal["names", "indexed"] = "names"
    """Array names in each calibration .npz: the input names, or input_0, input_1, ..."""

    @model_validator(mode="before")
    @classmethod
    def _infer_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("infer") and "evaluate_with" not in data:
            return {**data, "evaluate_with": "infer"}
        return data

    @model_validator(mode="after")
    def _infer_needs_its_step(self) -> Toolchain:
        if self.evaluate_with == "infer" and self.infer is None:
            raise ValueError("evaluate_with: infer needs an infer step (command, inputs)")
        if self.infer is not None and self.evaluate_with != "infer":
            raise ValueError(
                f"an infer step is given but evaluate_with is {self.evaluate_with!r}: "
                "drop evaluate_with (it defaults to infer) or the infer step"
            )
        return self

    def compile_placeholders(self, precision: str | None = None) -> set[str]:
        names = self.compile.placeholders()
        for key, args in self.precision_args.items():
            if precision is None or key == precision:
                names |= used(args)
        return names

    def model_inputs(self) -> tuple[str, ...]:
        """Which exports the compile step reads (``onnx``, ``torchscript``)."""
        names = self.compile_placeholders()
        return tuple(n for n in MODEL_INPUTS if n in names)


class Profile(FrozenConfig):
    """One hardware target."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str
    description: str = ""
    runtime: RuntimeName
    device: Device = "cpu"
    execution_providers: tuple[str, ...] = ()
    precisions: tuple[Precision, ...] = Field(min_length=1)
    detect: Detection = Detection()
    defaults: Defaults = Defaults()
    static_shapes: bool = False
    """Vendor compilers often need fixed batch and sequence shapes."""
    optimize: GraphOptions = GraphOptions()
    int8: Int8Options = Int8Options()
    keep_float: KeepFloat = KeepFloat()
    op_precision: dict[str, str] = {}
    """Per op type precision mode for the vendor compiler (``{op_precision_file}``)."""
    openvino: OpenVINOOptions = OpenVINOOptions()
    toolchain: Toolchain | None = None
    """Compile and benchmark command lines; required by (and only for) ``runtime: external``."""
    profile_path: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _toolchain_matches_runtime(self) -> Profile:
        if self.runtime == "external" and self.toolchain is None:
            raise ValueError("runtime 'external' needs a toolchain: {compile: ..., benchmark: ...}")
        if self.runtime != "external" and self.toolchain is not None:
            raise ValueError(f"runtime '{self.runtime}' runs in-process: remove 'toolchain'")
        if self.device == "cuda" and self.runtime == "openvino":
            raise ValueError("the openvino runtime here runs on the CPU; use device: cpu")
        return self

    def require_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise ConfigError(
                f"profile '{self.name}' does not offer {precision}",
                path=self.profile_path,
                hint=f"choose one of: {', '.join(self.precisions)}",
            )

    @property
    def runs_locally(self) -> bool:
        """Whether Kiln itself can run what this profile builds (for parity and accuracy)."""
        return self.toolchain is None or self.toolchain.evaluate_with != "none"


def check_availability(profile: Profile) -> Any:
    """Whether ``profile`` can run here; see :func:`core.availability.check_availability`."""
    from kiln_lab.core.availability import check_availability as check

    return check(profile)


def require_available(profile: Profile) -> None:
    status = check_availability(profile)
    if not status.available:
        raise ToolchainMissing(
            f"profile '{profile.name}' cannot run here: {status.reason}",
            path=profile.profile_path,
            hint=status.fix,
        )


def load_profile_file(path: Path | str) -> Profile:
    profile = load_config(path, Profile)
    return profile.model_copy(update={"profile_path": str(Path(path).resolve())})


def list_profiles() -> list[Profile]:
    return [load_profile_file(p) for p in sorted(profiles_dir().glob("*.yaml"))]


def scan_profiles() -> tuple[list[Profile], list[KilnError]]:
    """Every shipped profile that loads, and the errors of those that do not."""
    profiles, errors = [], []
    for path in sorted(profiles_dir().glob("*.yaml")):
        try:
            profiles.append(load_profile_file(path))
        except KilnError as exc:
            errors.append(exc)
    return profiles, errors


def get_profile(name_or_path: str) -> Profile:
    """A profile by name, or by path to a profile file."""
    return load_profile_file(find_config(name_or_path, profiles_dir(), "profile", "kiln profiles"))

"""One file through the doctor: read, API checks, setup validation, rules, estimate, plan.

Codes of the doctor's own findings (readers use S1xx, API checks A1xx, plan rules H/M/T):
S107 the GPU is taken from the file · S201 the setup the file describes is not valid ·
S202 the model is not known (no estimate) · S210 fits the GPU · S211 does not fit, with the
planner's closest setup that does.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vramdoc.errors import (
    ConfigError,
    UnknownGpuError,
    UnknownModelError,
    UsageError,
    VramdocError,
)
from vramdoc.readers.findings import Finding, SourceReport

# A context name of the plan rules -> the setup key whose line a finding points at.
NAME_KEYS = {
    "bf16": "training.bf16", "fp16": "training.fp16", "optim": "training.optim",
    "optim_paged": "training.optim", "optim_state_bits": "training.optim",
    "optim_bnb": "training.optim", "optim_cuda_only": "training.optim",
    "gradient_checkpointing": "training.gradient_checkpointing",
    "use_reentrant": "training.gradient_checkpointing_kwargs",
    "learning_rate": "training.learning_rate", "warmup_steps": "training.warmup_steps",
    "lr_scheduler_type": "training.lr_scheduler_type",
    "max_grad_norm": "training.max_grad_norm", "weight_decay": "training.weight_decay",
    "micro_batch": "training.per_device_train_batch_size",
    "grad_accum": "training.gradient_accumulation_steps",
    "effective_batch": "training.per_device_train_batch_size",
    "attn_implementation": "model_kwargs.attn_implementation", "dtype": "model_kwargs.dtype",
    "seq_len": "max_seq_length", "user_seq_len": "max_seq_length",
    "lora_r": "lora.r", "lora_alpha": "lora.lora_alpha", "lora_targets": "lora.target_modules",
    "lora_all_linear": "lora.target_modules", "lora_dropout": "lora.lora_dropout",
    "use_rslora": "lora.use_rslora", "bnb_4bit_quant_type": "quantization.bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant": "quantization.bnb_4bit_use_double_quant",
    "bnb_4bit_compute_dtype": "quantization.bnb_4bit_compute_dtype",
    "load_in_4bit": "quantization", "load_in_8bit": "quantization", "quantized": "quantization",
    "quant_method": "quantization", "prepare_kbit": "prepare_model_for_kbit_training",
    "method": "lora",
}
_GPU_RE = re.compile(
    r"\b(T4|A10G|L4|L40S?|H100|H200|A6000|A100[ -]?(?:40|80)\s?GB|V100[ -]?(?:16|32)\s?GB|"
    r"RTX[ -]?\d{4}(?:\s?Ti)?(?:[ -]\d+\s?GB)?)\b")


@dataclass
class DoctorOptions:
    """What the command line adds to the files."""

    gpu: str | None = None
    model: str | None = None
    seq_len: int | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    plan: bool = True  # ask the planner when the setup does not fit


@dataclass
class FileResult:
    """Everything the doctor found in one file (rendered by vramdoc.doctor.render)."""

    path: str
    kind: str | None = None
    setup: Any = None  # TrainSetup
    estimate: Any = None  # MemoryEstimate
    findings: list[Finding] = field(default_factory=list)
    text: str | None = None
    error: str | None = None  # the file could not be read (exit 2)
    gpu: Any = None

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)


def _line_for(keys: list[str], report: SourceReport) -> tuple[int | None, int | None]:
    for k in keys:
        for cand in (k, k.split(".")[0]):
            if cand in report.lines:
                return report.lines[cand], report.cells.get(cand)
    if "model" in report.lines:
        return report.lines["model"], report.cells.get("model")
    return None, None


def _finding(path: str, line_cell: tuple[int | None, int | None], code: str, severity: str,
             message: str, fix: str = "") -> Finding:
    line, cell = line_cell
    if cell is not None:
        return Finding(path=path, line=line, code=code, severity=severity,  # type: ignore[arg-type]
                       message=message, fix=fix, cell=cell)
    return Finding(path=path, line=line, code=code, severity=severity,  # type: ignore[arg-type]
                   message=message, fix=fix)


def judge(setup: Any, spec: Any, gpu: Any, est: Any = None) -> list[Any]:
    """The plan rules (H/M/T) that fire on ``setup``: rules reading GPU names only with a GPU,
    rules reading memory names only with an estimate. Returns engine findings."""
    from vramdoc.engine import evaluate, load_rules
    from vramdoc.planner.context import (
        MEMORY_NAMES,
        default_margin,
        gpu_context,
        memory_context,
        model_context,
        setup_context,
    )

    rules = load_rules("plan")
    gpu_names = set(gpu_context(None)) - {"n_gpus"}
    ctx = setup_context(setup, spec, {**model_context(spec), **gpu_context(gpu, setup.num_gpus)})
    if est is not None:
        mem = gpu.memory_bytes if gpu is not None else None
        ctx = memory_context(ctx, est, mem, default_margin(mem) if mem else 0)
    usable = [r for r in rules
              if (gpu is not None or not set(r.names) & gpu_names)
              and (est is not None or not set(r.names) & set(MEMORY_NAMES))
              and (gpu is not None or not set(r.names) & {"fits", "headroom_bytes",
                                                           "headroom_gib", "margin_bytes"})]
    return list(evaluate(usable, ctx))


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


# The keys the planner's levers move (its hyperparameter proposals are guidance, not fit).
_LEVERS = ("model_kwargs.dtype", "model_kwargs.attn_implementation",
           "training.per_device_train_batch_size", "training.gradient_accumulation_steps",
           "training.gradient_checkpointing", "training.optim", "training.bf16", "training.fp16",
           "max_seq_length", "lora.r", "lora.target_modules")


def _lever_changes(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    out = []
    for section in ("quantization", "lora"):
        if section in theirs and section not in mine:
            inner = ", ".join(f"{k}={v!r}" for k, v in theirs[section].items()
                              if k in ("load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type",
                                       "bnb_4bit_use_double_quant", "quant_method", "r",
                                       "target_modules"))
            out.append(f"add {section} ({inner})")
        elif section in mine and section not in theirs:
            out.append(f"drop {section}")
    a, b = _flat(mine), _flat(theirs)
    for k in _LEVERS:
        if k in b and a.get(k) != b[k] and not (k.startswith("lora.") and "lora" not in mine):
            out.append(f"{k}: {a.get(k)!r} -> {b[k]!r}")
    return out


def smallest_change(setup: Any, gpu: Any) -> tuple[str, list[str]] | None:
    """The plan that fits ``gpu`` with the fewest changed keys, as (label, changes)."""
    from vramdoc.planner import PlanRequest, plan
    from vramdoc.planner.space import DEFAULT_METHODS
    from vramdoc.setup import setup_to_mapping

    methods = tuple(dict.fromkeys((setup.method, *DEFAULT_METHODS)))
    req = PlanRequest(model=setup.model, gpu=gpu, seq_len=setup.max_seq_length,
                      effective_batch=setup.effective_batch_size, methods=methods, base=setup,
                      top_k=8)
    result = plan(req)
    if not result.plans:
        tips = "; ".join(result.suggestions) if result.suggestions else ""
        return None if not tips else ("nothing fits", [tips])
    mine = setup_to_mapping(setup)
    best = None
    for p in result.plans:
        diff = _lever_changes(mine, setup_to_mapping(p.setup))
        if best is None or len(diff) < len(best[1]):
            best = (p.label, diff)
    return best


def gpu_named_in(text: str) -> tuple[str, int] | None:
    """A GPU the file names (a comment 'on a free Colab T4'), if it resolves unambiguously."""
    from vramdoc.hardware import resolve_gpu

    for m in _GPU_RE.finditer(text):
        try:
            resolve_gpu(m.group(1))
        except UsageError:
            continue
        return m.group(1), text.count("\n", 0, m.start()) + 1
    return None


def doctor_file(path: str, opts: DoctorOptions) -> FileResult:
    """Run every check on one file. Unreadable files come back with ``error`` set."""
    from vramdoc.readers import read_text, read_with, reader_for

    res = FileResult(path=path)
    p = Path(path)
    try:
        text = read_text(p)
        mod = reader_for(p, text)
        if mod is None:
            raise UsageError(f"{p}: not a file vramdoc can read",
                             "give a script, notebook, framework config or setup file")
        report = read_with(mod, p, text)
    except VramdocError as exc:
        res.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return res
    res.kind, res.text = report.kind, text
    res.findings = list(report.findings)
    if report.kind in ("python", "notebook"):
        res.findings += _api_findings(p, text, report.kind, opts)
    mapping = copy.deepcopy(report.setup) if report.setup is not None else None
    if opts.model:
        mapping = mapping or {}
        mapping["model"] = opts.model
    if mapping is not None and opts.seq_len:
        mapping["max_seq_length"] = opts.seq_len
    if mapping is None or not mapping.get("model"):
        return res  # the reader said why (S103 / S104): nothing to estimate
    _evaluate(res, report, mapping, text, opts)
    return res


def _api_findings(p: Path, text: str, kind: str, opts: DoctorOptions) -> list[Finding]:
    from vramdoc.doctor.api import check_api
    from vramdoc.doctor.versions import resolve_versions

    versions = resolve_versions(p, opts.versions)
    if kind == "notebook":
        from vramdoc.readers.notebook import scan_notebook

        scan, joined = scan_notebook(str(p), text)
        return check_api(str(p), scan, joined.text, versions, line_of=joined.line_of,
                         fixable=False)
    from vramdoc.readers._pyscan import scan_source

    return check_api(str(p), scan_source(text), text, versions)


def _evaluate(res: FileResult, report: SourceReport, mapping: dict[str, Any], text: str,
              opts: DoctorOptions) -> None:
    from vramdoc.estimate import estimate
    from vramdoc.hardware import resolve_gpu
    from vramdoc.models import default_task, resolve_model
    from vramdoc.setup import setup_from_mapping

    path = res.path
    gpu_text = opts.gpu or mapping.get("gpu")
    if not gpu_text and report.kind in ("python", "notebook"):
        named = gpu_named_in(text)
        if named:
            gpu_text = named[0]
            res.findings.append(_finding(path, (named[1], None), "S107", "info",
                                         f"GPU taken from the file: {named[0]}",
                                         "choose another with --gpu NAME"))
    mapping.pop("gpu", None)
    try:
        setup = setup_from_mapping(mapping, source=path)
    except ConfigError as exc:
        for prob in exc.problems:
            key = prob.split(":", 1)[0].strip()
            res.findings.append(_finding(path, _line_for([key], report), "S201", "error",
                                         f"the setup is not valid: {prob}"))
        return
    try:
        spec = resolve_model(setup.model)
    except UsageError as exc:
        res.findings.append(_finding(path, _line_for(["model"], report), "S202", "warning",
                                     f"no estimate: {exc.message}",
                                     "pass a catalog name or a config.json with --model"))
        return
    if setup.task == "auto":
        setup = setup.replace(task=default_task(spec))
    res.setup = setup
    gpu = None
    if gpu_text:
        try:
            gpu = resolve_gpu(str(gpu_text))
        except UnknownGpuError:
            if opts.gpu:
                raise
    res.gpu = gpu
    try:
        est = estimate(setup, model=spec, gpu=gpu)
    except UnknownModelError as exc:
        res.findings.append(_finding(path, _line_for(["model"], report), "S202", "warning",
                                     f"no estimate: {exc.message}"))
        return
    res.estimate = est
    for f in judge(setup, spec, gpu, est):
        keys = [k for k in f.propose] + [NAME_KEYS[n] for n in f.rule.names if n in NAME_KEYS]
        res.findings.append(_finding(path, _line_for(keys, report), f.code, f.severity,
                                     f.message, f.fix))
    if gpu is None:
        return
    from vramdoc.units import format_bytes

    where = _line_for(["training.per_device_train_batch_size", "training"], report)
    used = (f"{format_bytes(est.device_bytes)} of {format_bytes(gpu.memory_bytes)} on "
            f"{gpu.name} (peak in {est.peak_phase})")
    if est.fits:
        res.findings.append(_finding(path, where, "S210", "info",
                                     f"fits: {used}, {format_bytes(est.headroom_bytes or 0)} "
                                     "headroom"))
        return
    fix = "see `vramdoc plan --config FILE --gpu GPU`"
    if opts.plan:
        change = smallest_change(setup, gpu)
        if change is not None:
            label, diff = change
            fix = (f"the planner's closest plan that fits: {label}; change "
                   + "; ".join(diff)) if label != "nothing fits" else \
                f"nothing fits this GPU: {diff[0]}"
    res.findings.append(_finding(path, where, "S211", "error",
                                 f"does not fit: {used}, "
                                 f"{format_bytes(-(est.headroom_bytes or 0))} missing", fix))

"""Python training scripts (``.py``): the setup their Hugging Face calls describe.

Read as a syntax tree (:mod:`vramdoc.readers._pyscan`); nothing the user wrote is imported or
executed. Keys that transformers 5 removed or renamed are mapped to what they mean today
(``use_flash_attention_2=True`` is ``attn_implementation="flash_attention_2"``,
``warmup_ratio`` is a float ``warmup_steps``); the API checks of ``vramdoc doctor`` report them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vramdoc.readers._pyscan import CallSite, Scan, Unknown, scan_source
from vramdoc.readers.findings import Finding, SourceReport

KIND = "python"

# The setup schema's top-level default when no sequence length is found (vramdoc.setup).
DEFAULT_SEQ_LEN = 512
_SEQ_KEYS = ("max_seq_length", "max_length", "max_seq_len")  # SFTConfig / SFTTrainer spellings


def detect(path: str, text: str) -> bool:
    return Path(path).suffix.lower() in (".py", ".pyw")


def _known(value: Any) -> bool:
    return not isinstance(value, Unknown | CallSite)


class _Lines(dict[str, int]):
    """The setup-key -> line map; notebook lines are turned into (cell, line in cell)."""

    def __init__(self, line_of: Any) -> None:
        super().__init__()
        self.line_of = line_of
        self.cells: dict[str, int] = {}

    def __setitem__(self, key: str, line: int) -> None:
        if self.line_of is None:
            super().__setitem__(key, line)
            return
        ln, cell = self.line_of(line)
        super().__setitem__(key, ln if ln is not None else line)
        if cell is not None:
            self.cells[key] = cell


class _Builder:
    """Builds the setup mapping and its line map from a scan."""

    def __init__(self, path: str, scan: Scan, line_of: Any = None) -> None:
        self.path = path
        self.scan = scan
        self.findings: list[Finding] = []
        self.lines: _Lines = _Lines(line_of)
        self.line_of = line_of or (lambda line: (line, None))

    def finding(self, line: int | None, code: str, severity: str, message: str,
                fix: str = "") -> None:
        ln, cell = self.line_of(line) if line is not None else (None, None)
        self.findings.append(_make_finding(self.path, ln, code, severity, message, fix, cell))

    def assumed(self, key: str, value: Unknown, line: int, default: Any) -> None:
        shown = "the library default" if default is None else repr(default)
        self.finding(line, "S103", "info",
                     f"{key} comes from `{value.text}`, which cannot be known without running "
                     f"the script; assumed {shown}",
                     "pass the value on the doctor's command line or write it as a literal")

    def section(self, site: CallSite, section: str, known: tuple[str, ...] | list[str] | None,
                defaults: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kw in site.kwargs:
            if known is not None and kw.name not in known:
                continue
            if not _known(kw.value):
                if isinstance(kw.value, Unknown):
                    self.assumed(f"{section}.{kw.name}", kw.value, kw.line,
                                 defaults.get(kw.name))
                continue
            out[kw.name] = kw.value
            self.lines[f"{section}.{kw.name}"] = kw.line
        return out

    def build(self) -> dict[str, Any] | None:
        from vramdoc.setup import hf_names

        names = hf_names()
        scan = self.scan
        models = scan.of_kind("model")
        trainers = scan.of_kind("trainer")
        trainer = trainers[0] if trainers else None
        setup: dict[str, Any] = {}

        # --- model ------------------------------------------------------------------------
        model_site = models[0] if models else None
        if model_site is None:
            peft_loads = scan.of_kind("peft_load")
            model_site = peft_loads[0] if peft_loads else None
        if model_site is None:
            self.finding(None, "S104", "warning",
                         "no from_pretrained call of a model found: the setup cannot be read",
                         "give the model on the command line: vramdoc doctor FILE --model NAME")
            return None
        if len(models) > 1:
            self.finding(models[1].line, "S105", "info",
                         f"{len(models)} models are loaded; the setup is read from the first "
                         f"(line {self.line_of(models[0].line)[0]})")
        name = model_site.args[0] if model_site.args else model_site.get(
            "pretrained_model_name_or_path")
        self.lines["model"] = model_site.line
        if isinstance(name, str) and name:
            setup["model"] = name
        else:
            text = name.text if isinstance(name, Unknown) else "a non-literal expression"
            self.finding(model_site.line, "S103", "warning",
                         f"the model name comes from `{text}`, which cannot be known without "
                         "running the script; no memory estimate without it",
                         "pass it on the command line: vramdoc doctor FILE --model NAME")
        if "SequenceClassification" in model_site.cls:
            setup["task"] = "sequence-classification"
            nl = model_site.get("num_labels")
            if isinstance(nl, int) and not isinstance(nl, bool):
                setup["num_labels"] = nl
        elif "CausalLM" in model_site.cls:
            setup["task"] = "causal-lm"
        mk: dict[str, Any] = {}
        for key in ("dtype", "torch_dtype"):
            v = model_site.get(key)
            if v is None:
                continue
            kw = model_site.kwarg(key)
            if isinstance(v, Unknown):
                self.assumed(f"model_kwargs.{key}", v, kw.line if kw else model_site.line,
                             "auto")
            elif isinstance(v, str):
                mk["dtype"] = v.replace("torch.", "")
                self.lines["model_kwargs.dtype"] = kw.line if kw else model_site.line
        attn = model_site.get("attn_implementation")
        if isinstance(attn, str):
            mk["attn_implementation"] = attn
            self.lines["model_kwargs.attn_implementation"] = model_site.kwarg(
                "attn_implementation").line  # type: ignore[union-attr]
        elif model_site.get("use_flash_attention_2") is True:  # the pre-4.53 spelling
            mk["attn_implementation"] = "flash_attention_2"
            self.lines["model_kwargs.attn_implementation"] = model_site.kwarg(
                "use_flash_attention_2").line  # type: ignore[union-attr]
        use_cache = model_site.get("use_cache")
        if isinstance(use_cache, bool):  # from_pretrained(..., use_cache=False)
            mk["use_cache"] = use_cache
            kw_uc = model_site.kwarg("use_cache")
            self.lines["model_kwargs.use_cache"] = kw_uc.line if kw_uc else model_site.line
        if mk:
            setup["model_kwargs"] = mk

        # --- quantization -----------------------------------------------------------------
        qsite = model_site.get("quantization_config")
        if not isinstance(qsite, CallSite | dict):
            quants = scan.of_kind("quant")
            qsite = quants[0] if quants else None
        quant: dict[str, Any] | None = None
        if isinstance(qsite, CallSite):
            known = names.get(qsite.cls)
            quant = self.section(qsite, "quantization", known, {})
            for k in ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage"):
                if isinstance(quant.get(k), str):
                    quant[k] = quant[k].replace("torch.", "")
            if qsite.cls != "BitsAndBytesConfig":
                quant["quant_method"] = "gptq" if qsite.cls == "GPTQConfig" else "awq"
            self.lines["quantization"] = qsite.line
        elif isinstance(qsite, dict):
            quant = {k: v for k, v in qsite.items() if _known(v)}
            self.lines["quantization"] = model_site.line
        for key in ("load_in_4bit", "load_in_8bit"):  # passed straight to from_pretrained
            if model_site.get(key) is True and quant is None:
                quant = {key: True}
                self.lines["quantization"] = model_site.kwarg(key).line  # type: ignore[union-attr]
        if quant:
            setup["quantization"] = quant

        # --- LoRA -------------------------------------------------------------------------
        lsite = None
        for s in [*scan.of_kind("peft"), *(trainers if trainer else [])]:
            cand = (s.args[1] if s.kind == "peft" and len(s.args) > 1 else
                    s.get("peft_config") if s.kind == "trainer" else s.get("peft_config"))
            if isinstance(cand, CallSite) and cand.kind == "lora":
                lsite = cand
                break
        if lsite is None:
            loras = scan.of_kind("lora")
            lsite = loras[0] if loras else None
        if lsite is not None:
            lora = self.section(lsite, "lora", names["LoraConfig"], {})
            if isinstance(lora.get("target_modules"), list | tuple | str):
                pass
            setup["lora"] = lora
            self.lines["lora"] = lsite.line
        elif model_site.kind == "peft_load":
            setup["lora"] = {}
            self.finding(model_site.line, "S108", "info",
                         "the LoRA adapter is loaded from a saved checkpoint; its shape is not "
                         "in the script, PEFT's defaults (r=8) are assumed",
                         "point the doctor at the adapter's adapter_config.json for its shape")

        # --- k-bit preparation ------------------------------------------------------------
        if quant:
            kbit = scan.of_kind("kbit")
            trl = trainer is not None and trainer.cls != "Trainer" and \
                trainer.get("peft_config") is not None
            setup["prepare_model_for_kbit_training"] = bool(kbit) or trl
            if kbit:
                self.lines["prepare_model_for_kbit_training"] = kbit[0].line

        # --- training ---------------------------------------------------------------------
        tsite = trainer.get("args") if trainer is not None else None
        if not isinstance(tsite, CallSite) or tsite.kind != "training":
            tsites = scan.of_kind("training")
            tsite = tsites[-1] if tsites else None
        training: dict[str, Any] = {}
        if tsite is not None:
            from vramdoc.setup import TrainingSetup

            defaults = {k: getattr(TrainingSetup(), k) for k in
                        ("per_device_train_batch_size", "gradient_accumulation_steps",
                         "learning_rate", "optim", "bf16", "fp16", "gradient_checkpointing")}
            training = self.section(tsite, "training", names["TrainingArguments"], defaults)
            ratio = tsite.get("warmup_ratio")
            if "warmup_steps" not in training and isinstance(ratio, int | float) and \
                    not isinstance(ratio, bool):
                training["warmup_steps"] = float(ratio)  # transformers >= 5.15: a float ratio
                self.lines["training.warmup_steps"] = tsite.kwarg("warmup_ratio").line  # type: ignore[union-attr]
            self.lines["training"] = tsite.line
        gcs = scan.of_kind("gc")
        if gcs and "gradient_checkpointing" not in training:
            training["gradient_checkpointing"] = True
            self.lines["training.gradient_checkpointing"] = gcs[0].line
        if training:
            setup["training"] = training

        # --- sequence length --------------------------------------------------------------
        seq, line, how = self.sequence_length(tsite, trainer)
        if seq is None:
            self.finding(None, "S106", "info",
                         f"no sequence length found (SFTConfig max_length, a tokenizer's "
                         f"max_length, a max_seq_length variable); assumed {DEFAULT_SEQ_LEN}",
                         "pass --seq-len N to the doctor")
        else:
            setup["max_seq_length"] = seq
            self.lines["max_seq_length"] = line
        # without a literal model name the rest is still returned: `--model` completes it
        return setup

    def sequence_length(self, tsite: CallSite | None, trainer: CallSite | None
                        ) -> tuple[int | None, int, str]:
        for site in (tsite, trainer):
            if site is None:
                continue
            for key in _SEQ_KEYS:
                kw = site.kwarg(key)
                if kw is None:
                    continue
                if isinstance(kw.value, int) and not isinstance(kw.value, bool) and kw.value > 0:
                    return kw.value, kw.line, f"{site.cls}({key})"
                if isinstance(kw.value, Unknown):
                    self.assumed(f"max_seq_length ({site.cls} {key})", kw.value, kw.line, None)
        hints = self.scan.seq_hints
        if hints:
            v, line, how = hints[0]
            return v, line, how
        return None, 0, ""


def _make_finding(path: str, line: int | None, code: str, severity: str, message: str,
                  fix: str = "", cell: int | None = None, **kw: Any) -> Finding:
    if cell is not None:
        return Finding(path=path, line=line, code=code, severity=severity,  # type: ignore[arg-type]
                       message=message, fix=fix, cell=cell, **kw)
    return Finding(path=path, line=line, code=code, severity=severity,  # type: ignore[arg-type]
                   message=message, fix=fix, **kw)


def source_findings(path: str, scan: Scan, line_of: Any = None) -> list[Finding]:
    """Syntax errors (S101) and elisions read over (S102)."""
    line_of = line_of or (lambda line: (line, None))
    out = []
    for line, msg in scan.parsed.errors:
        ln, cell = line_of(line)
        out.append(_make_finding(path, ln, "S101", "error", f"syntax error: {msg}; the rest of "
                                 "the file was read without this line",
                                 "fix the line (the doctor reads around it)", cell))
    for line in scan.parsed.elisions:
        ln, cell = line_of(line)
        out.append(_make_finding(path, ln, "S102", "info",
                                 "`...` elision: the arguments left out are not known; the "
                                 "libraries' defaults are assumed for them", "", cell))
    if scan.parsed.tree is None:
        out.append(_make_finding(path, None, "S101", "error",
                                 "the file could not be parsed as Python",
                                 "fix the syntax errors above"))
    return out


def report_from_scan(path: str, scan: Scan, kind: str = KIND, line_of: Any = None
                     ) -> SourceReport:
    """The SourceReport of a scanned source (shared with the notebook reader)."""
    builder = _Builder(path, scan, line_of)
    findings = source_findings(path, scan, line_of)
    setup = builder.build() if scan.parsed.tree is not None else None
    findings += builder.findings
    return SourceReport(path=path, kind=kind, setup=setup, findings=tuple(findings),
                        lines=dict(builder.lines), cells=dict(builder.lines.cells))


def read(path: str, text: str) -> SourceReport:
    return report_from_scan(path, scan_source(text))

"""The emitted snippet runs against the real transformers / peft / bitsandbytes on CPU.

Model loading is replaced (no weights are downloaded): the snippet's own statements build
BitsAndBytesConfig, LoraConfig and TrainingArguments with the real classes; a fake
from_pretrained records what it was given. bf16=True needs use_cpu=True on a CPU-only
machine: the test adds it, the snippet does not (it is meant for the GPU).
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

import pytest

from vramdoc.emit import render_python, training_kwargs
from vramdoc.hardware import resolve_gpu
from vramdoc.planner import PlanRequest, plan
from vramdoc.setup import REMOVED_TRAINING_KEYS, hf_names

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

MATRIX = [
    ("llama-2-7b", "6GB", 512, 16, None),
    ("llama-3-8b", "RTX-4090", 1024, 32, None),
    ("mistral-7b", "T4", 512, 8, None),
    ("llama-2-7b", "A100-80GB", 512, 16, None),
    ("qwen2.5-0.5b", "RTX-3060-12GB", 2048, 16, None),
    ("bert-large-uncased", "T4", 256, 32, None),
    ("llama-2-7b", "T4", 512, 16, ("qlora-int8", "gptq-lora", "awq-lora")),
    ("llama-3.1-8b", "8GB", 512, 16, None),  # QLoRA without the k-bit fp32 upcast
]


class FakeModel:
    def __init__(self, name: str, kwargs: dict[str, Any]) -> None:
        self.name, self.kwargs = name, kwargs

    def print_trainable_parameters(self) -> None:
        pass

    def enable_input_require_grads(self) -> None:
        self.input_require_grads = True


class FakeAuto:
    calls: list[tuple[str, dict[str, Any]]] = []

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> FakeModel:
        cls.calls.append((name, kwargs))
        return FakeModel(name, kwargs)


def run_snippet(code: str) -> dict[str, Any]:
    """Exec the snippet: real config classes, fake model loading and PEFT wrapping."""
    tree = ast.parse(code)
    body = [n for n in tree.body if not (isinstance(n, ast.ImportFrom)
                                         and n.module in ("transformers", "peft"))]
    tree.body = body
    recorded: dict[str, Any] = {}

    def training_arguments(**kwargs: Any) -> Any:
        if kwargs.get("bf16"):
            kwargs["use_cpu"] = True  # CPU-only test machine; the snippet targets a GPU
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.simplefilter("error", DeprecationWarning)
            return transformers.TrainingArguments(**kwargs)

    def prepare(model: Any, **kwargs: Any) -> Any:
        recorded["prepare"] = kwargs
        return model

    def get_peft_model(model: Any, config: Any) -> Any:
        recorded["peft_config"] = config
        return model

    FakeAuto.calls = []
    ns: dict[str, Any] = {
        "AutoModelForCausalLM": FakeAuto, "AutoModelForSequenceClassification": FakeAuto,
        "BitsAndBytesConfig": transformers.BitsAndBytesConfig, "LoraConfig": peft.LoraConfig,
        "TrainingArguments": training_arguments, "get_peft_model": get_peft_model,
        "prepare_model_for_kbit_training": prepare,
    }
    exec(compile(tree, "<snippet>", "exec"), ns)  # noqa: S102 - our own generated code
    ns["_recorded"] = recorded
    ns["_loads"] = list(FakeAuto.calls)
    return ns


def _plans():
    for model, gpu, seq, eb, methods in MATRIX:
        kw = {"methods": methods} if methods else {}
        r = plan(PlanRequest(model=model, gpu=resolve_gpu(gpu), seq_len=seq,
                             effective_batch=eb, **kw))
        assert r.fits, (model, gpu)
        for i, p in enumerate(r.plans):
            yield pytest.param(r, p, id=f"{model}-{gpu}-{i}-{p.setup.method}")


@pytest.mark.parametrize("result, p", list(_plans()))
def test_snippet_builds_real_config_objects(result, p):
    code = render_python(p, result.spec, result.gpu)
    ns = run_snippet(code)
    s = p.setup
    t = s.training
    args = ns["args"]
    assert isinstance(args, transformers.TrainingArguments)
    assert args.per_device_train_batch_size == t.per_device_train_batch_size
    assert args.gradient_accumulation_steps == t.gradient_accumulation_steps
    assert args.activation_checkpointing == t.gradient_checkpointing
    assert (args.bf16, args.fp16) == (t.bf16, t.fp16)
    assert args.optim.value == t.optim
    assert args.learning_rate == t.learning_rate and args.max_grad_norm == t.max_grad_norm
    assert args.lr_scheduler_type.value == t.lr_scheduler_type
    ((name, kwargs),) = ns["_loads"]
    assert kwargs["attn_implementation"] == s.attn_implementation
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    assert kwargs["dtype"] == dtype[s.torch_dtype]
    q = s.quantization
    if q is not None and q.quant_method == "bitsandbytes":
        bnb = ns["bnb_config"]
        assert isinstance(bnb, transformers.BitsAndBytesConfig)
        assert kwargs["quantization_config"] is bnb
        if q.bits == 4:
            assert bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4"
            assert bnb.bnb_4bit_use_double_quant is True
            assert bnb.bnb_4bit_compute_dtype == dtype[q.bnb_4bit_compute_dtype]
        else:
            assert bnb.load_in_8bit and not bnb.load_in_4bit
        if s.prepare_model_for_kbit_training:
            assert ns["_recorded"]["prepare"] == {"use_gradient_checkpointing": True}
        else:  # upcast skipped (M222): input grads enabled by hand, checkpointing by Trainer
            assert "prepare" not in ns["_recorded"]
            assert ns["model"].input_require_grads is True
            assert ns["args"].activation_checkpointing is True
        assert kwargs["device_map"] == {"": 0}
    elif q is not None:  # GPTQ / AWQ: the checkpoint carries its quantization config
        assert "quantization_config" not in kwargs and "bnb_config" not in ns
        assert name.endswith(q.quant_method.upper())
    else:
        assert "quantization_config" not in kwargs and "bnb_config" not in ns
    if s.lora is not None:
        lc = ns["lora_config"]
        assert isinstance(lc, peft.LoraConfig) and ns["_recorded"]["peft_config"] is lc
        assert lc.r == s.lora.r and lc.lora_alpha == s.lora.lora_alpha
        want = "all-linear" if s.lora.target_modules == ("all-linear",) else None
        if want:
            assert lc.target_modules == "all-linear"
        else:
            assert lc.target_modules  # PEFT's default, written out by name
        assert lc.task_type == ("SEQ_CLS" if s.task == "sequence-classification"
                                else "CAUSAL_LM")
    else:
        assert "lora_config" not in ns


def test_training_arguments_use_only_transformers5_names():
    names = set(hf_names()["TrainingArguments"])
    for model, gpu, seq, eb, _methods in MATRIX[:3]:
        r = plan(PlanRequest(model=model, gpu=resolve_gpu(gpu), seq_len=seq, effective_batch=eb))
        for p in r.plans:
            for key, _value, _comment in training_kwargs(p):
                assert key in names, key
                assert key not in REMOVED_TRAINING_KEYS, key
                assert key != "gradient_checkpointing"  # deprecated alias in transformers 5


def test_snippet_is_commented_and_cites_rules():
    r = plan(PlanRequest(model="llama-2-7b", gpu=resolve_gpu("6GB")))
    code = render_python(r.best, r.spec, r.gpu)
    ast.parse(code)
    for needle in ("BitsAndBytesConfig(", "LoraConfig(", "TrainingArguments(",
                   "prepare_model_for_kbit_training(", "get_peft_model(", "dtype=torch.float16",
                   "attn_implementation='sdpa'", "(M211)", "# rule T303"):
        assert needle in code, needle
    assert "torch_dtype" not in code and "use_flash_attention_2" not in code
    assert "gradient_checkpointing=" not in code.replace("use_gradient_checkpointing=", "")
    for line in code.splitlines():
        if line.strip().startswith(("per_device_train_batch_size", "optim=", "activation_")):
            assert "#" in line, line

"""A tiny Llama and synthetic data for CPU Trainer runs in tests and the overhead benchmark.

Random weights from a config (no download): 2 layers, hidden 32, vocabulary 256, about
35 K parameters; a step of batch 4 x 32 tokens takes a few milliseconds on one CPU core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_model(seed: int = 0, **overrides: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    cfg.update(overrides)
    return LlamaForCausalLM(LlamaConfig(**cfg))


class SyntheticTokens:
    """Deterministic random token sequences; labels = inputs (causal LM)."""

    def __init__(self, n: int = 4096, seq_len: int = 32, vocab: int = 256) -> None:
        self.n, self.seq_len, self.vocab = n, seq_len, vocab

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        g = torch.Generator().manual_seed(i)
        ids = torch.randint(0, self.vocab, (self.seq_len,), generator=g)
        return {"input_ids": ids, "labels": ids.clone()}


def tiny_trainer(out_dir: str | Path, callbacks: list[Any], *, max_steps: int = 8,
                 trainer_cls: Any = None, model: Any = None, seq_len: int = 32,
                 **args: Any) -> Any:
    """A CPU Trainer on the tiny model; ``args`` override TrainingArguments."""
    from transformers import Trainer, TrainingArguments

    kwargs: dict[str, Any] = dict(
        output_dir=str(out_dir), use_cpu=True, max_steps=max_steps,
        per_device_train_batch_size=4, logging_steps=1, save_strategy="no", report_to="none",
        learning_rate=1e-3, disable_tqdm=True, dataloader_num_workers=0,
    )
    kwargs.update(args)
    cls = trainer_cls or Trainer
    return cls(model=model if model is not None else tiny_model(), args=TrainingArguments(**kwargs),
               train_dataset=SyntheticTokens(seq_len=seq_len), callbacks=callbacks)


def nan_trainer_class(nan_step: int) -> Any:
    """A Trainer whose loss (and so every gradient) is NaN on optimizer step ``nan_step``."""
    from transformers import Trainer

    class NanAtStep(Trainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: Any, **kwargs: Any) -> Any:
            loss = super().compute_loss(model, inputs, **kwargs)
            if self.state.global_step + 1 == nan_step:
                loss = loss * float("nan")
            return loss

    return NanAtStep

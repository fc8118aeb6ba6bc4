"""A config.json whose model_type vramdoc has no builder for: built by transformers on the meta
device (vramdoc.models.generic), its inventory exact, its estimate flagged generic; a clear
exit 2 naming the model_type when transformers cannot build it; catalog models stay headless."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TINY = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=8,
            num_key_value_heads=2, vocab_size=1000)
# architectures transformers 5.24 ships that vramdoc has no builder for
GENERIC = {
    "stablelm": {"model_type": "stablelm", **TINY},
    "starcoder2": {"model_type": "starcoder2", **TINY},
    "cohere": {"model_type": "cohere", **TINY, "pad_token_id": 0},
}


def _write(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def _meta(config: dict, seq_cls: bool = False):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.AutoConfig.for_model(
        config["model_type"], **{k: v for k, v in config.items() if k != "model_type"})
    auto = (transformers.AutoModelForSequenceClassification if seq_cls
            else transformers.AutoModelForCausalLM)
    with torch.device("meta"):
        return auto.from_config(cfg)


@pytest.mark.parametrize("mt", sorted(GENERIC))
def test_generic_inventory_is_the_meta_build(tmp_path: Path, mt: str) -> None:
    from vramdoc.models import param_groups
    from vramdoc.models.resolve import resolve_model

    spec = resolve_model(_write(tmp_path, GENERIC[mt]))
    model = _meta(GENERIC[mt])
    assert spec.generic and spec.model_type == mt
    assert spec.n_params == sum(p.numel() for p in model.parameters())
    assert sum(g.numel for g in param_groups(spec)) == spec.n_params
    assert (spec.hidden_size, spec.num_hidden_layers, spec.num_attention_heads,
            spec.num_key_value_heads, spec.vocab_size) == (256, 2, 8, 2, 1000)
    # every module path of the inventory is one the model has (layer 0 stands for {i})
    names = {n for n, _ in model.named_modules()} | {n for n, _ in model.named_parameters()}
    for g in param_groups(spec):
        assert g.path.replace("{i}", "0") in names, g.path


def test_generic_sequence_classification_inventory(tmp_path: Path) -> None:
    from vramdoc.models import SEQUENCE_CLASSIFICATION, param_groups
    from vramdoc.models.resolve import resolve_model

    spec = resolve_model(_write(tmp_path, GENERIC["stablelm"]))
    model = _meta({**GENERIC["stablelm"], "num_labels": 3}, seq_cls=True)
    groups = param_groups(spec, SEQUENCE_CLASSIFICATION, num_labels=3)
    assert sum(g.numel for g in groups) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("mt", sorted(GENERIC))
def test_generic_all_linear_trainable_count_matches_peft(tmp_path: Path, mt: str) -> None:
    peft = pytest.importorskip("peft")
    from vramdoc.estimate import estimate
    from vramdoc.models.resolve import resolve_model
    from vramdoc.setup import setup_from_mapping

    pm = peft.get_peft_model(_meta(GENERIC[mt]),
                             peft.LoraConfig(r=8, target_modules="all-linear"))
    want = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    path = _write(tmp_path, {**GENERIC[mt], "torch_dtype": "bfloat16"})
    spec = resolve_model(path)
    setup = setup_from_mapping({"model": path, "lora": {"r": 8, "target_modules": "all-linear"}},
                               source="test")
    est = estimate(setup, model=spec)
    assert est.trainable_params == want
    assert any(n.startswith("generic (approximate activations)") for n in est.notes)


def test_generic_estimate_is_flagged_in_the_cli(tmp_path: Path, run_cli) -> None:
    path = _write(tmp_path, {**GENERIC["stablelm"], "torch_dtype": "bfloat16"})
    code, out, err = run_cli("estimate", "--model", path, "--method", "lora")
    assert code == 0, err
    assert "generic (approximate activations): model_type 'stablelm'" in out + err
    code, out, _ = run_cli("estimate", "--model", path, "--json")
    assert code == 0
    assert any("generic (approximate activations)" in n for n in json.loads(out)["notes"])
    code, _out, err = run_cli("plan", "--model", path, "--gpu", "24GB")
    assert code == 0 and "note: generic (approximate activations)" in err
    code, out, _ = run_cli("models", path)
    assert code == 0 and "generic (approximate activations)" in out
    code, out, _ = run_cli("models", path, "--json")
    assert code == 0 and json.loads(out)["generic"] is True


@pytest.mark.parametrize(("config", "says"), [
    ({"model_type": "t5"}, "transformers 5.24.0 has no causal-LM class for it"),
    ({"model_type": "no_such_arch"}, "neither vramdoc nor transformers"),
    ({"model_type": "custom_lm", "auto_map": {"AutoModelForCausalLM": "m.CustomLM"}},
     "remote code"),
], ids=["no-causal-lm", "unknown", "remote-code"])
def test_unbuildable_model_type_is_one_message(tmp_path: Path, run_cli, config: dict,
                                               says: str) -> None:
    pytest.importorskip("transformers")
    code, out, err = run_cli("estimate", "--model", _write(tmp_path, config))
    assert code == 2 and out == ""
    assert f"model_type {config['model_type']!r}" in err and says in err
    assert "Traceback" not in err


def test_generic_config_values_transformers_refuses_are_a_config_error(tmp_path: Path,
                                                                       run_cli) -> None:
    pytest.importorskip("transformers")
    code, _, err = run_cli("estimate", "--model", _write(
        tmp_path, {**GENERIC["stablelm"], "num_attention_heads": 7}))
    assert code == 2 and "Traceback" not in err and "stablelm" in err


def test_catalog_and_known_config_estimates_stay_headless(tmp_path: Path) -> None:
    """transformers is imported only on the generic path: not for a catalog name, not for a
    config.json of a known model_type; and it is for an unknown one (the path is lazy)."""
    known = _write(tmp_path, {"model_type": "llama", **TINY})
    (tmp_path / "g").mkdir()
    unknown = _write(tmp_path / "g", GENERIC["stablelm"])
    code = (
        "import sys, io, contextlib\n"
        "from vramdoc.cli import main\n"
        "rcs = []\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    rcs.append(main(['estimate', '--model', 'llama-2-7b']))\n"
        f"    rcs.append(main(['estimate', '--model', {known!r}]))\n"
        "    before = 'transformers' in sys.modules or 'torch' in sys.modules\n"
        f"    rcs.append(main(['estimate', '--model', {unknown!r}]))\n"
        "print(rcs, before, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[0, 0, 0] False True"

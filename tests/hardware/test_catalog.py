"""The shipped GPU catalog: complete, sourced, sane, and consistent with compute capability."""

from __future__ import annotations

import copy

import pytest

from vramdoc.errors import ConfigError
from vramdoc.hardware import catalog as catalog_mod
from vramdoc.hardware import gpu_catalog
from vramdoc.hardware.catalog import load_catalog_data, name_tokens, validate_catalog
from vramdoc.hardware.spec import ARCHITECTURES, architecture_of, capability_flags
from vramdoc.units import MiB

# Cards the catalog must hold (issue 3 / hardware brief).
REQUIRED = [
    "GTX-1060-6GB", "GTX-1080-Ti", "P100-16GB", "T4", "V100-16GB", "V100-32GB",
    "RTX-2060-6GB", "RTX-2070", "RTX-2080-Ti", "TITAN-RTX", "RTX-3060-12GB", "RTX-3060-Ti",
    "RTX-3070", "RTX-3080-10GB", "RTX-3080-12GB", "RTX-3090", "RTX-3090-Ti", "RTX-A2000",
    "RTX-A4000", "RTX-A5000", "RTX-A6000", "A10", "A10G", "A30", "A40", "A100-40GB-PCIe",
    "A100-40GB-SXM", "A100-80GB-PCIe", "A100-80GB-SXM", "L4", "L40", "L40S", "RTX-4060-8GB",
    "RTX-4060-Ti-16GB", "RTX-4070", "RTX-4070-Ti-Super", "RTX-4080", "RTX-4080-Super",
    "RTX-4090", "RTX-6000-Ada", "H100-PCIe", "H100-SXM", "H100-NVL", "H200", "GH200",
    "RTX-5070", "RTX-5080", "RTX-5090", "B200", "RTX-PRO-6000-Blackwell",
]

# nvidia-smi / NVML totals, each with where it was read (also in catalog memory_source).
GOLDEN_MIB = {
    "A100-80GB-SXM": 81920,  # github.com/modal-labs/modal-client/pull/2797
    "H100-SXM": 81559,  # same PR; github.com/NVIDIA/nccl/issues/1264
    "RTX-4090": 24564,  # github.com/RLinf/RLinf/issues/255
    "T4": 15360,  # modal-client PR 2797
    "V100-16GB": 16160,  # github.com/4paradigm/k8s-vgpu-scheduler/issues/7
    "A10G": 23028,  # github.com/NVIDIA/DCGM/issues/232
    "L4": 23034,  # modal-client PR 2797
    "RTX-5090": 32607,  # github.com/noonghunna/club-3090/issues/1261
    "B200": 183359,  # github.com/NVIDIA/TensorRT-LLM/issues/10278
    "H100-NVL": 95830,  # github.com/NVIDIA/gpu-admin-tools/issues/4
}


def by_name():
    return {g.name: g for g in gpu_catalog()}


def test_catalog_is_valid_and_large_enough():
    data = load_catalog_data()
    assert validate_catalog(data) == []
    assert len(gpu_catalog()) >= 45


def test_required_cards_present():
    names = set(by_name())
    assert [n for n in REQUIRED if n not in names] == []


@pytest.mark.parametrize(("name", "mib"), sorted(GOLDEN_MIB.items()))
def test_nvml_totals_match_sources(name, mib):
    g = by_name()[name]
    assert g.memory_bytes == mib * MiB
    assert g.memory_mib == mib


def test_every_entry_has_sources_and_sane_units():
    for g in gpu_catalog():
        assert g.source.count("http") >= 1, g.name
        assert g.memory_source, g.name
        assert 5 * 2**30 <= g.memory_bytes <= 200 * 2**30, g.name
        assert 150 <= g.memory_bandwidth_gbps <= 8000, g.name
        assert 4 <= g.fp16_tflops <= 2500, g.name
        assert 4 <= g.fp32_tflops <= 130, g.name
        # tensor math is never slower than plain fp32 math
        assert g.fp16_tflops >= g.fp32_tflops, g.name
        assert g.architecture in ARCHITECTURES
        assert g.release_year >= 2016
        assert not g.assumed


def test_flags_consistent_with_compute_capability():
    for g in gpu_catalog():
        flags = capability_flags(g.compute_capability)
        assert (g.bf16, g.flash_attention_2, g.fp8) == (
            flags["bf16"], flags["flash_attention_2"], flags["fp8"]), g.name
        assert g.architecture == architecture_of(g.compute_capability), g.name
        assert (g.bf16_tflops > 0) == g.bf16, g.name


def test_known_flag_values():
    cat = by_name()
    assert not cat["T4"].bf16 and not cat["T4"].flash_attention_2
    assert cat["RTX-3060-12GB"].bf16 and cat["RTX-3060-12GB"].flash_attention_2
    assert not cat["RTX-3090"].fp8 and cat["RTX-4090"].fp8 and cat["H100-SXM"].fp8
    # Blackwell: flash-attn 2 prebuilt wheels lack sm100/sm120 kernels (spec.py docstring)
    assert not cat["B200"].flash_attention_2 and not cat["RTX-5090"].flash_attention_2
    assert cat["B200"].sm == 100 and cat["RTX-5090"].sm == 120


def test_names_and_aliases_unique_across_entries():
    owner: dict[tuple[str, ...], str] = {}
    for g in gpu_catalog():
        for text in (g.name, *g.aliases):
            key = name_tokens(text)
            assert owner.setdefault(key, g.name) == g.name, (text, owner[key], g.name)


def test_geforce_tensor_rates_are_fp32_accumulate():
    # GA102 whitepaper: RTX 3090 71 TFLOPS (fp32 acc), not 142; Ada: RTX 4090 165.2, not 330
    cat = by_name()
    assert cat["RTX-3090"].bf16_tflops == pytest.approx(71.0)
    assert cat["RTX-4090"].bf16_tflops == pytest.approx(165.2)
    assert cat["A100-80GB-SXM"].bf16_tflops == pytest.approx(312.0)  # dense, not 624
    assert cat["H100-SXM"].bf16_tflops == pytest.approx(989.5)  # dense, not 1979


def _mutated(fn):
    data = copy.deepcopy(load_catalog_data())
    fn(data["gpus"])
    return validate_catalog(data)


def test_validation_reports_every_problem_at_once():
    def break_two(gpus):
        gpus[0]["bf16"] = True  # GTX 1060 is sm61
        del gpus[1]["source"]
        gpus[2]["memory_mib"] = 999_999

    problems = _mutated(break_two)
    assert problems == [
        "gpus[0] GTX-1060-6GB: bf16=True contradicts sm61",
        "gpus[0] GTX-1060-6GB: bf16_tflops must be > 0 exactly when bf16 is supported",
        "gpus[1] GTX-1080-Ti: missing source",
        "gpus[2] P100-16GB: memory_mib 999999 out of range",
        "gpus[2] P100-16GB: memory_mib 999999 inconsistent with 16 GB marketed",
    ]


def test_validation_catches_alias_collision_and_bad_types():
    problems = _mutated(lambda g: g[0]["aliases"].append("rtx 4090"))
    # every RTX-4090 spelling now collides with the alias stolen by the GTX 1060 entry
    assert problems
    assert all(p.startswith("gpus[") and " RTX-4090: name/alias " in p
               and p.endswith("collides with GTX-1060-6GB") for p in problems)
    problems = _mutated(lambda g: g[0].__setitem__("memory_mib", True))
    assert any("memory_mib has the wrong type" in p for p in problems)
    problems = _mutated(lambda g: g[0].__setitem__("architecture", "Ampere"))
    assert any("sm61 is Pascal, not Ampere" in p for p in problems)


def test_invalid_shipped_catalog_raises_config_error(monkeypatch):
    bad = copy.deepcopy(load_catalog_data())
    bad["gpus"][0]["source"] = "a friend told me"
    monkeypatch.setattr(catalog_mod, "load_catalog_data", lambda: bad)
    gpu_catalog.cache_clear()
    try:
        with pytest.raises(ConfigError, match="source must cite a URL"):
            gpu_catalog()
    finally:
        gpu_catalog.cache_clear()
        catalog_mod._key_index.cache_clear()

"""`vramdoc gpus`: the catalog table, filters, JSON, and single-GPU resolution."""

from __future__ import annotations

import json

from vramdoc.hardware import gpu_catalog


def test_table_lists_every_gpu(run_cli):
    code, out, err = run_cli("gpus")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["GPU", "arch", "sm", "memory", "GiB", "bf16", "FA2", "fp8",
                                "GB/s", "bf16", "TFLOPs", "fp16", "TFLOPs"]
    assert len(lines) == 2 + len(gpu_catalog())
    t4 = next(line for line in lines if line.startswith("T4 "))
    # 15360 MiB = 15.00 GiB; no bf16 (dash), 65 fp16 TFLOPs, 320 GB/s
    assert t4.split() == ["T4", "Turing", "75", "15.00", "-", "-", "-", "320", "-", "65.0"]
    assert f"{len(gpu_catalog())} GPU(s)" in err  # the people-facing note goes to stderr


def test_filters(run_cli):
    code, out, _ = run_cli("gpus", "--arch", "hopper", "--min-memory", "90GB")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert names == ["H100-NVL", "H200", "GH200"]


def test_min_memory_uses_nvml_totals(run_cli):
    # an "80GB" H100 reports 81559 MiB = 79.6 GiB: it is below 80GB (= 80 GiB)
    _, out, _ = run_cli("gpus", "--min-memory", "80GB", "--arch", "Hopper")
    assert "H100-SXM" not in out and "H200" in out


def test_json_output(run_cli):
    code, out, _ = run_cli("gpus", "--json", "--arch", "Ada Lovelace")
    assert code == 0
    data = json.loads(out)
    assert {g["architecture"] for g in data} == {"Ada"}
    l4 = next(g for g in data if g["name"] == "L4")
    assert l4["memory_bytes"] == 23034 * 2**20
    assert l4["compute_capability"] == [8, 9] and l4["sm"] == 89
    assert l4["fp8"] is True and l4["source"].startswith("https://")


def test_unknown_arch_is_a_usage_error(run_cli):
    code, out, err = run_cli("gpus", "--arch", "Kepler")
    assert code == 2 and out == ""
    assert "unknown architecture 'Kepler'" in err


def test_bad_min_memory(run_cli):
    code, _, err = run_cli("gpus", "--min-memory", "lots")
    assert code == 2 and "--min-memory 'lots' is not a size" in err


def test_resolve_one(run_cli):
    code, out, _ = run_cli("gpus", "6GB")
    assert code == 0
    assert "generation ASSUMED" in out and "sm75" in out
    code, out, _ = run_cli("gpus", "--json", "a100-80gb")
    data = json.loads(out)
    assert data["name"] == "A100-80GB-SXM" and data["memory_bytes"] == 81920 * 2**20
    assert data["assumed"] is False


def test_empty_filter_result(run_cli):
    code, out, err = run_cli("gpus", "--arch", "Pascal", "--min-memory", "100GB")
    assert code == 0 and out == "" and "no catalog GPU matches" in err

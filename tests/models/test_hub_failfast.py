"""Hub look-ups for repo ids off the catalog: one request, no retry loop, clear failures."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from vramdoc.errors import UnknownModelError
from vramdoc.models import resolve


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The Hub allowed, nothing cached, and urlopen recorded (never the network)."""
    calls: list[object] = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(resolve, "_hub_allowed", lambda: True)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    resolve._from_hub.cache_clear()
    return calls


def test_unreachable_hub_fails_at_once_naming_offline_mode(online, monkeypatch) -> None:
    def unreachable(req: object, timeout: float) -> None:
        online.append((req, timeout))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    t = time.perf_counter()
    with pytest.raises(UnknownModelError, match="cannot reach the Hugging Face Hub") as err:
        resolve.resolve_model("some-org/unreachable-model")
    assert time.perf_counter() - t < 1.0
    assert len(online) == 1 and online[0][1] == resolve.HUB_TIMEOUT_S  # one try, bounded
    assert "HF_HUB_OFFLINE" in err.value.hint and "config.json" in err.value.hint


def test_gated_repo_says_so(online, monkeypatch) -> None:
    def gated(req: object, timeout: float) -> None:
        raise urllib.error.HTTPError("u", 401, "Unauthorized", None, None)  # type: ignore[arg-type]

    monkeypatch.setattr(urllib.request, "urlopen", gated)
    with pytest.raises(UnknownModelError, match="gated or private"):
        resolve.resolve_model("some-org/gated-model")


def test_missing_repo_is_an_unknown_model(online, monkeypatch) -> None:
    def missing(req: object, timeout: float) -> None:
        raise urllib.error.HTTPError("u", 404, "Not Found", None, None)  # type: ignore[arg-type]

    monkeypatch.setattr(urllib.request, "urlopen", missing)
    with pytest.raises(UnknownModelError, match="unknown model 'some-org/missing-model'"):
        resolve.resolve_model("some-org/missing-model")


def test_offline_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnknownModelError, match="HF_HUB_OFFLINE") as err:
        resolve.resolve_model("some-org/not-cached")
    assert "config.json" in err.value.hint

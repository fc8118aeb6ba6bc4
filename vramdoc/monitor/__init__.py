"""Recording a training run for ``vramdoc watch``: Trainer callback, loop API, event log.

``Recorder`` (plain loops) and the reading side (``Follower``, ``RunState``) need neither
torch nor transformers; ``VramdocCallback`` imports transformers when first used::

    from vramdoc.monitor import VramdocCallback
    trainer = Trainer(..., callbacks=[VramdocCallback("runs/exp1", plan="plan.json")])
"""

from __future__ import annotations

from typing import Any

from vramdoc.monitor.follower import Follower, FollowerStatus
from vramdoc.monitor.recorder import Recorder
from vramdoc.monitor.run import RunState
from vramdoc.monitor.schema import EVENTS_FILE, SCHEMA_VERSION

__all__ = ["EVENTS_FILE", "SCHEMA_VERSION", "Follower", "FollowerStatus", "Recorder",
           "RunState", "VramdocCallback"]


def __getattr__(name: str) -> Any:
    # Lazy: the callback subclasses transformers.TrainerCallback, so importing it imports
    # transformers (seconds, and absent on a watch-only install).
    if name == "VramdocCallback":
        from vramdoc.errors import MissingDependencyError

        try:
            from vramdoc.monitor.callback import VramdocCallback
        except ImportError as exc:
            if "transformers" in str(exc):
                raise MissingDependencyError("transformers", "probe", "VramdocCallback") from exc
            raise
        return VramdocCallback
    raise AttributeError(f"module 'vramdoc.monitor' has no attribute {name!r}")

"""Emitters: the Hugging Face snippet, the setup file, the JSON object and the human report.

Compute lives in the planner; these only render (stdout gets the artifact, stderr the report).
"""

from vramdoc.emit.jsonout import plan_to_json, result_to_json
from vramdoc.emit.report import memory_bar, render_report
from vramdoc.emit.setupfile import render_yaml
from vramdoc.emit.snippet import render_python, training_kwargs

__all__ = ["memory_bar", "plan_to_json", "render_python", "render_report", "render_yaml",
           "result_to_json", "training_kwargs"]

"""Probe: real and fake-tensor training steps, memory meters and the numerics/OOM doctor.

The only package besides monitor/ and tui/ that imports torch, and only in its submodules:
importing ``vramdoc.probe`` itself stays light. Entry point: ``vramdoc.probe.recipe.run_probe``.
"""

"""``vramdoc doctor``: check the scripts, configs and runs users already have.

One linear procedure per file (:func:`vramdoc.doctor.checks.doctor_file`): read it with the
reader that recognises it (:mod:`vramdoc.readers`), check the library calls against the API
changes in ``rules/api/`` (:mod:`vramdoc.doctor.api`), validate the setup it describes, run the
plan rules (H/M/T) and the estimate on it, and, when it does not fit, ask the planner what
would. Renderers (:mod:`vramdoc.doctor.render`) print text, JSON or SARIF; the fixer
(:mod:`vramdoc.doctor.fixer`) applies the findings' exact edits to a copy.
"""

"""Configuration, checked where it enters, before any cluster starts.

- :mod:`.schema`: the typed sections, their defaults (the same as the shipped
  ``conf/*.yaml``) and each section's rules (``problems()``);
- :mod:`.compose`: Hydra composition, command-line words in, a checked
  :class:`~daskbench.config.compose.RunPlan` out, in stages that use
- :mod:`.sections` (typing the composed config), :mod:`.axes` (what is swept),
  :mod:`.targets` (the trial function and its arguments), :mod:`.simcheck`
  (a simulation's settings, by the simulation core's own checks) and
  :mod:`.checks` (reading experiment files, and the one-line messages).
"""

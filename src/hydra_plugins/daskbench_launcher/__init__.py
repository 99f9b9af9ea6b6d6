"""Hydra launcher plugin: ``python my_app.py -m hydra/launcher=daskbench ...`` runs a
multirun's jobs as Dask futures, with daskbench's clusters, resume and trials table.

The plugin class is :class:`~hydra_plugins.daskbench_launcher.launcher.DaskbenchLauncher`;
its config (``hydra.launcher.*``) is :mod:`~hydra_plugins.daskbench_launcher.config`.
"""

__version__ = "0.1.0"

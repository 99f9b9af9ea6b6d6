"""Configuration: typed sections (:mod:`.schema`), Hydra composition into a
:class:`~daskbench.config.compose.RunPlan` (:mod:`.compose`), and the checks that
run where config enters, before any cluster starts (:mod:`.checks`)."""

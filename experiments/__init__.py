"""Experiments shipped with daskbench; their configs are in conf/experiment/."""

"""Sweep expansion, pure: axes and settings in, trials out (ids, params, seeds).
No Dask, no files."""

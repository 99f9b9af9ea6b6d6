"""Sweep expansion, pure: axes and settings in, trials out (ids, params, seeds).
No Dask, no files.

``axes``: Hydra sweep expressions parsed into axes; ``identity``: what a trial id
hashes, the hash, seed spawning; ``plan``: the lazy enumeration of trials."""

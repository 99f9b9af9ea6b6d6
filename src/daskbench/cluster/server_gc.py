"""Imported first by the fork server (:data:`.workers.PRELOAD`): its garbage collector
paused while it imports (:mod:`daskbench.startup_gc`); :mod:`.server_ready`, imported
last, freezes what it imported and turns the collector on again for its forks."""

from __future__ import annotations

from ..startup_gc import pause

pause()

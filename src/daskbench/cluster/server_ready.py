"""Imported last by the fork server (:data:`.workers.PRELOAD`): what it imported is
frozen and its garbage collector on again (:mod:`daskbench.startup_gc`), so that every
process it forks collects garbage as usual without scanning the modules it shares."""

from __future__ import annotations

from ..startup_gc import resume

resume()

"""Typed sections remembered by their content, for a process that runs many sweeps.

Typing a section (merging it over its dataclass's structured config and turning the
result into the dataclass, :func:`daskbench.config.sections.typed`) is OmegaConf's
slowest step in a run's set-up, and most sections are the same from one run to the
next: a notebook's second sweep usually changes a trial value or ``results.dir``,
not ``runner`` or ``cluster``. What typing gives depends only on the section's plain
content (what ``OmegaConf.to_container(resolve=False)`` gives) and the dataclass, so
this memo keys it on exactly that, compared by value and by type (``repr``: ``1``,
``1.0`` and ``True`` differ). Content holding an interpolation (``${...}``, which
reads other parts of the config) or a missing value (``???``) is never remembered;
nor is a failure, so a mistake is reported afresh each time. Every answer is a deep
copy: a caller cannot change what is stored.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any, Callable, Optional, Tuple

#: typed sections kept (each a small dataclass)
MAX_ENTRIES = 64

_lock = threading.Lock()
_entries: OrderedDict[Tuple[str, str], Any] = OrderedDict()


def key(kind: str, content: Any) -> Optional[Tuple[str, str]]:
    """The memo's key for ``content`` typed as ``kind``; None when it may not be remembered."""
    text = repr(content)
    if "${" in text or "???" in text:
        return None
    return kind, text


def typed(kind: str, content: Any, make: Callable[[], Any]) -> Any:
    """``make()`` (what typing ``content`` as ``kind`` gives), from memory when the same
    content was typed before."""
    k = key(kind, content)
    if k is None:
        return make()
    with _lock:
        hit = _entries.get(k)
        if hit is not None:
            _entries.move_to_end(k)
    if hit is None:
        hit = make()  # raises for a mistake: nothing is stored
        with _lock:
            _entries[k] = hit
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
    return copy.deepcopy(hit)


def clear() -> None:
    """Forget every typed section."""
    with _lock:
        _entries.clear()

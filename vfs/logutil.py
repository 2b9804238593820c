"""Logging helpers: each distinct problem is logged once, not once per read.

The table of keys already logged is bounded (``limits.MAX_LOG_KEYS``, least recently
seen forgotten first), so a walk over millions of paths cannot grow it without end; a
forgotten key is logged once more if its problem comes back.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from vfs.limits import MAX_LOG_KEYS

log = logging.getLogger("vfs")
_seen: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


def log_once(key: str, message: str, level: int = logging.WARNING) -> None:
    """Log ``message`` the first time ``key`` is seen in this process."""
    with _lock:
        if key in _seen:
            _seen.move_to_end(key)
            return
        _seen[key] = None
        if len(_seen) > MAX_LOG_KEYS:
            _seen.popitem(last=False)
    log.log(level, "%s", message)

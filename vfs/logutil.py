"""Logging helpers: each distinct problem is logged once, not once per read."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("vfs")
_seen: set[str] = set()
_lock = threading.Lock()


def log_once(key: str, message: str, level: int = logging.WARNING) -> None:
    """Log ``message`` the first time ``key`` is seen in this process."""
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    log.log(level, "%s", message)

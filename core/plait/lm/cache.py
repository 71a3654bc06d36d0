"""The LM response cache: an in-memory LRU in front of an on-disk sqlite store.

Keys are :meth:`plait.lm.types.LMRequest.cache_key` hashes (credentials never enter them).
Values are :class:`~plait.lm.types.LMResponse` objects; the cache stores a copy (never ``raw``)
and hands out a fresh copy with ``cached=True`` on every hit, so callers may mutate what they get.

The disk part is one sqlite file (``lm-cache.sqlite3``) in WAL mode, opened lazily on first use
(importing plait never touches the disk), with one connection per (process, thread): a child
process made by ``fork`` opens its own. Values are JSON, never pickle. Several threads and
processes may read and write the same directory at once. A cache file that cannot be opened or
read is reported once with a :class:`CacheWarning` and the cache carries on memory-only.

Process-wide default (what the built-in cache plugin uses): :func:`get_cache`, replaced by
:func:`configure_cache`. When no one has called :func:`configure_cache`, the default is built from
the environment:

- ``PLAIT_CACHE_DIR``: the directory of the disk cache (default ``~/.cache/plait``).
- ``PLAIT_CACHE``: ``1``/``true``/``on`` (default) caches in memory and on disk; ``memory`` caches
  in memory only; ``0``/``false``/``off`` turns caching off. :func:`configure_cache`'s arguments
  always win over the environment.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from plait.errors import ConfigurationError
from plait.lm.types import LMResponse

if TYPE_CHECKING:
    import sqlite3   # imported lazily at run time: only a cache that touches the disk needs it

__all__ = ["CacheWarning", "ResponseCache", "configure_cache", "default_cache_dir", "get_cache",
           "is_cache_enabled"]

DB_FILENAME = "lm-cache.sqlite3"
_BUSY_TIMEOUT_S = 10.0        # sqlite waits this long for another writer before "database is locked"
_LOCK_RETRIES = 4             # then we retry the whole statement a few times, with a short backoff
_EVICT_TO_FRACTION = 0.8      # evict down to 80% of the limit so the next check has headroom

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " created REAL NOT NULL, accessed REAL NOT NULL)",   # rowid table: values are often KBs
    "CREATE INDEX IF NOT EXISTS responses_accessed ON responses (accessed)",
)

_T = TypeVar("_T")

# Connections a forked child inherited from its parent. SQLite forbids using (or closing) a
# connection across fork, so the child keeps them referenced and never touches them again.
_inherited_connections: list[sqlite3.Connection] = []
_live_caches: weakref.WeakSet[ResponseCache] = weakref.WeakSet()


class CacheWarning(RuntimeWarning):
    """The disk cache could not be used; plait carries on with the memory cache only."""


def default_cache_dir() -> Path:
    """``$PLAIT_CACHE_DIR`` if set, else ``~/.cache/plait`` (nothing is created here)."""
    configured = os.environ.get("PLAIT_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "plait"


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


class ResponseCache:
    """Memory LRU + sqlite disk cache of LM responses, safe under threads and processes.

    Args:
        memory: keep an in-memory LRU of up to ``memory_entries`` responses.
        disk: persist responses in ``directory/lm-cache.sqlite3``.
        directory: where the disk cache lives; default :func:`default_cache_dir`.
        memory_entries: how many responses the memory LRU holds before evicting the oldest.
        disk_size_limit_bytes: when the database grows past this, the least recently accessed
            rows are deleted (checked every ``size_check_every`` puts, not on each one). "Accessed"
            is updated when a row is written or read from disk; hits served from memory do not
            touch the disk.
    """

    size_check_every = 100

    def __init__(self, *, memory: bool = True, disk: bool = True,
                 directory: str | os.PathLike[str] | None = None, memory_entries: int = 10_000,
                 disk_size_limit_bytes: int = 1 << 30) -> None:
        if isinstance(memory_entries, bool) or not isinstance(memory_entries, int) or memory_entries < 1:
            raise ValueError(f"memory_entries must be a positive int, got {memory_entries!r}; "
                             "pass memory=False to turn the memory cache off instead")
        if (isinstance(disk_size_limit_bytes, bool) or not isinstance(disk_size_limit_bytes, int)
                or disk_size_limit_bytes < 1):
            raise ValueError(f"disk_size_limit_bytes must be a positive int, got {disk_size_limit_bytes!r}; "
                             "pass disk=False to turn the disk cache off instead")
        self.memory = bool(memory)
        self.disk = bool(disk)
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.path = self.directory / DB_FILENAME
        self.memory_entries = memory_entries
        self.disk_size_limit_bytes = disk_size_limit_bytes

        self._entries: OrderedDict[str, LMResponse] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()          # .conn, .pid, .generation of this thread's connection
        self._connections: list[sqlite3.Connection] = []   # this process's, so close() reaches them all
        self._connections_pid = os.getpid()
        self._generation = 0                     # bumped by close(): threads then reopen lazily
        self._disk_failed = False
        self._puts_since_size_check = 0
        self._memory_hits = self._memory_misses = self._disk_hits = self._disk_misses = 0
        _live_caches.add(self)

    def __repr__(self) -> str:
        disk = f"disk={str(self.path)!r}" if self.disk else "disk=off"
        return f"ResponseCache(memory={self.memory}, {disk})"

    # --- public API -----------------------------------------------------------------------

    def get(self, key: str) -> LMResponse | None:
        """The cached response for ``key`` (a fresh copy with ``cached=True``), or None."""
        if self.memory:
            with self._lock:
                stored = self._entries.get(key)
                if stored is not None:
                    self._entries.move_to_end(key)
                    self._memory_hits += 1
                else:
                    self._memory_misses += 1
            if stored is not None:
                return stored.copy()   # stored entries are never mutated, so copy outside the lock
        if not self.disk or self._disk_failed:
            return None
        stored = self._disk_get(key)
        with self._lock:
            if stored is None:
                self._disk_misses += 1
                return None
            self._disk_hits += 1
            if self.memory:
                self._remember(key, stored)
        return stored.copy()

    def put(self, key: str, response: LMResponse) -> None:
        """Store a copy of ``response`` under ``key`` (``raw`` is dropped)."""
        stored = response.copy()
        stored.cached = True
        if self.memory:
            with self._lock:
                self._remember(key, stored)
        if not self.disk or self._disk_failed:
            return
        try:
            value = json.dumps(stored.to_dict(), ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            return   # not JSON-safe (a backend put odd objects in outputs): keep it in memory only
        now = time.time()
        self._disk_call(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO responses (key, value, created, accessed) VALUES (?, ?, ?, ?)",
            (key, value, now, now)))
        with self._lock:
            self._puts_since_size_check += 1
            check_size = self._puts_since_size_check >= self.size_check_every
            if check_size:
                self._puts_since_size_check = 0
        if check_size:
            self._disk_call(self._evict_over_limit)

    def clear(self) -> None:
        """Remove every entry from memory and from the disk file (the counters are kept)."""
        with self._lock:
            self._entries.clear()
        if self.disk and not self._disk_failed:
            self._disk_call(self._delete_all)

    def stats(self) -> dict[str, Any]:
        """Hit and miss counts for memory and disk, entries in memory, and the disk state."""
        with self._lock:
            return {"memory_hits": self._memory_hits, "memory_misses": self._memory_misses,
                    "disk_hits": self._disk_hits, "disk_misses": self._disk_misses,
                    "memory_entries": len(self._entries),
                    "disk": "off" if not self.disk else ("failed" if self._disk_failed else "on")}

    def close(self) -> None:
        """Close this process's disk connections. The cache stays usable: it reopens on next use."""
        with self._lock:
            connections = self._connections
            if self._connections_pid != os.getpid():   # a forked child: these are the parent's
                _inherited_connections.extend(connections)
                connections = []
            self._connections = []
            self._generation += 1
        for conn in connections:
            conn.close()   # closing a healthy sqlite3 connection does not raise

    # --- memory ---------------------------------------------------------------------------

    def _remember(self, key: str, stored: LMResponse) -> None:
        """Insert into the LRU; the caller holds ``self._lock``."""
        entries = self._entries
        entries[key] = stored
        entries.move_to_end(key)
        if len(entries) > self.memory_entries:
            entries.popitem(last=False)

    # --- disk -----------------------------------------------------------------------------

    def _disk_get(self, key: str) -> LMResponse | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
            return None if row is None else row[0]

        value = self._disk_call(read)
        if value is None:
            return None
        response = _decode(value)
        if response is None:
            return None   # an undecodable value is a miss; the next put overwrites it
        # Refresh "accessed" for size eviction; losing this update to contention costs nothing.
        now = time.time()
        self._disk_call(lambda conn: conn.execute(
            "UPDATE responses SET accessed = ? WHERE key = ?", (now, key)), retries=1)
        response.cached = True
        return response

    def _disk_call(self, operation: Callable[[sqlite3.Connection], _T],
                   retries: int = _LOCK_RETRIES) -> _T | None:
        """Run one short statement; None when the disk is unavailable or stays locked."""
        import sqlite3

        for attempt in range(retries):
            if self._disk_failed:
                return None
            try:
                return operation(self._connection())
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc):
                    self._fail_disk(exc)
                    return None
                time.sleep(0.005 * (attempt + 1))   # busy_timeout already waited; brief backoff
            except sqlite3.ProgrammingError:
                return None   # close() raced with this call (e.g. configure_cache replaced us)
            except (sqlite3.DatabaseError, OSError) as exc:
                self._fail_disk(exc)
                return None
        return None

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None:
            if local.pid == pid and local.generation == self._generation:
                return conn
            if local.pid != pid:
                _inherited_connections.append(conn)   # the parent's: never use or close it here
        conn = self._open()
        with self._lock:
            if self._connections_pid != pid:          # first connection in a forked child
                _inherited_connections.extend(self._connections)
                self._connections = []
                self._connections_pid = pid
            self._connections.append(conn)
            local.conn, local.pid, local.generation = conn, pid, self._generation
        return conn

    def _open(self) -> sqlite3.Connection:
        import sqlite3

        self.directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")   # takes effect on a new file only
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def _fail_disk(self, exc: BaseException) -> None:
        with self._lock:
            if self._disk_failed:
                return
            self._disk_failed = True
        warnings.warn(f"plait: the LM disk cache {str(self.path)!r} is unusable ({exc}); continuing "
                      "with the memory cache only. Delete the file or set PLAIT_CACHE_DIR to another "
                      "directory to fix this.", CacheWarning, stacklevel=4)
        self.close()

    def _evict_over_limit(self, conn: sqlite3.Connection) -> None:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
        used = (pages - free_pages) * page_size
        if used <= self.disk_size_limit_bytes:
            return
        rows = conn.execute("SELECT count(*) FROM responses").fetchone()[0]
        target = self.disk_size_limit_bytes * _EVICT_TO_FRACTION
        doomed = min(rows, math.ceil(rows * (used - target) / used))
        conn.execute("DELETE FROM responses WHERE key IN "
                     "(SELECT key FROM responses ORDER BY accessed LIMIT ?)", (doomed,))
        conn.execute("PRAGMA incremental_vacuum").fetchall()   # hand freed pages back to the file system

    @staticmethod
    def _delete_all(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM responses")
        conn.execute("PRAGMA incremental_vacuum").fetchall()


def _decode(value: str) -> LMResponse | None:
    """A response from its stored JSON, or None when the value is damaged or of another shape."""
    try:
        data = json.loads(value)
        outputs = data["outputs"]
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            return None
        return LMResponse.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# --- the process-wide default cache ---------------------------------------------------------

_config_lock = threading.Lock()
_default_cache: ResponseCache | None = None
_enabled: bool | None = None   # None until the default is configured (explicitly or from the env)

_ENV_ON = frozenset({"", "1", "true", "on", "yes"})
_ENV_OFF = frozenset({"0", "false", "off", "no"})


def _settings_from_env() -> tuple[bool, bool]:
    """(enabled, disk) from ``PLAIT_CACHE``."""
    raw = os.environ.get("PLAIT_CACHE", "")
    value = raw.strip().lower()
    if value in _ENV_ON:
        return True, True
    if value == "memory":
        return True, False
    if value in _ENV_OFF:
        return False, False
    raise ConfigurationError(f"PLAIT_CACHE={raw!r} is not understood; use 1 (memory and disk), "
                             "'memory' (memory only) or 0 (no cache)")


def get_cache() -> ResponseCache:
    """The process-wide default cache, created on first use from the environment."""
    cache = _default_cache
    if cache is not None:
        return cache
    with _config_lock:
        if _default_cache is None:
            enabled, disk = _settings_from_env()
            _install(ResponseCache(disk=disk), enabled)
        return _default_cache  # type: ignore[return-value]


def is_cache_enabled() -> bool:
    """Whether the built-in cache plugin looks up and stores responses."""
    enabled = _enabled
    if enabled is None:
        get_cache()
        enabled = bool(_enabled)
    return enabled


def configure_cache(*, enabled: bool = True, memory: bool = True, disk: bool = True,
                    directory: str | os.PathLike[str] | None = None, memory_entries: int = 10_000,
                    disk_size_limit_bytes: int = 1 << 30) -> ResponseCache:
    """Replace the process-wide cache; ``enabled=False`` turns LM caching off everywhere.

    The arguments are :class:`ResponseCache`'s; they win over ``PLAIT_CACHE`` and (when
    ``directory`` is given) ``PLAIT_CACHE_DIR``. The previous default cache is closed. Returns
    the new cache.
    """
    cache = ResponseCache(memory=memory, disk=disk, directory=directory, memory_entries=memory_entries,
                          disk_size_limit_bytes=disk_size_limit_bytes)
    with _config_lock:
        previous = _default_cache
        _install(cache, bool(enabled))
    if previous is not None:
        previous.close()
    return cache


def _install(cache: ResponseCache, enabled: bool) -> None:
    global _default_cache, _enabled
    _default_cache = cache
    _enabled = enabled


def _reset_locks_in_child() -> None:
    """After fork, locks held by the parent's other threads would never be released in the child."""
    global _config_lock
    _config_lock = threading.Lock()
    for cache in list(_live_caches):
        cache._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_in_child)

"""Per-photo facts (hashes, size, skin tone) computed once and kept in the data home.

A row is keyed by the file's absolute path and valid while its size and
modification time (ns) are those recorded: an edited or replaced photo changes
one of them and is read again. Rows also carry `hashing.FACTS_VERSION`, so a
change to what is computed recomputes everything. sqlite3 (stdlib) keeps it in
one file, `<data home>/cache/photo-facts.sqlite3`; deleting it is always safe.

A warm run costs a stat per file and one indexed lookup per file, batched: on
20,000 photos about a second (see tests/data/test_check.py and the README).
"""

from __future__ import annotations

import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from skinfood_cli.data.hashing import FACTS_VERSION, PhotoFacts, photo_facts

_SCHEMA = """CREATE TABLE IF NOT EXISTS facts (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, version INTEGER, facts TEXT)"""


def cache_path() -> Path:
    from skinfood_cli.paths import data_dir

    return data_dir() / "cache" / "photo-facts.sqlite3"


class FactsCache:
    """sqlite-backed (path, size, mtime_ns) -> PhotoFacts; usable as a context manager."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")  # a reader (another check) doesn't block a writer
        self.db.execute(_SCHEMA)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.db.close()

    def lookup(self, keys: list[tuple[str, int, int]]) -> dict[str, PhotoFacts]:
        """Facts of the keys (abs path, size, mtime_ns) whose row is current."""
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT path, size, mtime_ns, version, facts FROM facts WHERE path IN ({marks})", [k[0] for k in chunk]
            ).fetchall()
            want = {k[0]: k for k in chunk}
            for path, size, mtime_ns, version, text in rows:
                if want[path] == (path, size, mtime_ns) and version == FACTS_VERSION:
                    found[path] = PhotoFacts(**json.loads(text))
        return found

    def store(self, items: list[tuple[tuple[str, int, int], PhotoFacts]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO facts (path, size, mtime_ns, version, facts) VALUES (?, ?, ?, ?, ?)",
                [(k[0], k[1], k[2], FACTS_VERSION, json.dumps(asdict(f))) for k, f in items],
            )


def _key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def collect_facts(
    paths: list[str], *, workers: int | None = None, progress=None, cache: FactsCache | None = None
) -> tuple[list[PhotoFacts], dict]:
    """Facts of every path, in order: from the cache where current, else computed (in threads) and stored.

    Args:
        progress: called as progress(done, total) while photos are read.
        cache: a cache to use (default: the one in the data home).

    Returns:
        (facts, stats) where stats = {"cached": n, "computed": n}.
    """
    own = cache is None
    cache = cache or FactsCache()
    try:
        keys = [_key(p) for p in paths]
        known = cache.lookup([k for k in keys if k is not None])
        out: list[PhotoFacts | None] = [known.get(k[0]) if k else None for k in keys]
        todo = [i for i, f in enumerate(out) if f is None]
        done = len(paths) - len(todo)
        if progress:
            progress(done, len(paths))
        workers = workers or min(8, (os.cpu_count() or 1) * 2)
        fresh: list[tuple[tuple[str, int, int], PhotoFacts]] = []
        with ThreadPoolExecutor(workers) as pool:  # sha256 and Pillow release the GIL
            for i, facts in zip(todo, pool.map(photo_facts, [paths[i] for i in todo])):
                out[i] = facts
                key = keys[i]
                if key is not None:
                    fresh.append((key, facts))
                if len(fresh) >= 500:
                    cache.store(fresh)
                    fresh = []
                done += 1
                if progress:
                    progress(done, len(paths))
        if fresh:
            cache.store(fresh)
    finally:
        if own:
            cache.close()
    return out, {"cached": len(paths) - len(todo), "computed": len(todo)}  # type: ignore[return-value]

"""Atomic, checksummed, versioned JSON files for memories.

A memory file is an envelope ``{"kind", "schema_version", "sha256", "payload"}``. Writes go to a
temporary file in the same directory, are fsync'ed and renamed over the target, and the previous
good file is kept as ``<name>.prev``; so a crash mid-write (even kill -9) leaves either the old or the
new file, never a torn one, and a corrupt file is never copied over the last good one. A kill -9
mid-write can leave only the temporary file (``.<name>.XXXXXXXX.tmp``); the next load or save of that
file removes such leftovers, and only those no live writer holds (writers keep an flock on theirs).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import orjson

try:
    import fcntl
except ImportError:  # not POSIX: fall back to the age of a temporary file
    fcntl = None  # type: ignore[assignment]

from karma_memory.core.errors import MemoryFileError, SchemaVersionError

#: files this process wrote and has not seen change since: (path) -> (size, mtime_ns). Lets a save skip
#: re-reading a large file it knows is good before rotating it to .prev.
_WRITTEN: dict[Path, tuple[int, int]] = {}

__all__ = ["write_envelope", "read_envelope", "read_envelope_with_fallback", "canonical_json",
           "remove_stale_temporaries", "gc_paused"]

#: Without flock, a temporary file this old (seconds) is taken as abandoned.
STALE_AGE_S = 3600.0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large memory file is parsed and built.

    Building ~10^5 objects triggers full collections that scan every live object — with torch loaded
    that is most of the time a 10,000-object graph takes to load (0.32 s of parsing becomes 0.08 s).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def canonical_json(payload: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no NaN) — the bytes the checksum covers."""
    try:
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as err:
        raise MemoryFileError(f"memory payload is not serialisable: {err}") from err


def write_envelope(path: Path | str, kind: str, schema_version: int, payload: Any) -> Path:
    """Atomically write ``payload`` to ``path`` inside a checksummed envelope; keep the old file as .prev."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = canonical_json(payload)
    envelope = (
        b'{"kind":' + json.dumps(kind).encode()
        + b',"schema_version":' + str(int(schema_version)).encode()
        + b',"sha256":"' + hashlib.sha256(body).hexdigest().encode()
        + b'","payload":' + body + b"}"
    )
    remove_stale_temporaries(path)
    fd, tmp = _locked_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:  # open (so locked) until renamed: no cleaner takes it
            handle.write(envelope)
            handle.flush()
            os.fsync(handle.fileno())
            if path.exists():
                stat = path.stat()
                try:  # keep the last good copy: only if the current file itself is valid
                    if _WRITTEN.get(path.resolve()) != (stat.st_size, stat.st_mtime_ns):
                        read_envelope(path, kind, schema_version)
                    os.replace(path, path.with_name(path.name + ".prev"))
                except MemoryFileError:
                    pass
            os.replace(tmp, path)
        stat = path.stat()
        _WRITTEN[path.resolve()] = (stat.st_size, stat.st_mtime_ns)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _temporary_pattern(path: Path) -> re.Pattern[str]:
    # what tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") creates: 8 characters of its alphabet
    return re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary file next to ``path``, flock'ed for as long as this process keeps it open.

    A cleaner in another process may open and remove the file between its creation and the lock;
    a temporary that lost its name that way is closed and another one made.
    """
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return fd, tmp
        os.close(fd)


def remove_stale_temporaries(path: Path | str) -> list[Path]:
    """Remove the temporary files an interrupted :func:`write_envelope` of ``path`` left behind.

    Only names of the form ``.<name>.XXXXXXXX.tmp`` next to ``path`` are considered, and of those only
    the ones no live writer holds: a writer keeps an exclusive flock on its temporary until the rename,
    and the kernel drops it when the writer dies (even by kill -9). Without flock (not POSIX), a
    temporary is stale after :data:`STALE_AGE_S`. Files that cannot be removed are left alone.

    Returns:
        The files removed.
    """
    path = Path(path)
    pattern = _temporary_pattern(path)
    try:
        candidates = [e.path for e in os.scandir(path.parent) if e.is_file(follow_symlinks=False)
                      and pattern.fullmatch(e.name)]
    except OSError:  # no directory yet: nothing to clean
        return []
    removed = []
    for candidate in candidates:
        try:
            if fcntl is None:
                if time.time() - os.stat(candidate).st_mtime > STALE_AGE_S:
                    os.unlink(candidate)
                    removed.append(Path(candidate))
                continue
            fd = os.open(candidate, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live writer: BlockingIOError
                os.unlink(candidate)
                removed.append(Path(candidate))
            finally:
                os.close(fd)
        except OSError:
            continue
    return removed


def read_envelope(path: Path | str, kind: str, max_schema_version: int) -> tuple[int, Any]:
    """Read and verify a memory file; return (schema_version, payload).

    Raises:
        MemoryFileError: missing, truncated, not JSON, wrong kind, or checksum mismatch.
        SchemaVersionError: written by a newer schema than ``max_schema_version``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise MemoryFileError(f"memory file {path} does not exist") from err
    except OSError as err:
        raise MemoryFileError(f"cannot read memory file {path}: {err}") from err
    try:
        envelope = orjson.loads(raw)  # ~4x the standard parser: a 10,000-object graph loads in 0.1 s, not 0.5
    except orjson.JSONDecodeError as err:  # also invalid UTF-8
        raise MemoryFileError(f"memory file {path} is corrupt or truncated ({len(raw)} bytes): {err}") from err
    if not isinstance(envelope, dict) or not {"kind", "schema_version", "sha256", "payload"} <= envelope.keys():
        raise MemoryFileError(f"memory file {path} is not a karma memory envelope")
    if envelope["kind"] != kind:
        raise MemoryFileError(f"memory file {path} holds {envelope['kind']!r}, expected {kind!r}")
    version = envelope["schema_version"]
    if not isinstance(version, int) or version < 1:
        raise MemoryFileError(f"memory file {path} has an invalid schema_version {version!r}")
    if version > max_schema_version:
        raise SchemaVersionError(
            f"memory file {path} has schema version {version}, newer than this karma_memory reads "
            f"({max_schema_version}); upgrade karma_memory")
    marker = raw.find(b',"payload":')
    body = raw[marker + len(b',"payload":'):-1] if marker >= 0 and raw.endswith(b"}") else b""
    digest = hashlib.sha256(body).hexdigest()
    if digest != envelope["sha256"]:  # hand-edited but equivalent JSON: compare canonical forms
        digest = hashlib.sha256(canonical_json(envelope["payload"])).hexdigest()
    if digest != envelope["sha256"]:
        raise MemoryFileError(f"memory file {path} fails its checksum (stored {envelope['sha256'][:12]}…, "
                              f"computed {digest[:12]}…)")
    return version, envelope["payload"]


def read_envelope_with_fallback(path: Path | str, kind: str, max_schema_version: int) -> tuple[int, Any, Path]:
    """Like read_envelope, but fall back to ``<path>.prev`` when the main file is damaged.

    A newer-schema file is not "damaged": SchemaVersionError propagates. Returns the path used.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    try:
        version, payload = read_envelope(path, kind, max_schema_version)
        return version, payload, path
    except SchemaVersionError:
        raise
    except MemoryFileError as err:
        prev = path.with_name(path.name + ".prev")
        if not prev.exists():
            raise
        try:
            version, payload = read_envelope(prev, kind, max_schema_version)
        except MemoryFileError as prev_err:
            raise MemoryFileError(f"{err}; the backup is unusable too: {prev_err}") from prev_err
        return version, payload, prev

"""Atomic, checksummed, versioned JSON files for memories.

A memory file is an envelope ``{"kind", "schema_version", "sha256", "payload"}``. Writes go to a
temporary file in the same directory, are fsync'ed and renamed over the target, and the previous
good file is kept as ``<name>.prev``; so a crash mid-write (even kill -9) leaves either the old or the
new file, never a torn one, and a corrupt file is never copied over the last good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from karma_memory.core.errors import MemoryFileError, SchemaVersionError

#: files this process wrote and has not seen change since: (path) -> (size, mtime_ns). Lets a save skip
#: re-reading a large file it knows is good before rotating it to .prev.
_WRITTEN: dict[Path, tuple[int, int]] = {}

__all__ = ["write_envelope", "read_envelope", "read_envelope_with_fallback", "canonical_json"]


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
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
        envelope = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
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

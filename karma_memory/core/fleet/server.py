"""Start, stop, kill or pause a local Chroma server (``chroma run``) as a child process, on loopback.

The server keeps its records in SQLite (``<path>/chroma.sqlite3``), which ``chroma run`` opens in rollback-journal
mode: every write request costs two transactions of four fsyncs each (~40 ms here, whatever the batch size),
which capped the whole fleet at ~20 write requests/s. :meth:`ChromaServer.start` switches the file to
write-ahead logging first (a persistent property of the file; synchronous stays FULL, so commits are as
durable as before, now one fsync each, and readers no longer wait for writers): ~2.5× faster writes.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from karma_memory.core.errors import ConfigError, KarmaMemoryError

__all__ = ["ChromaServer", "free_port", "heartbeat", "use_wal"]

#: the server's SQLite file inside its data directory
SQLITE_FILE = "chroma.sqlite3"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def heartbeat(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when a Chroma server answers ``/api/v2/heartbeat`` within ``timeout_s``."""
    import httpx

    try:
        response = httpx.get(f"http://{host}:{port}/api/v2/heartbeat", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def use_wal(path: Path | str) -> str:
    """Put the server's SQLite file in ``path`` in write-ahead-log mode (created empty when missing).

    Call only while no server has the file open. The mode is stored in the file, so every later
    ``chroma run`` on it keeps it; chroma migrates an empty WAL file like a missing one.

    Returns:
        The journal mode now in effect ("wal", or the old mode when SQLite refused).

    Raises:
        KarmaMemoryError: the file cannot be opened (named, with the reason).
    """
    db = Path(path) / SQLITE_FILE
    try:
        connection = sqlite3.connect(str(db), timeout=5.0)
        try:
            return str(connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        finally:
            connection.close()
    except sqlite3.Error as err:
        raise KarmaMemoryError(f"cannot set write-ahead logging on the chroma database {db}: {err}") from err


def _chroma_command() -> list[str]:
    """``chroma`` next to this interpreter (the venv's console script), else its Python entry point."""
    script = Path(sys.executable).with_name("chroma")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()"]


class ChromaServer:
    """A ``chroma run --path DIR --host HOST --port PORT`` child process.

    Only loopback hosts are accepted: the fleet store is meant for robots on one machine or behind an
    explicit tunnel, never an open port. ``kill`` and ``pause`` exist for fault-injection tests.

    Args:
        path: the server's data directory (kept across restarts: restart on the same path and port).
        port: TCP port; 0 picks a free one.
        log_path: where the server's output goes (default: ``<path>.log`` beside the data directory).
    """

    def __init__(self, path: Path | str, port: int = 0, host: str = "127.0.0.1",
                 log_path: Path | str | None = None) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"ChromaServer only binds loopback, got host {host!r}")
        if not 0 <= int(port) < 65536:
            raise ConfigError(f"port must be in [0, 65535], got {port!r}")
        self.path = Path(path)
        self.host = host
        self.port = int(port) or free_port(host)
        self.log_path = Path(log_path) if log_path is not None else self.path.with_name(self.path.name + ".log")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server (None when not started)."""
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        """True while the child process is alive (it may still be starting up)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 30.0) -> ChromaServer:
        """Start the server and wait until it answers its heartbeat.

        Raises:
            KarmaMemoryError: the process exited or did not answer within ``timeout_s`` (log path named).
        """
        if self.running():
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        use_wal(self.path)  # see the module docstring: ~2.5x the write throughput, same durability
        self._log = self.log_path.open("ab")
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False", NO_COLOR="1")
        command = _chroma_command() + ["run", "--path", str(self.path), "--host", self.host, "--port", str(self.port)]
        self._proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env, cwd=str(self.path.parent), start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise KarmaMemoryError(f"chroma server exited with code {self._proc.returncode} on port {self.port}; "
                                       f"see {self.log_path}")
            if heartbeat(self.host, self.port, 0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise KarmaMemoryError(f"chroma server on port {self.port} did not answer within {timeout_s} s; "
                               f"see {self.log_path}")

    def _signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, sig)  # its own session: the group holds only the server

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout_s``)."""
        if self._proc is None:
            return
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._proc.wait(timeout_s)
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the server at once, as a crash would (data written so far stays in ``path``)."""
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        self._proc.wait(10.0)
        self._close_log()

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a hung or very slow server)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(signal.SIGCONT)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

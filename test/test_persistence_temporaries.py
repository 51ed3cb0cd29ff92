"""Temporary files a kill -9 left in the middle of an atomic save are removed by the next load or save."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from karma_memory.core import persistence
from karma_memory.core.errors import MemoryFileError
from karma_memory.core.persistence import read_envelope_with_fallback, remove_stale_temporaries, write_envelope

NAME = "scene_graph.json"


def _leftover(directory: Path, name: str = NAME, tag: str = "abcd_123") -> Path:
    """What write_envelope leaves when killed between mkstemp and the rename."""
    path = directory / f".{name}.{tag}.tmp"
    path.write_bytes(b'{"kind":"half a fi')
    return path


def _others(directory: Path) -> list[Path]:
    """Files that merely look alike: never ours to remove."""
    names = [f"{NAME}.tmp", f".{NAME}.abc.tmp", f".{NAME}.abcdefghi.tmp", f".{NAME}.ABCDEFGH.tmp",
             f".{NAME}.abcdefgh.tmp.bak", f".other.json.abcdefgh.tmp", f"x.{NAME}.abcdefgh.tmp",
             f"{NAME}.prev", "notes.txt"]
    out = []
    for name in names:
        (directory / name).write_text("keep me")
        out.append(directory / name)
    return out


def test_save_removes_stale_temporaries_and_nothing_else(tmp_path: Path) -> None:
    stale = [_leftover(tmp_path, tag=t) for t in ("abcd_123", "zz9y8x7w")]
    others = _others(tmp_path)
    os.mkdir(tmp_path / f".{NAME}.dir_0000.tmp")  # a directory with our pattern is not a file of ours
    write_envelope(tmp_path / NAME, "k", 1, {"a": 1})
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "keep me" for p in others)
    assert (tmp_path / f".{NAME}.dir_0000.tmp").is_dir()
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in others} | {NAME, f".{NAME}.dir_0000.tmp"}


def test_load_removes_stale_temporaries_even_when_the_file_is_missing(tmp_path: Path) -> None:
    write_envelope(tmp_path / NAME, "k", 1, {"a": 2})
    stale = _leftover(tmp_path)
    assert read_envelope_with_fallback(tmp_path / NAME, "k", 1)[1] == {"a": 2}
    assert not stale.exists()
    lone = tmp_path / "empty"
    lone.mkdir()
    stale = _leftover(lone)
    with pytest.raises(MemoryFileError, match="does not exist"):  # killed before the first save completed
        read_envelope_with_fallback(lone / NAME, "k", 1)
    assert not stale.exists()
    assert remove_stale_temporaries(tmp_path / "nowhere" / NAME) == []  # no directory: nothing to do


def test_a_live_writers_temporary_is_never_removed(tmp_path: Path) -> None:
    """Another process holds its temporary (as write_envelope does until the rename): it stays."""
    held = _leftover(tmp_path, tag="live0001")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(held)!r}, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        assert remove_stale_temporaries(tmp_path / NAME) == []
        write_envelope(tmp_path / NAME, "k", 1, {"a": 3})
        assert held.exists()
        holder.send_signal(signal.SIGKILL)  # kill -9: the kernel drops its lock
        holder.wait(10)
        assert remove_stale_temporaries(tmp_path / NAME) == [held]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_writer_killed_mid_save_leaves_a_temporary_the_next_save_removes(tmp_path: Path) -> None:
    """A real write_envelope stopped by kill -9 between writing its temporary and the rename."""
    script = (
        "import os, sys, time\n"
        "from karma_memory.core import persistence\n"
        "real = os.replace\n"
        "def stall(src, dst):\n"
        "    if str(src).endswith('.tmp'):\n"
        "        print('written', flush=True)\n"
        "        time.sleep(60)\n"
        "    real(src, dst)\n"
        "persistence.os.replace = stall\n"
        f"persistence.write_envelope({str(tmp_path / NAME)!r}, 'k', 1, {{'big': 'x' * 100000}})\n")
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True,
                              env=dict(os.environ, PYTHONPATH=str(Path(persistence.__file__).parents[2])))
    try:
        assert writer.stdout.readline().strip() == b"written"
        temporaries = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temporaries) == 1 and temporaries[0].stat().st_size > 100000
        assert remove_stale_temporaries(tmp_path / NAME) == []  # alive: still its own
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert temporaries[0].exists() and not (tmp_path / NAME).exists()
    write_envelope(tmp_path / NAME, "k", 1, {"after": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]
    assert read_envelope_with_fallback(tmp_path / NAME, "k", 1)[1] == {"after": True}


def test_without_flock_only_old_temporaries_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(persistence, "fcntl", None)
    young, old = _leftover(tmp_path, tag="young000"), _leftover(tmp_path, tag="old00000")
    past = time.time() - persistence.STALE_AGE_S - 10
    os.utime(old, (past, past))
    assert remove_stale_temporaries(tmp_path / NAME) == [old]
    assert young.exists()
    write_envelope(tmp_path / NAME, "k", 1, {"a": 4})  # still saves without locks
    assert read_envelope_with_fallback(tmp_path / NAME, "k", 1)[1] == {"a": 4}

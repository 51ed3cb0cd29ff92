"""Test helper: a real Chroma server (``chroma run``) on 127.0.0.1 on a free port, started and stopped per use.

Import the fixtures into a test module with ``from chroma_server import chroma_server, collection  # noqa``.
Never a mock: the fleet tests exercise the real HTTP server, its persistence and its restarts.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterator

import pytest

from karma_memory.core.fleet.server import ChromaServer, free_port

__all__ = ["chroma_server", "collection", "start_server", "free_port", "raw_collection"]

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
_names = itertools.count()


def start_server(path: Path, port: int = 0) -> ChromaServer:
    """Start a server on ``path`` (and ``port``, 0 = a free one); the caller stops it."""
    return ChromaServer(path, port=port).start(timeout_s=60.0)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One server per test module (tests keep apart by using their own collection)."""
    server = start_server(tmp_path_factory.mktemp("chroma") / "db")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def collection(request: pytest.FixtureRequest) -> str:
    """A collection name unique to the test."""
    return f"t{next(_names)}-{request.node.name[:40]}".replace("[", "-").replace("]", "").replace("_", "-").strip("-")


def raw_collection(server: ChromaServer, name: str):  # type: ignore[no-untyped-def]
    """The chromadb collection itself, to inspect or to plant records no robot would write."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.HttpClient(host=server.host, port=server.port, settings=Settings(anonymized_telemetry=False))
    return client.get_or_create_collection(name, embedding_function=None, metadata={"hnsw:space": "cosine"})

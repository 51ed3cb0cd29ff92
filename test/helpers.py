"""Small builders shared by tests: hand-made observations, grids and a deterministic embedder."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from karma_memory.core.types import ObjectObservation, ObservationKind, Relation


class HashEmbedder:
    """Deterministic bag-of-words embedder: fast, offline, similar texts share words → similar vectors."""

    dim = 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in str(text).lower().replace("|", " ").split():
                digest = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[row, digest % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


def grid(x0: float, x1: float, z0: float, z1: float, step: float = 0.25) -> np.ndarray:
    """Reachable (x, z) cells of a rectangle."""
    xs = np.arange(x0, x1 + 1e-9, step)
    zs = np.arange(z0, z1 + 1e-9, step)
    return np.array([(x, z) for z in zs for x in xs])


def obs(object_id: str, object_type: str | None = None, position=(0.0, 0.9, 0.0), kind=ObservationKind.SEEN,
        movable: bool = True, states=(), relations=(), stamp: float = 1.0, source: str = "test") -> ObjectObservation:
    """An observation with sensible defaults."""
    return ObjectObservation(object_id, object_type or object_id.split("|")[0], position, kind,
                             states=tuple(states), relations=tuple(Relation(p, t) for p, t in relations),
                             movable=movable, stamp=stamp, source=source)

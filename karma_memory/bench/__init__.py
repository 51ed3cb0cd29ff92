"""Benchmarks, one module each with ``main(argv) -> int``; run as ``python -m karma_memory.bench.<name>``."""

"""Thin rclpy adapters around karma_memory.core, one console script each; conversions are pure functions."""

from __future__ import annotations

__all__: list[str] = []

"""KARMA memory stack: long-term scene-graph memory and short-term memory for embodied robots."""

__version__ = "0.1.0"

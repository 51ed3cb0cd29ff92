"""Planner backends behind one protocol, built by name from configuration (``make_backend("openai", ...)``)."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from karma_memory.core.errors import ConfigError
from karma_memory.core.planner.backends.llamacpp import LlamaCppBackend, plan_grammar
from karma_memory.core.planner.backends.openai_compat import OpenAICompatBackend
from karma_memory.core.planner.base import PlannerBackend
from karma_memory.core.planner.symbolic import SymbolicPlanner

__all__ = [
    "BackendFactory",
    "LlamaCppBackend",
    "OpenAICompatBackend",
    "backend_names",
    "make_backend",
    "plan_grammar",
    "register_backend",
]

#: Anything that builds a backend from keyword parameters (a class or a function).
BackendFactory = Callable[..., PlannerBackend]

_REGISTRY: dict[str, BackendFactory] = {
    "symbolic": SymbolicPlanner,
    "openai": OpenAICompatBackend,
    "llamacpp": LlamaCppBackend,
}


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make ``factory`` buildable as ``make_backend(name, **params)``.

    Raises:
        ConfigError: empty name, a non-callable factory, or a taken name without ``replace=True``.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip().lower():
        raise ConfigError(f"backend name must be a non-empty lower-case string, got {name!r}")
    if not callable(factory):
        raise ConfigError(f"backend factory for {name!r} must be callable, got {factory!r}")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not factory:
        raise ConfigError(f"planner backend {name!r} is already registered ({_REGISTRY[name]!r})")
    _REGISTRY[name] = factory


def backend_names() -> tuple[str, ...]:
    """Registered backend names, e.g. for a ROS parameter description.

    >>> "openai" in backend_names()
    True
    """
    return tuple(sorted(_REGISTRY))


def make_backend(name: str, **params: Any) -> PlannerBackend:
    """Build the backend registered as ``name`` with ``params`` (checked against its signature first).

    Raises:
        ConfigError: naming an unknown backend or parameter, or a bad value (from the backend).

    >>> make_backend("openai", base_url="http://127.0.0.1:8000", model="m").url
    'http://127.0.0.1:8000/v1/chat/completions'
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ConfigError(f"unknown planner backend {name!r}; known: {', '.join(backend_names())}")
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as err:
        raise ConfigError(f"planner backend {name!r}: bad parameters {sorted(params)}: {err}") from None
    except ValueError:  # no introspectable signature (some builtins): let the call decide
        pass
    backend = factory(**params)
    if not isinstance(backend, PlannerBackend):
        raise ConfigError(f"planner backend {name!r} built {type(backend).__name__}, which lacks name/plan()")
    return backend

"""In-process planner backend on llama-cpp-python, its output constrained to the plan JSON by a GBNF grammar."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from karma_memory.core.errors import ConfigError, PlanValidationError
from karma_memory.core.planner.backends._chat import check_number, plan_with_repair
from karma_memory.core.planner.base import ChatMessage, Plan, PlanningContext
from karma_memory.core.skills import SKILL_SCHEMA

__all__ = ["LlamaCppBackend", "plan_grammar"]

_INSTALL_HINT = "pip install llama-cpp-python and give model_path (a .gguf file)"
_GRAMMAR_CACHE = 32


def _lit(text: str) -> str:
    """A GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _jlit(text: str) -> str:
    """A GBNF literal matching the JSON string ``"text"``."""
    return _lit(json.dumps(text))


def _rule(name: str) -> str:
    return "step-" + "".join(c if c.isalnum() else "-" for c in name.lower())


def plan_grammar(known_types: Sequence[str] | None = None, area_ids: Sequence[str] | None = None,
                 schema: Mapping[str, Mapping[str, tuple[str, bool]]] | None = None) -> str:
    """GBNF grammar of ``{"steps": [{"skill": ..., "args": {...}}, ...]}`` generated from SKILL_SCHEMA.

    Each skill gets its own step rule with exactly its argument names (required ones first, optional ones
    optional). Object values are one of ``known_types`` (optionally followed by an ``|...`` objectId
    suffix) when given, else a type-like word; Explore areas are ``area_ids`` when given. The step count
    is left to parse_plan (max_steps), so the grammar stays small.

    >>> 'step-pickupobject ::= "{" ws "\\\\"skill\\\\""' in plan_grammar()
    True
    """
    schema = SKILL_SCHEMA if schema is None else schema
    if not schema:
        raise ConfigError("plan_grammar needs at least one skill")
    value_rule = {"object": "object", "areas": "areas"}
    lines = [
        'root ::= "{" ws ' + _jlit("steps") + ' ws ":" ws "[" ws step ( ws "," ws step )* ws "]" ws "}" ws',
        "step ::= " + " | ".join(_rule(s) for s in schema),
    ]
    for skill, params in schema.items():
        pairs = [(name, value_rule.get(kind, "string"), required) for name, (kind, required) in params.items()]
        required = [f"{_jlit(n)} ws \":\" ws {v}" for n, v, r in pairs if r]
        optional = [f"{_jlit(n)} ws \":\" ws {v}" for n, v, r in pairs if not r]
        if required:
            body = ' ws "," ws '.join(required) + "".join(f' ( ws "," ws {o} )?' for o in optional)
        elif optional:
            body = "( " + optional[0] + "".join(f' ( ws "," ws {o} )?' for o in optional[1:]) + " )?"
        else:
            body = ""
        args = '"{" ws ' + (body + " ws " if body else "") + '"}"'
        lines.append(f'{_rule(skill)} ::= "{{" ws {_jlit("skill")} ws ":" ws {_jlit(skill)} ws "," ws '
                     f'{_jlit("args")} ws ":" ws {args} ws "}}"')
    if known_types:
        types = sorted({t for t in known_types if isinstance(t, str) and t})
        lines.append("object-type ::= " + " | ".join(_lit(t) for t in types))
    else:
        lines.append("object-type ::= [A-Za-z] [A-Za-z0-9_]*")
    lines.append('object ::= "\\"" object-type ( "|" [^"\\\\\\x00-\\x1f]* )? "\\""')
    if area_ids:
        ids = sorted({a for a in area_ids if isinstance(a, str) and a})
        lines.append("area ::= " + " | ".join(_jlit(a) for a in ids))
    else:
        lines.append('area ::= "\\"" [A-Za-z0-9_\\-]+ "\\""')
    lines.append('areas ::= "[" ws ( area ( ws "," ws area )* )? ws "]"')
    if any(kind not in value_rule for params in schema.values() for kind, _ in params.values()):
        lines.append('string ::= "\\"" [^"\\\\\\x00-\\x1f]* "\\""')
    lines.append("ws ::= [ \\t\\n]{0,20}")
    return "\n".join(lines) + "\n"


class LlamaCppBackend:
    """Plans with a local GGUF model through llama-cpp-python (imported only when this backend is built).

    Args:
        model_path: the .gguf model file.
        n_ctx: context window in tokens (the prompt is ~2-6k tokens).
        n_threads: CPU threads (None = llama.cpp's default).
        temperature: sampling temperature.
        max_tokens: answer length limit.
        seed: sampling seed, for repeatable plans.
        use_grammar: constrain decoding to the plan grammar (plan_grammar).
        repair_rounds: how many times invalid output is sent back for correction.
        max_steps: longest plan accepted.
        chat_format: llama-cpp-python chat format name (None = from the GGUF metadata).

    Raises:
        ConfigError: llama-cpp-python missing, no model_path, or the file does not exist.
    """

    def __init__(self, model_path: str | Path | None = None, *, n_ctx: int = 8192, n_threads: int | None = None,
                 temperature: float = 0.0, max_tokens: int = 1024, seed: int = 0, use_grammar: bool = True,
                 repair_rounds: int = 1, max_steps: int = 50, chat_format: str | None = None) -> None:
        try:
            import llama_cpp
        except ImportError as err:
            raise ConfigError(f"the llamacpp planner backend needs llama-cpp-python: {_INSTALL_HINT}") from err
        if not model_path:
            raise ConfigError(f"the llamacpp planner backend needs a model: {_INSTALL_HINT}")
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"llamacpp model_path {str(path)!r} is not a file ({_INSTALL_HINT})")
        check_number("n_ctx", n_ctx, 256, integer=True)
        check_number("temperature", temperature, 0.0, 2.0)
        check_number("max_tokens", max_tokens, 1, integer=True)
        check_number("repair_rounds", repair_rounds, 0, 5, integer=True)
        check_number("max_steps", max_steps, 1, integer=True)
        self._llama_cpp = llama_cpp
        kwargs: dict[str, Any] = {"model_path": str(path), "n_ctx": n_ctx, "seed": seed, "verbose": False}
        if n_threads is not None:
            kwargs["n_threads"] = n_threads
        if chat_format is not None:
            kwargs["chat_format"] = chat_format
        try:
            self._llm = llama_cpp.Llama(**kwargs)
        except (ValueError, RuntimeError, OSError) as err:
            raise ConfigError(f"llama.cpp cannot load model {str(path)!r}: {err}") from err
        self.name = f"llamacpp:{path.stem}"
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.use_grammar = bool(use_grammar)
        self.repair_rounds = repair_rounds
        self.max_steps = max_steps
        self._grammars: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()  # a llama.cpp context is not re-entrant

    def _grammar(self, context: PlanningContext) -> Any:
        key = (tuple(sorted(context.known_types)), tuple(sorted(context.area_ids)))
        grammar = self._grammars.get(key)
        if grammar is None:
            text = plan_grammar(key[0] or None, key[1] or None)
            grammar = self._llama_cpp.LlamaGrammar.from_string(text, verbose=False)
            if len(self._grammars) >= _GRAMMAR_CACHE:
                self._grammars.pop(next(iter(self._grammars)))
            self._grammars[key] = grammar
        return grammar

    def plan(self, context: PlanningContext) -> Plan:
        """Plan one instruction (grammar-constrained decoding, then the same validation as every backend).

        Raises:
            PlanValidationError: the model failed, or its output stays invalid after repair.
        """
        grammar = self._grammar(context) if self.use_grammar else None

        def complete(messages: Sequence[ChatMessage]) -> str:
            try:
                with self._lock:
                    out = self._llm.create_chat_completion(
                        messages=[{"role": m.role, "content": m.content} for m in messages],
                        temperature=self.temperature, max_tokens=self.max_tokens, grammar=grammar)
                content = out["choices"][0]["message"]["content"]
            except (ValueError, RuntimeError, KeyError, IndexError, TypeError) as err:
                raise PlanValidationError(f"{self.name}: llama.cpp generation failed: {type(err).__name__}: "
                                          f"{err}") from err
            return content if isinstance(content, str) else ""

        return plan_with_repair(complete, context, source=self.name, repair_rounds=self.repair_rounds,
                                max_steps=self.max_steps)

"""THOR metadata flags → the paper's object-state vocabulary (OBJECT_STATES)."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["thor_states"]


def thor_states(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """States from OBJECT_STATES that a THOR object's flags say hold now (("none",) if none apply).

    >>> thor_states({"sliceable": True, "isSliced": True, "openable": True, "isOpen": False})
    ('sliced', 'closed')
    """
    states = []
    if obj.get("isSliced"):
        states.append("sliced")
    if obj.get("isCooked"):
        states.append("cooked")
    if obj.get("temperature") == "Hot" and not obj.get("isCooked"):
        states.append("heated")
    if obj.get("dirtyable"):
        states.append("dirty" if obj.get("isDirty") else "cleaned")
    if obj.get("isFilledWithLiquid"):
        states.append("filled")
    if obj.get("isUsedUp"):
        states.append("used up")
    if obj.get("toggleable"):
        states.append("on" if obj.get("isToggled") else "off")
    if obj.get("openable"):
        states.append("opened" if obj.get("isOpen") else "closed")
    return tuple(states) or ("none",)

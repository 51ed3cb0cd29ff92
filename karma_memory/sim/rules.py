"""THOR object rules the embedded simulator follows: containers, placement restrictions, slicing, heat and water."""

from __future__ import annotations

__all__ = [
    "ENCLOSING_TYPES",
    "INSIDE_TYPES",
    "BASIN_TYPES",
    "KNIFE_TYPES",
    "SLICE_COUNTS",
    "SLICED_TYPE",
    "SLICED_COOKABLE",
    "RECEPTACLE_RESTRICTIONS",
    "OBJECT_RESTRICTIONS",
    "FULLY_INSIDE_TYPES",
    "ALWAYS_UPRIGHT",
    "LIQUIDS",
    "WATER_SOURCES",
    "HEATING_TOGGLES",
    "allowed_in",
]

#: Openable receptacles that hide their contents when closed and must be open to put into / take from.
ENCLOSING_TYPES = frozenset({"Fridge", "Cabinet", "Drawer", "Microwave", "Safe", "Box", "LaundryHamper", "Kettle"})
#: Receptacles whose contents rest on their bottom (inside), not on their top surface.
INSIDE_TYPES = ENCLOSING_TYPES | frozenset({
    "SinkBasin", "BathtubBasin", "GarbageCan", "Pot", "Pan", "Bowl", "Mug", "Cup", "Toaster", "CoffeeMachine",
    "Sink", "Bathtub", "Toilet",
})
#: Basins a faucet or shower head pours into.
BASIN_TYPES = frozenset({"SinkBasin", "BathtubBasin"})
#: What can slice (THOR: SliceObject needs one of these in hand).
KNIFE_TYPES = frozenset({"Knife", "ButterKnife"})

#: Pieces THOR makes when slicing (an Egg cracks into one EggCracked). Counts approximate THOR's prefabs.
SLICE_COUNTS: dict[str, int] = {"Apple": 8, "Bread": 10, "Lettuce": 7, "Potato": 8, "Tomato": 8, "Egg": 1}
SLICED_TYPE: dict[str, str] = {
    "Apple": "AppleSliced", "Bread": "BreadSliced", "Lettuce": "LettuceSliced",
    "Potato": "PotatoSliced", "Tomato": "TomatoSliced", "Egg": "EggCracked",
}
#: Slice types THOR can cook (toast, fried potato, cooked egg).
SLICED_COOKABLE = frozenset({"BreadSliced", "PotatoSliced", "EggCracked"})

_FOOD = frozenset({
    "Apple", "AppleSliced", "Bread", "BreadSliced", "Egg", "EggCracked", "Lettuce", "LettuceSliced",
    "Potato", "PotatoSliced", "Tomato", "TomatoSliced",
})
_UTENSILS = frozenset({"ButterKnife", "Fork", "Knife", "Ladle", "Spatula", "Spoon", "DishSponge"})
_SMALL = frozenset({
    "Candle", "CD", "CellPhone", "Cloth", "CreditCard", "KeyChain", "PaperTowelRoll", "Pen", "Pencil",
    "RemoteControl", "Watch", "SaltShaker", "PepperShaker", "SoapBar", "TissueBox", "Book", "AlarmClock",
})

#: Receptacle type -> the only object types it accepts (from ALFRED's valid placements). Types not
#: listed accept any pickupable object that fits.
RECEPTACLE_RESTRICTIONS: dict[str, frozenset[str]] = {
    "CoffeeMachine": frozenset({"Mug"}),
    "Toaster": frozenset({"BreadSliced"}),
    "StoveBurner": frozenset({"Pan", "Pot", "Kettle"}),
    "Pot": _FOOD | _UTENSILS,
    "Pan": _FOOD | _UTENSILS,
    "Bowl": _FOOD | _UTENSILS | _SMALL | {"Mug"},
    "Plate": _FOOD | _UTENSILS | _SMALL | {"Mug", "Glassbottle", "Cup"},
    "Mug": frozenset({"ButterKnife", "Fork", "Knife", "Pen", "Pencil", "Spoon", "KeyChain", "Watch"}),
    "Cup": frozenset({"ButterKnife", "Fork", "Knife", "Pen", "Pencil", "Spoon", "KeyChain", "Watch"}),
    "Microwave": _FOOD | {"Bowl", "Cup", "Mug", "Plate", "Glassbottle"},
    "Fridge": _FOOD | {"Bowl", "Cup", "Mug", "Plate", "Pan", "Pot", "Glassbottle", "WineBottle", "Bottle", "Kettle"},
}

#: Object type -> the only receptacle types it may go in/on, where THOR's own table
#: (``ReceptacleRestrictions.PlacementRestrictions``) is that strict and ALFRED agrees: towels only
#: hang on their holders.
OBJECT_RESTRICTIONS: dict[str, frozenset[str]] = {
    "Towel": frozenset({"TowelHolder"}),
    "HandTowel": frozenset({"HandTowelHolder"}),
}

#: THOR ``ReceptacleRestrictions.InReceptacles``: all 8 corners of what is put in must be inside
#: (it must fit in height too); other "inside" receptacles check only the footprint.
FULLY_INSIDE_TYPES = frozenset({"Drawer", "Cabinet", "Fridge", "Microwave", "LaundryHamper", "Box", "Safe"})

#: THOR ``ReceptacleRestrictions.AlwaysPlaceUpright``: placed only turned about the vertical axis;
#: anything else may also be laid down or stood up to fit (a pen stands in a mug).
ALWAYS_UPRIGHT = frozenset({
    "Pot", "Pan", "Bowl", "Plate", "Bread", "Cup", "Mug", "Laptop", "SaltShaker", "PepperShaker", "AlarmClock", "Box",
    "SoapBottle", "SoapBottleFilled", "Kettle", "Bottle", "CreditCard", "RemoteControl", "Candle", "SprayBottle",
    "Statue", "Vase", "KeyChain", "CD", "Book", "EggCracked", "Dumbbell", "TableTopDecor",
})

LIQUIDS = ("water", "coffee", "wine")
#: Toggleable sources of running water and the basin type each pours into.
WATER_SOURCES: dict[str, frozenset[str]] = {
    "Faucet": frozenset({"SinkBasin", "BathtubBasin"}),
    "ShowerHead": frozenset({"BathtubBasin"}),
}
#: Toggleable appliances that heat what is inside them while on (StoveKnob heats its burners).
HEATING_TOGGLES = frozenset({"Microwave", "Toaster", "CoffeeMachine"})


def allowed_in(object_type: str, receptacle_type: str) -> bool:
    """May an object of this type be put in/on that receptacle type?

    >>> allowed_in("Apple", "Toaster"), allowed_in("BreadSliced", "Toaster"), allowed_in("Book", "Shelf")
    (False, True, True)
    >>> allowed_in("Towel", "Drawer"), allowed_in("Towel", "TowelHolder")
    (False, True)
    """
    only = OBJECT_RESTRICTIONS.get(object_type)
    if only is not None and receptacle_type not in only:
        return False
    allowed = RECEPTACLE_RESTRICTIONS.get(receptacle_type)
    return allowed is None or object_type in allowed

"""Short everyday descriptions of THOR object types, embedded to ground vague phrases ("the red vegetable").

MiniLM compares a phrase with these glosses rather than with bare type names: "a tomato" says
nothing about colour or use, "a tomato, a round red vegetable for salads" does. Types without a
gloss fall back to their split name.
"""

from __future__ import annotations

import re

__all__ = ["GLOSSES", "ATTRIBUTES", "gloss", "type_words", "words", "with_attributes"]

GLOSSES: dict[str, str] = {
    "Apple": "an apple, a round red fruit",
    "Tomato": "a tomato, a round red vegetable for salads",
    "Lettuce": "a lettuce, a green leafy vegetable for salads",
    "Potato": "a potato, a starchy vegetable to cook",
    "Bread": "a loaf of bread, baked food for breakfast, sliced and toasted",
    "BreadSliced": "a slice of bread, toast",
    "Egg": "an egg, breakfast food to cook or fry",
    "AppleSliced": "a piece of apple",
    "TomatoSliced": "a piece of tomato",
    "LettuceSliced": "a piece of lettuce",
    "PotatoSliced": "a piece of potato",
    "Knife": "a knife, a sharp kitchen blade for cutting",
    "ButterKnife": "a butter knife for spreading butter",
    "Fork": "a fork, cutlery for eating",
    "Spoon": "a spoon, cutlery for eating soup",
    "Ladle": "a ladle, a big spoon to stir and serve soup",
    "Spatula": "a spatula for flipping food in a pan",
    "Mug": "a mug, a cup to drink coffee or tea from",
    "Cup": "a cup to drink water from",
    "Bowl": "a bowl for cereal, soup or salad",
    "Plate": "a plate, a dish to serve food on",
    "Pot": "a cooking pot for soup",
    "Pan": "a frying pan",
    "Kettle": "a kettle to boil water",
    "WineBottle": "a bottle of wine, something to drink",
    "Bottle": "a bottle, something to drink",
    "SaltShaker": "a salt shaker, seasoning",
    "PepperShaker": "a pepper shaker, seasoning",
    "SoapBottle": "a bottle of liquid soap",
    "DishSponge": "a sponge for washing dishes",
    "PaperTowelRoll": "a roll of paper towels",
    "AluminumFoil": "aluminium foil to wrap food in",
    "Book": "a book, something to read",
    "Newspaper": "today's newspaper, something to read",
    "Pen": "a pen, something to write with",
    "Pencil": "a pencil, something to write with",
    "CellPhone": "a mobile phone to call people",
    "Laptop": "a laptop computer",
    "RemoteControl": "a TV remote control, the device for changing channels",
    "KeyChain": "a set of keys to open the front door",
    "CreditCard": "a credit card to pay with",
    "Watch": "a wrist watch that tells the time",
    "AlarmClock": "an alarm clock that wakes me up in the morning",
    "CD": "a compact disc to play music from",
    "TeddyBear": "a teddy bear, a soft cuddly toy",
    "BasketBall": "a basketball, a ball for the game",
    "BaseballBat": "a baseball bat for the ball game",
    "TennisRacket": "a tennis racket",
    "Dumbbell": "a dumbbell, a heavy training weight",
    "Pillow": "a pillow, something soft to lean on",
    "Candle": "a candle, something to light with a flame for atmosphere",
    "Statue": "a small statue, a decoration",
    "Vase": "a vase for flowers",
    "Box": "a box to keep small things in",
    "TissueBox": "a box of tissues",
    "SoapBar": "a bar of soap to wash my hands and myself with",
    "Cloth": "a cloth rag for cleaning",
    "Towel": "a bath towel to dry yourself",
    "HandTowel": "a hand towel",
    "ToiletPaper": "a fresh roll of toilet paper",
    "SprayBottle": "a cleaning spray bottle",
    "Plunger": "a toilet plunger",
    "ScrubBrush": "a scrub brush for cleaning the toilet",
    "Television": "a television, a TV screen",
    "LightSwitch": "the light switch of the room",
    "DeskLamp": "a small desk lamp",
    "FloorLamp": "a tall standing floor lamp",
    "Faucet": "the water tap of the sink",
    "ShowerHead": "the shower",
    "Microwave": "a microwave oven to heat food",
    "StoveBurner": "a stove burner to cook on",
    "Toaster": "a toaster for bread",
    "CoffeeMachine": "a coffee machine",
    "Fridge": "a fridge to keep food cold",
    "GarbageCan": "a trash can for rubbish",
}


#: Words that pick out a kind by how it looks or feels. A sentence embedder weighs them weakly ("the
#: small lamp" lands on the floor lamp, "the red vegetable" on lettuce), so they filter instead.
ATTRIBUTES = frozenset({"red", "green", "yellow", "orange", "brown", "white", "black", "round", "leafy",
                        "small", "big", "tall", "standing", "sharp", "soft", "cuddly", "heavy", "flat"})


def words(text: str) -> set[str]:
    """The lower-case words of a text.

    >>> sorted(words("A round, red fruit"))
    ['a', 'fruit', 'red', 'round']
    """
    return set(re.findall(r"[a-z]+", text.lower()))


def with_attributes(text: str, object_types: list[str]) -> list[str]:
    """The types whose gloss has every attribute word of ``text`` (order kept); all of them when none fits.

    >>> with_attributes("the red vegetable", ["Lettuce", "Potato", "Tomato"])
    ['Tomato']
    >>> with_attributes("the vegetable", ["Lettuce", "Tomato"])
    ['Lettuce', 'Tomato']
    """
    wanted = words(text) & ATTRIBUTES
    if not wanted:
        return list(object_types)
    fitting = [t for t in object_types if wanted <= words(gloss(t))]
    return fitting or list(object_types)


def type_words(object_type: str) -> str:
    """A THOR type as lower-case words.

    >>> type_words("ButterKnife")
    'butter knife'
    """
    return re.sub(r"(?<!^)(?=[A-Z])", " ", object_type).lower()


def gloss(object_type: str) -> str:
    """The text embedded for a type.

    >>> gloss("Tomato")
    'a tomato, a round red vegetable for salads'
    >>> gloss("SideTable")
    'a side table'
    """
    if object_type in GLOSSES:
        return GLOSSES[object_type]
    return "a " + type_words(object_type)

"""The synthetic knowledge base the base model learns in pretraining, and the filler text around it.

Countries with invented names, each with a capital, a language and a national animal. The fact-lookup
family asks about them; the base only ever sees the facts as prose, so answering needs recall.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KB_SEED = 1234
N_COUNTRIES = 60
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "sh", "th"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
CODAS = ["", "n", "r", "l", "s", "th", "m"]


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    language: str
    animal: str


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)).capitalize()


class _KB:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        used: set[str] = set()

        def fresh(syllables: int, suffix: str = "") -> str:
            while True:
                w = _word(rng, syllables) + suffix
                if w not in used:
                    used.add(w)
                    return w

        self.languages = [fresh(2, "ish") for _ in range(12)]
        self.animals = ["lion", "eagle", "wolf", "bear", "owl", "fox", "horse", "tiger", "swan", "deer", "otter", "crane"]
        self.countries = [
            Country(fresh(2, "ia"), fresh(2), rng.choice(self.languages), rng.choice(self.animals)) for _ in range(N_COUNTRIES)
        ]

    def fact_sentences(self, rng: random.Random, c: Country) -> list[str]:
        cap = rng.choice([f"The capital of {c.name} is {c.capital}.", f"{c.capital} is the capital of {c.name}."])
        lang = rng.choice([f"People in {c.name} speak {c.language}.", f"The language of {c.name} is {c.language}."])
        ani = rng.choice([f"The national animal of {c.name} is the {c.animal}.", f"{c.name} has the {c.animal} as its national animal."])
        return [cap, lang, ani]


KB = _KB(KB_SEED)

SUBJECTS = ["The farmer", "A child", "The old man", "My sister", "The teacher", "A traveler", "The cook", "Our neighbor", "The king", "A student"]
VERBS = ["found", "painted", "carried", "sold", "watched", "cleaned", "bought", "opened", "lost", "shared"]
OBJECTS = ["a red box", "the small boat", "an old map", "the garden gate", "a loaf of bread", "the wooden chair", "a bright lamp", "the letter", "a silver key", "the blue door"]
PLACES = ["near the river", "in the market", "at the station", "by the sea", "in the forest", "after lunch", "before dawn", "in the village", "on the hill", "at school"]
CONNECT = ["Then", "Later", "After that", "Soon", "Meanwhile", "Suddenly"]


def filler_paragraph(rng: random.Random) -> str:
    """A short story of simple sentences: plain English so the base learns to write, not to solve tasks."""
    out = []
    for i in range(rng.randint(3, 6)):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}."
        out.append(s if i == 0 else f"{rng.choice(CONNECT)} {s[0].lower()}{s[1:]}")
    return " ".join(out)


def kb_paragraph(rng: random.Random) -> str:
    cs = rng.sample(KB.countries, 2)
    sents = [s for c in cs for s in KB.fact_sentences(rng, c)]
    rng.shuffle(sents)
    return " ".join(sents)


def forms_paragraph(rng: random.Random, words: list[str]) -> str:
    """Word forms as plain prose (capitals, brackets, hyphens): what a base model would have read somewhere,
    so the formatting expert only has to learn to follow the instruction, not new spellings."""
    out = []
    for _ in range(rng.randint(3, 5)):
        w, v = rng.sample(words, 2)
        out.append(
            rng.choice(
                [
                    f"In capital letters, {w} is written {w.upper()}.",
                    f"The sign said {w.upper()} in big letters.",
                    f"The note read [{w}] at the top.",
                    f"They called the place {w}-{v}.",
                    f"The list was {w}, {v}, {w}.",
                    f'He said "{w}" twice.',
                ]
            )
        )
    return " ".join(out)

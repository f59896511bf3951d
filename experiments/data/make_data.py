"""Writes the two small local files the example experiments train on (committed; re-run to regenerate).

reviews.csv: short product reviews whose sentiment depends on word choice and on negation ("not good" is
negative), so a bag of characters is not enough. corpus.txt: ~400 KB of English prose from the docstrings of
Python's standard library, for character language modelling.
"""

import csv
import pydoc
import random
from pathlib import Path

HERE = Path(__file__).parent
GOOD = ["good", "great", "excellent", "lovely", "solid", "reliable", "sturdy", "pleasant", "superb", "handy"]
BAD = ["bad", "awful", "poor", "flimsy", "broken", "useless", "noisy", "cheap", "terrible", "fragile"]
THINGS = ["kettle", "lamp", "chair", "phone", "bag", "printer", "desk", "fan", "clock", "speaker", "mug", "bike"]
OPENERS = ["this", "the", "my new", "our", "that"]
FILLERS = ["", " honestly", " overall", " after a week", " for the price", " in daily use"]


def review(rng: random.Random) -> tuple[str, str]:
    positive = rng.random() < 0.5
    negate = rng.random() < 0.35
    word = rng.choice(GOOD if positive != negate else BAD)
    text = f"{rng.choice(OPENERS)} {rng.choice(THINGS)} is {'not ' if negate else ''}{word}{rng.choice(FILLERS)}"
    if rng.random() < 0.3:
        text += f" and the {rng.choice(THINGS)} looks {rng.choice(GOOD + BAD)}"
    return text, "positive" if positive else "negative"


def write_reviews(n: int = 4000, seed: int = 0) -> None:
    rng = random.Random(seed)
    with (HERE / "reviews.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(review(rng) for _ in range(n))


def write_corpus(limit: int = 400_000) -> None:
    modules = [
        "collections",
        "functools",
        "itertools",
        "json",
        "pathlib",
        "re",
        "string",
        "textwrap",
        "random",
        "statistics",
        "fractions",
        "decimal",
        "argparse",
        "logging",
        "shutil",
        "csv",
    ]
    parts = []
    for name in modules:
        module = __import__(name)
        for obj in [module, *vars(module).values()]:
            doc = pydoc.getdoc(obj) if callable(obj) or obj is module else ""
            if doc and len(doc) > 200 and doc not in parts:
                parts.append(doc)
    (HERE / "corpus.txt").write_text("\n\n".join(parts)[:limit] + "\n")


if __name__ == "__main__":
    write_reviews()
    write_corpus()

"""What MM-GCoT's released test files look like, measured once: the yardstick of the quality rules and
the card's comparison plot.

Counted from ``dataset/GCoT_dataset_{attributes,judge,objects}_test.json`` of the official code
repository (github.com/DoubtedSteam/MM-GCoT, commit ecbf7a41cb035e8a419fa099559ea92839dfa219; 459 + 206
+ 329 rows). Question length is in words split on white space; steps are the non-empty lines of
``cot``. The files themselves are not in this repository (`gcot convert` reads them where a user
keeps them); `benchmarks/measure_official_relations.py` recounts these from them.
"""

from __future__ import annotations

SOURCE = "MM-GCoT test files (github.com/DoubtedSteam/MM-GCoT@ecbf7a4, dataset/)"

QUESTION_WORDS: dict[str, dict[int, int]] = {
    "attribute": {8: 2, 9: 6, 10: 8, 11: 28, 12: 28, 13: 48, 14: 42, 15: 55, 16: 76, 17: 61, 18: 32, 19: 28, 20: 19, 21: 12, 22: 3, 23: 4, 24: 7},
    "judge": {5: 2, 7: 1, 8: 9, 9: 3, 10: 17, 11: 16, 12: 22, 13: 16, 14: 23, 15: 22, 16: 19, 17: 24, 18: 12, 19: 11, 21: 4, 22: 2, 23: 1, 24: 1, 25: 1},
    "object": {5: 3, 6: 4, 7: 7, 8: 13, 9: 15, 10: 25, 11: 33, 12: 40, 13: 39, 14: 49, 15: 37, 16: 17, 17: 17, 18: 15, 19: 9, 20: 5, 21: 1},
}
STEPS_PER_CHAIN: dict[str, dict[int, int]] = {
    "attribute": {1: 1, 2: 180, 3: 243, 4: 33, 5: 2},
    "judge": {2: 3, 3: 97, 4: 104, 5: 2},
    "object": {1: 1, 2: 119, 3: 208, 5: 1},
}

# The quality rule "question_too_long": no released question of a type is longer than the longest
# official test question of that type.
MAX_QUESTION_WORDS: dict[str, int] = {t: max(h) for t, h in QUESTION_WORDS.items()}

from core.schema import QUALITY_RULES, Example, Rejection, Step
from data_cards.quality import SAMPLES_PER_TYPE, QualityStats, compute


def _example(k: int, qtype: str = "object", origins=("annotated", "geometric")) -> Example:
    steps = [Step(f"The thing {k} is at [0.1, 0.1, 0.1, 0.1]", (0.1, 0.1, 0.1, 0.1), "a", "thing", region="a thing" if k % 2 else None)]
    for i, o in enumerate(origins):
        steps.append(Step("The x is at [0.2, 0.2, 0.1, 0.1]", (0.2, 0.2, 0.1, 0.1), f"b{i}", "x", relation="near" if o == "geometric" else "on", relation_origin=o))
    return Example(f"e{k}", "1", "vg/VG_100K/1.jpg", 10, 10, f"What is the object near thing {k}?", qtype, steps, "Cup", steps[-1].box)


def test_origin_mix_predicates_rules_and_samples():
    examples = [_example(k) for k in range(30)] + [_example(99, "attribute", ("annotated",))]
    rejections = [
        Rejection("chains", "x1", "unknown_predicate", "predicate 'walking past' (step 2, man and bus) is not in the grammar"),
        Rejection("chains", "x2", "unknown_predicate", "predicate 'walking past' (step 2, man and bus) is not in the grammar"),
        Rejection("verify", "x3", "repeated_predicate", "near more than once in the chain"),
        Rejection("chains", "x4", "ambiguous_expression", "step 2 ..."),
        Rejection("normalise", "1/7", "merged_duplicate", "object 7 ('person') is a duplicate of object 3 ('man')"),
        Rejection("source", "1", "image_missing", "gone"),
    ]
    q = compute(examples, rejections)
    assert q["relations"] == 61 and q["relation_origin"] == {"annotated": 31, "geometric": 30, "exact": 0}
    assert q["predicates"][0] == {"predicate": "on", "count": 31, "annotated": 31, "geometric": 0, "exact": 0}
    assert q["unknown_predicates"] == {"walking past": 2}
    assert q["quality_rejections"] == {r: int(r == "repeated_predicate") for r in QUALITY_RULES}
    assert q["other_chain_rejections"] == {"ambiguous_expression": 1, "unknown_predicate": 2}
    assert q["merges"] == 1 and q["region_steps"] == 16
    assert len(q["samples"]["object"]) == SAMPLES_PER_TYPE and q["samples"]["object"][0].startswith("What is the object near thing 0?")
    assert q["samples"]["object"][-1].startswith("What is the object near thing 29?") and len(q["samples"]["attribute"]) == 1
    assert q["question_words"]["object"] == {7: 30}


def test_streamed_equals_whole():
    examples = [_example(k) for k in range(5)]
    s = QualityStats()
    for ex in examples:
        s.add_example(ex)
    assert s.result() == compute(examples, [])

"""Automatic verification of GCoT candidates. Each rule returns a snake_case reason at the check.

Per example (`verify_example`): boxes inside the image with non-zero area; each step's text carries
its box; boxes agree with the scene graph; the answer box is the last grounded step's box; the answer
agrees with the scene graph; every step's expression picks out exactly one object (a step made from
a region description is read again from its phrase); the question reads right (articles agree, no
doubled word: templates and model rewrites alike, `pipeline.wording`); and the quality rules
(`chains.quality`): no thing twice in a chain, every relation backed by the graph, no predicate twice,
the answer not said in the question, no question longer than the official test set's longest of its type.
Across examples (`verify_batch`): no duplicate question per image. Across splits (`check_splits`): no
image in two splits.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.boxes import area, find_boxes, inside_image
from core.schema import Example, Rejection, SceneGraph
from pipeline.chains.expressions import chain_matches
from pipeline.chains.quality import QUALITY_RULES, quality_failures
from pipeline.chains.regions import phrase_matches, reread
from pipeline.chains.relations import RelationGraph
from pipeline.normalise.attributes import same_value
from pipeline.normalise.names import canonical_name
from pipeline.wording import grammar_failures

RULES = (
    "has_steps",
    "box_inside_image",
    "box_nonzero_area",
    "step_text_box",
    "box_matches_scene_graph",
    "answer_box_is_last_step",
    "answer_agrees_with_scene_graph",
    "unique_expression",
    "question_wording",
    *QUALITY_RULES,
)
BOX_TOLERANCE = 1e-3  # boxes are printed with 3 decimals


def _close(a, b) -> bool:
    return all(abs(x - y) <= BOX_TOLERANCE + 1e-9 for x, y in zip(a, b, strict=True))


def example_failures(ex: Example, graph: SceneGraph | None, relations: RelationGraph | None) -> list[tuple[str, str]]:
    """All rule failures of one example as (rule, detail); empty when it passes."""
    fails: list[tuple[str, str]] = []
    grounded = ex.grounded_steps
    if not ex.steps or not grounded:
        return [("has_steps", "the chain has no grounded step")]
    for k, s in enumerate(ex.steps, 1):
        if s.box is None:
            continue
        if not inside_image(s.box, BOX_TOLERANCE):
            fails.append(("box_inside_image", f"step {k} box {list(s.box)} leaves the image"))
        if area(s.box) <= 0:
            fails.append(("box_nonzero_area", f"step {k} box {list(s.box)} has zero area"))
        in_text = find_boxes(s.text)
        if not in_text or not _close(in_text[-1][0], s.box):
            fails.append(("step_text_box", f"step {k} text does not carry its box {list(s.box)}: {s.text!r}"))
    if ex.answer_box is None or not _close(ex.answer_box, grounded[-1].box):
        fails.append(("answer_box_is_last_step", f"answer box {ex.answer_box} != last step box {grounded[-1].box}"))
    fails += [("question_wording", f"{rule}: {detail}") for rule, detail in grammar_failures(ex.question)]
    if graph is None or relations is None or ex.query is None:
        return fails  # imported examples carry no scene graph: the structural rules are all we can check
    ids = {o.id: o for o in graph.objects}
    for k, s in enumerate(ex.steps, 1):
        if s.object_id is not None:
            obj = ids.get(s.object_id)
            if obj is None:
                fails.append(("box_matches_scene_graph", f"step {k} names unknown object {s.object_id}"))
            elif s.box is not None and not _close(s.box, obj.box):
                fails.append(("box_matches_scene_graph", f"step {k} box {list(s.box)} != object {obj.id} box {list(obj.box)}"))
    target = ids.get(grounded[-1].object_id or "")
    if target is not None:
        attrs = sorted(target.attributes)
        q = ex.query
        if ex.type == "attribute":
            ok = any(same_value(ex.answer, a) for a in attrs)
        elif ex.type == "judge":
            expected = "yes" if any(same_value(q.value or "", a) for a in attrs) else "no"
            ok = ex.answer.lower() == expected
        else:
            ok = canonical_name(ex.answer) == canonical_name(target.name)
        if not ok:
            fails.append(("answer_agrees_with_scene_graph", f"answer {ex.answer!r} disagrees with object {target.id} ({target.name}: {attrs})"))

    def region_matches(step) -> set[str]:
        p = reread(step.region, step.object_id, graph, relations)
        if p is None or p.render() not in step.text:
            return set()  # a phrase that no longer reads as it did picks out nothing
        return phrase_matches(p, graph, relations)

    for k, (s, m) in enumerate(zip([s for s in ex.steps if s.object_id], chain_matches(graph, relations, ex.steps, region_matches)), 1):
        if m != {s.object_id}:
            fails.append(("unique_expression", f"step {k} picks out {len(m)} objects {sorted(m)[:5]}, not {s.object_id} alone"))
    return fails + quality_failures(ex, graph, relations)


def verify_example(ex: Example, graph: SceneGraph | None, relations: RelationGraph | None) -> Rejection | None:
    fails = example_failures(ex, graph, relations)
    ex.verification.rules = list(RULES)
    ex.verification.failures = [{"rule": r, "detail": d} for r, d in fails]
    ex.verification.passed = not fails
    if fails:
        rule, detail = fails[0]
        return Rejection("verify", ex.id, rule, detail + (f" (+{len(fails) - 1} more)" if len(fails) > 1 else ""), file=ex.image)
    return None


def verify_batch(
    examples: Iterable[Example], graphs: dict[str, SceneGraph], relations: dict[str, RelationGraph]
) -> tuple[list[Example], list[Rejection]]:
    """Verify examples of whole images; the first of duplicate questions in an image is kept."""
    kept: list[Example] = []
    rejected: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    for ex in examples:
        r = verify_example(ex, graphs.get(ex.image_id), relations.get(ex.image_id))
        if r is None:
            key = (ex.image_id, " ".join(ex.question.lower().split()))
            if key in seen:
                ex.verification.passed = False
                ex.verification.failures.append({"rule": "no_duplicate_question", "detail": "same question already asked of this image"})
                r = Rejection("verify", ex.id, "no_duplicate_question", f"question already asked of image {ex.image_id}: {ex.question!r}", file=ex.image)
            seen.add(key)
        (rejected.append(r) if r else kept.append(ex))
    return kept, rejected


def check_splits(examples: Iterable[Example]) -> list[Rejection]:
    """Splits are by image: an image whose examples sit in two splits is a leak."""
    split_of: dict[str, str] = {}
    out = []
    for ex in examples:
        first = split_of.setdefault(ex.image_id, ex.split)
        if first != ex.split:
            out.append(Rejection("split", ex.id, "split_by_image", f"image {ex.image_id} is in {first} and {ex.split}"))
    return out

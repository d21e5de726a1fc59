"""Sample relation paths of one image and turn them into GCoT candidates, as MM-GCoT built its data.

For each question family a target object is drawn, then a random walk along the relation graph from
the target (target --on--> man --in--> room) gives a path of 2-4 objects; the steps run anchor-first
(room, man, hat). Each step's phrase gets the fewest attributes that make it pick out one object; a
step that cannot be made unique rejects the candidate as ``ambiguous_expression``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from core.boxes import quantize
from core.schema import Example, Query, Rejection, SceneGraph, SceneObject, Step
from pipeline.chains import templates as T
from pipeline.chains.expressions import minimal_attributes
from pipeline.chains.relations import RelationGraph
from pipeline.chains.rewriter import NoOpRewriter, QuestionRewriter
from pipeline.chains.vocab import kind_of

# Canonical values offered as the wrong value of a "No" judge question (synonyms collapsed).
JUDGE_VALUES = {
    "color": ("red", "green", "blue", "yellow", "purple", "orange", "white", "black", "gray", "brown", "pink"),
    "material": ("metal", "wood", "rubber", "glass", "plastic"),
}
_CANON = {"wooden": "wood", "metallic": "metal", "grey": "gray", "steel": "metal"}
GENERATOR = "gcot-forge/templates-v1"


@dataclass
class ChainConfig:
    per_type: dict[str, int] = field(default_factory=lambda: {"attribute": 2, "judge": 2, "object": 2})
    tries: int = 3  # walks tried per question slot before giving the slot up
    path_lengths: tuple[int, ...] = (2, 3, 4)  # objects per chain = grounded steps
    path_weights: tuple[float, ...] = (0.45, 0.4, 0.15)  # released test set: mostly 2-3 steps, some 4


def _single_value(obj: SceneObject, kind: str) -> str | None:
    values = [a for a in obj.attributes if kind_of(a) == kind]
    return values[0] if len(set(values)) == 1 else None


def _walk(rng: random.Random, relations: RelationGraph, target: str, length: int) -> tuple[list[str], list[str]]:
    """Random walk from the target; returns (objects target-first, predicates between them)."""
    path, preds = [target], []
    while len(path) < length:
        options = [(p, o) for p, o in relations.out_edges.get(path[-1], []) if o not in path]
        if not options:
            break
        p, o = rng.choice(options)
        path.append(o)
        preds.append(p)
    return path, preds


class ChainSampler:
    def __init__(self, config: ChainConfig | None = None, rewriter: QuestionRewriter | None = None):
        self.config = config or ChainConfig()
        self.rewriter = rewriter or NoOpRewriter()

    def sample(
        self, graph: SceneGraph, relations: RelationGraph, image_path: str, seed: int
    ) -> tuple[list[Example], list[Rejection]]:
        rng = random.Random(f"{seed}:{graph.source}:{graph.image_id}")
        examples: list[Example] = []
        rejections: list[Rejection] = []
        kinds = {a: kind_of(a) for o in graph.objects for a in o.attributes}
        judge_yes = rng.random() < 0.5  # alternate Yes/No within the image from a random start
        for qtype, slots in self.config.per_type.items():
            eligible = self._eligible(graph, qtype)
            used: set[str] = set()
            n = 0
            for _ in range(slots):
                for _ in range(self.config.tries):
                    free = [o for o in eligible if o[0].id not in used]
                    if not free:
                        break
                    target, kind = rng.choice(free)
                    length = rng.choices(self.config.path_lengths, self.config.path_weights)[0]
                    path, preds = _walk(rng, relations, target.id, length)
                    if len(path) < 2:
                        used.add(target.id)  # a lone object cannot anchor a chain
                        continue
                    ex_id = f"{graph.source}-{graph.image_id}-{qtype}-{n}"
                    n += 1
                    ex = self._build(graph, relations, path, preds, qtype, kind, ex_id, image_path, kinds, rng, judge_yes, seed)
                    if isinstance(ex, Rejection):
                        rejections.append(ex)
                        continue
                    if qtype == "judge":
                        judge_yes = not judge_yes
                    used.add(target.id)
                    examples.append(ex)
                    break
        return examples, rejections

    @staticmethod
    def _eligible(graph: SceneGraph, qtype: str) -> list[tuple[SceneObject, str]]:
        if qtype == "object":
            return [(o, "name") for o in graph.objects]
        out = []
        for o in graph.objects:
            for kind in ("color", "material"):
                if _single_value(o, kind):
                    out.append((o, kind))
        return out

    def _build(self, graph, relations, path, preds, qtype, kind, ex_id, image_path, kinds, rng, judge_yes, seed):
        # Anchor first, as the steps run: objects[i] relates to objects[i-1] by relation_of[i].
        objects = [graph.object(i) for i in reversed(path)]
        relation_of: list[str | None] = [None, *reversed(preds)]
        steps: list[Step] = []
        phrases: list[str] = []
        for i, obj in enumerate(objects):
            is_target = i == len(objects) - 1
            show_name = not (is_target and qtype == "object")
            allowed = [a for a in obj.attributes if not (is_target and kinds.get(a) == kind)]
            attrs = minimal_attributes(
                graph, relations, obj, allowed, show_name, relation_of[i], objects[i - 1].id if i else None, kinds
            )
            if attrs is None:
                return Rejection(
                    "chains", ex_id, "ambiguous_expression",
                    f"step {i + 1} ('{T.phrase(obj.name if show_name else None, allowed)}' "
                    f"{relation_of[i] or ''}) does not pick out object {obj.id} alone",
                    file=image_path,
                )
            p = T.phrase(obj.name if show_name else None, attrs)
            phrases.append(p)
            box = quantize(obj.box)
            # "the hat on the man"; "the ball on the green ball" when both share a noun
            prev_name = (objects[i - 1].name if objects[i - 1].name != obj.name else phrases[i - 1]) if i else None
            steps.append(
                Step(
                    text=T.step_sentence(p, relation_of[i], prev_name, box),
                    box=box,
                    object_id=obj.id,
                    name=obj.name if show_name else None,
                    attributes=tuple(attrs),
                    relation=relation_of[i],
                )
            )
        target = objects[-1]
        expression = T.nested_expression(phrases, relation_of)
        if qtype == "attribute":
            value = _single_value(target, kind)
            question, answer, query = T.attribute_question(kind, expression), T.answer_word(value), Query(kind)
        elif qtype == "judge":
            actual = _single_value(target, kind)
            if judge_yes:
                asked = actual
            else:
                have = {_CANON.get(a.lower(), a.lower()) for a in target.attributes}
                asked = rng.choice([v for v in JUDGE_VALUES[kind] if v not in have])
            question, answer, query = T.judge_question(expression, asked), "Yes" if judge_yes else "No", Query(kind, asked)
            steps.append(Step(text=T.attribute_fact(kind, target.name, actual)))
        else:
            question, answer, query = T.object_question(expression), T.answer_word(target.name), Query("name")
        ex = Example(
            id=ex_id,
            image_id=graph.image_id,
            image=image_path,
            width=graph.width,
            height=graph.height,
            question=question,
            type=qtype,
            steps=steps,
            answer=answer,
            answer_box=steps[len(objects) - 1].box,
            source=graph.source,
            query=query,
            provenance={
                "generator": GENERATOR,
                "rewriter": self.rewriter.name,
                "seed": str(seed),
                "path": ">".join(o.id for o in objects),
            },
        )
        ex.question = self.rewriter.rewrite(question, ex)
        return ex

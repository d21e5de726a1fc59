"""Sample relation paths of one image and turn them into GCoT candidates, as MM-GCoT built its data.

For each question family a target object is drawn, then a random walk along the relation graph from
the target (target --on--> man --in--> room) gives a path of 2-4 objects; the steps run anchor-first
(room, man, hat). The walk takes annotated relations first (a relation from boxes only where nothing
annotated goes on), never a predicate twice (so at most one near), never a second annotation of an object already on the
path. The anchor may be named by an aligned region description (`regions`); every other step's phrase
gets the fewest visible attributes that make it pick out one object. A step that cannot be made
unique rejects the candidate as ``ambiguous_expression``, a relation the grammar cannot write as
``unknown_predicate``, and a candidate that breaks a quality rule (`quality`) with that rule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from core.boxes import quantize
from core.schema import EXACT_SOURCES, Example, Query, Rejection, SceneGraph, SceneObject, Step
from pipeline.chains import templates as T
from pipeline.chains.expressions import minimal_attributes
from pipeline.chains.grammar import reads_as
from pipeline.chains.quality import quality_failures
from pipeline.chains.regions import Phrase, tail_objects, usable_phrases
from pipeline.chains.relations import Edge, RelationGraph
from pipeline.chains.rewriter import NoOpRewriter, QuestionRewriter
from pipeline.normalise.attributes import VISIBLE, answer_word, kind_of

# Canonical values offered as the wrong value of a "No" judge question.
JUDGE_VALUES = {
    "color": ("red", "green", "blue", "yellow", "purple", "orange", "white", "black", "gray", "brown", "pink"),
    "material": ("metal", "wood", "rubber", "glass", "plastic"),
}
GENERATOR = "gcot-forge/templates-v2"


@dataclass
class ChainConfig:
    per_type: dict[str, int] = field(default_factory=lambda: {"attribute": 2, "judge": 2, "object": 2})
    tries: int = 3  # walks tried per question slot before giving the slot up
    path_lengths: tuple[int, ...] = (2, 3, 4)  # objects per chain = grounded steps
    path_weights: tuple[float, ...] = (0.45, 0.4, 0.15)  # released test set: mostly 2-3 steps, some 4


def _single_value(obj: SceneObject, kind: str) -> str | None:
    values = [a for a in obj.attributes if kind_of(a) == kind]
    return values[0] if len(set(values)) == 1 else None


def _walk(
    rng: random.Random, graph: SceneGraph, relations: RelationGraph, target: str, length: int, avoid_name: str | None = None
) -> tuple[list[str], list[Edge]]:
    """Random walk from the target; returns (objects target-first, the edges naming each by the next).
    ``avoid_name``: a noun no other object of the path may have (an object question's answer)."""
    objects = {o.id: o for o in graph.objects}
    exact = graph.source in EXACT_SOURCES
    dups = relations.duplicates(graph, exact)  # pairs of objects that annotate one thing
    path, edges = [target], []
    while len(path) < length:
        used = {reads_as(e.predicate, e.inverse) for e in edges}
        options = [
            e for e in relations.out_edges.get(path[-1], [])
            if e.other not in path and reads_as(e.predicate, e.inverse) not in used and objects[e.other].name != avoid_name
            and not (dups and any((e.other, p) in dups for p in path))
        ]
        # annotated relations the grammar can write first; then the rest (geometric ones, and annotated
        # ones the grammar does not know, which reject the candidate and are counted per predicate)
        annotated = [e for e in options if e.origin == "annotated" and e.known]
        options = annotated or options
        if not options:
            break
        e = rng.choice(options)
        path.append(e.other)
        edges.append(e)
    return path, edges


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
        phrases, self.last_region_counts = usable_phrases(graph, relations)
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
                    path, edges = _walk(rng, graph, relations, target.id, length, target.name if qtype == "object" else None)
                    if len(path) < 2:
                        used.add(target.id)  # a lone object cannot anchor a chain
                        continue
                    ex_id = f"{graph.source}-{graph.image_id}-{qtype}-{n}"
                    n += 1
                    ex = self._build(graph, relations, path, edges, qtype, kind, ex_id, image_path, kinds, rng, judge_yes, seed, phrases)
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

    def _build(self, graph, relations, path, edges, qtype, kind, ex_id, image_path, kinds, rng, judge_yes, seed, phrases):
        # Anchor first, as the steps run: objects[i] is named by objects[i-1] through edge_of[i].
        objects = [graph.object(i) for i in reversed(path)]
        edge_of: list[Edge | None] = [None, *reversed(edges)]
        target = objects[-1]
        value = _single_value(target, kind) if qtype != "object" else None
        for i, e in enumerate(edge_of):
            if e is not None and not e.known:
                return Rejection("chains", ex_id, "unknown_predicate",
                                 f"predicate '{e.predicate}' (step {i + 1}, {objects[i].name} and {objects[i - 1].name}) is not in the grammar",
                                 file=image_path)
        anchor_phrases = [p for p in phrases.get(objects[0].id, []) if not tail_objects(p, graph, relations) & set(path)]
        region = rng.choice(anchor_phrases) if len(anchor_phrases) > 1 else (anchor_phrases[0] if anchor_phrases else None)
        asked = value
        if qtype == "judge" and not judge_yes:
            asked = rng.choice([v for v in JUDGE_VALUES[kind] if v not in set(target.attributes)])
        for anchor in ([region, None] if region else [None]):  # a region phrase that breaks a rule gives way
            built = self._steps(graph, relations, objects, edge_of, qtype, kind, value, kinds, anchor, ex_id, image_path)
            if isinstance(built, Rejection):
                return built
            ex = self._example(graph, objects, edge_of, built, qtype, kind, value, asked, judge_yes, ex_id, image_path, seed)
            fails = quality_failures(ex, graph, relations)
            if not fails:
                break
        if fails:
            return Rejection("chains", ex_id, fails[0][0], fails[0][1], file=image_path)
        return ex

    def _example(self, graph, objects, edge_of, built, qtype, kind, value, asked, judge_yes, ex_id, image_path, seed) -> Example:
        steps, expression = built
        target = objects[-1]
        if qtype == "attribute":
            question, answer, query = T.attribute_question(kind, expression), answer_word(value), Query(kind)
        elif qtype == "judge":
            question, answer, query = T.judge_question(expression, asked, target.name), "Yes" if judge_yes else "No", Query(kind, asked)
            steps.append(Step(text=T.attribute_fact(kind, target.name, value)))
        else:
            question, answer, query = T.object_question(expression), answer_word(target.name), Query("name")
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

    def _steps(self, graph, relations, objects, edge_of, qtype, kind, value, kinds, region: Phrase | None, ex_id, image_path):
        """The steps, and the target's noun phrase with every step nested in it (the question's)."""
        steps: list[Step] = []
        nouns: list[str] = []  # the noun each step's phrase uses
        nps: list[str] = []  # each step's noun phrase, the steps before it nested
        for i, obj in enumerate(objects):
            is_target = i == len(objects) - 1
            e = edge_of[i]
            show_name = not (is_target and qtype == "object")
            if i == 0 and region is not None and show_name:
                head, attrs, names = region.render(), region.attributes, region.head
            else:
                # only what can be seen; never the asked kind on the target, never the answer elsewhere
                allowed = [a for a in obj.attributes if kinds.get(a) in VISIBLE and not (is_target and kinds.get(a) == kind) and a != value]
                attrs = minimal_attributes(
                    graph, relations, obj, allowed, show_name, e.predicate if e else None, objects[i - 1].id if i else None, kinds,
                    e.inverse if e else False,
                )
                if attrs is None:
                    rel = f" {e.predicate}" if e else ""
                    return Rejection(
                        "chains", ex_id, "ambiguous_expression",
                        f"step {i + 1} ('{T.phrase(obj.name if show_name else None, allowed)}'{rel}) does not pick out object {obj.id} alone",
                        file=image_path,
                    )
                head, names = T.phrase(obj.name if show_name else None, attrs), obj.name if show_name else None
            box = quantize(obj.box)
            pred, inverse = (e.predicate, e.inverse) if e else (None, False)
            # "the hat on the man"; "the man behind the man with the arm" when both share a noun
            prev_short = (nouns[i - 1] if nouns[i - 1] != (names or obj.name) else nps[i - 1]) if i else None
            text = T.step_sentence(T.named_by(head, pred, inverse, prev_short), names, box)
            steps.append(
                Step(
                    text=text,
                    box=box,
                    object_id=obj.id,
                    name=names,
                    attributes=tuple(attrs),
                    relation=pred,
                    relation_origin=e.origin if e else None,
                    relation_inverse=inverse,
                    region=region.text if (i == 0 and region is not None and show_name) else None,
                )
            )
            nouns.append(names or obj.name)
            nps.append(T.named_by(head, pred, inverse, nps[i - 1] if i else None))
        return steps, nps[-1]

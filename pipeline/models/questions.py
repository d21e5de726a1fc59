"""The GCoT model stages, after verification: question rewriting (MM-GCoT's last stage) and the
answerability judge.

**Rewrite.** The text model gets the templated question and returns a natural one. The rewrite is
used only if it keeps every object word, attribute and relation of the template (or an alias,
`pipeline.wording.ALIASES`), the asked value of a judge question and the kind word of an attribute
question; names the answer no more often than the template does; is one question, not much longer;
reads right (articles, doubled words); and the example with it passes verification again (every rule
of `pipeline.verify`, and no other question of the image the same). Otherwise the template stays and
the reason is recorded in the example's provenance and counted in the card.

**Judge.** The image-text model answers each question from the image alone, with MM-GCoT's plain
prompt. Its answer is compared with the scene graph's (the strict evaluator's normalisation:
case, articles, plurals, synonyms); the verdict is stored per example (``judge.outcome``: agrees,
disagrees, failed; ``judge.answer``) and examples it disagrees with go to the front of the review queue. The judge changes no example.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from core.schema import Example, SceneGraph
from pipeline import wording
from pipeline.chains.grammar import reads_as
from pipeline.chains.relations import RelationGraph
from pipeline.evaluation.strict import DEFAULT_SYNONYMS, normalize_answer
from pipeline.models.client import ModelClient, ModelError, Reply, Request, encode_image, parse_json_field
from pipeline.models.settings import ModelSettings
from pipeline.release.llava import PLAIN_PROMPT
from pipeline.verify import example_failures

REWRITE = "rewrite"
JUDGE = "judge"
DISAGREES = "disagrees"  # judge.outcome of an example the review queue puts first
REWRITE_SCHEMA = {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}
REWRITE_PROMPT = """You rewrite templated questions about an image into natural, fluent English questions.
Keep every object, attribute and relation the template names (a synonym is fine: "grey" for "gray", "to the left of" for "left of"); add nothing; do not answer the question or hint at its answer.

Template: What is the color of the large cylinder right of the ball?
Question: What color is the large cylinder to the right of the ball?

Template: Is the cube on the red tray metal?
Question: Is the cube sitting on the red tray made of metal?

Template: {template}
Reply with JSON only: {{"question": "<the rewritten question>"}}"""
LONGER = 2.0  # a rewrite may be at most this many times the template's words, plus SLACK
SLACK = 8
JUDGE_TOKENS = 32  # a word or phrase
_FACT = re.compile(r"\bis\s+([\w-]+)\.?\s*$")


def rewrite_request(ex: Example, s: ModelSettings) -> Request:
    return Request(REWRITE_PROMPT.format(template=ex.question), schema=REWRITE_SCHEMA, max_tokens=s.model_max_tokens, temperature=s.model_temperature, seed=s.seed)


def template_terms(ex: Example) -> list[str]:
    """What the templated question names: every step's noun and attributes and each relation as the
    text shows it (`grammar.reads_as`: 'on' read backwards shows 'under'), the kind word of an attribute
    question, the asked value of a judge question."""
    terms: list[str] = []
    for step in ex.grounded_steps:
        relation = [reads_as(step.relation, step.relation_inverse)] if step.relation else []
        terms += [*step.attributes, *([step.name] if step.name else []), *relation]
    if ex.query is not None and ex.type == "attribute":
        terms.append(ex.query.kind)
    if ex.query is not None and ex.type == "judge" and ex.query.value:
        terms.append(ex.query.value)
    return [t for t in terms if t]


def answer_terms(ex: Example) -> list[str]:
    """Words that give the answer away: the answer (for a judge question also yes/no and the target's
    actual value, which its last step states: "The color of the cube is blue.")."""
    out = [ex.answer.lower()]
    if ex.type == "judge":
        out += ["yes", "no"]
        last = ex.steps[-1] if ex.steps else None
        m = _FACT.search(last.text) if last is not None and last.box is None else None
        if m:
            out.append(m.group(1).lower())
    return list(dict.fromkeys(out))


def _occurrences(text: str, term: str) -> int:
    return sum(wording.count(text, t) for t in (term, *wording.ALIASES.get(term, ())) if len(wording.words(t)) == 1)


def parse_question(text: str) -> str | None:
    """The question of a reply: the JSON ``question`` field, else a first line that ends with '?'."""
    q = parse_json_field(text, "question")
    if q is None:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        q = lines[0] if lines and lines[0].endswith("?") else None
    return q or None


def rewrite_failures(ex: Example, question: str, template: str | None = None) -> list[tuple[str, str]]:
    """(rule, detail) of every check a rewrite of ``ex``'s templated question fails; empty: usable."""
    template = template or ex.question
    fails = []
    if "\n" in question or not question.endswith("?") or question.count("?") > 1:
        fails.append(("not_one_question", f"not one line ending in one '?': {question!r}"))
    n, limit = len(wording.words(question)), LONGER * len(wording.words(template)) + SLACK
    if n > limit:
        fails.append(("too_long", f"{n} words, at most {limit:g} for a template of {len(wording.words(template))}"))
    dropped = wording.missing(question, template_terms(ex))
    if dropped:
        fails.append(("drops_template_term", f"does not name {', '.join(repr(t) for t in dropped)} of the template: {question!r}"))
    leaks = [t for t in answer_terms(ex) if _occurrences(question, t) > _occurrences(template, t)]
    if leaks:
        fails.append(("reveals_answer", f"names {', '.join(repr(t) for t in leaks)} (the answer is {ex.answer!r}): {question!r}"))
    fails += wording.grammar_failures(question)
    return fails


def _key(question: str) -> str:
    return " ".join(question.lower().split())


def rewrite_questions(examples: Sequence[Example], graphs: dict[str, SceneGraph], relations: dict[str, RelationGraph], client: ModelClient, s: ModelSettings) -> None:
    """Rewrite every example's question in place where the rewrite passes every check; record each
    outcome in the example's provenance and the stage's usage."""
    replies = client.map([rewrite_request(ex, s) for ex in examples], REWRITE)
    taken: dict[str, set[str]] = {}
    for ex in examples:
        taken.setdefault(ex.image_id, set()).add(_key(ex.question))
    for ex, reply in zip(examples, replies):
        if isinstance(reply, ModelError):
            ex.provenance.update({f"{REWRITE}.outcome": "failed", f"{REWRITE}.reason": str(reply)})
            continue
        ex.provenance.update(reply.provenance(REWRITE))
        template = ex.question
        question = parse_question(reply.text)
        fails = rewrite_failures(ex, question, template) if question else [("no_question", "the reply holds no JSON question field and no line ending in '?'")]
        if not fails and _key(question) != _key(template) and _key(question) in taken[ex.image_id]:
            fails = [("duplicate_question", f"another question of image {ex.image_id} reads the same: {question!r}")]
        if not fails:
            ex.question = question
            again = example_failures(ex, graphs.get(ex.image_id), relations.get(ex.image_id))
            if again:
                ex.question = template
                fails = [("fails_verification", f"{again[0][0]}: {again[0][1]}")]
        if fails:
            rule, detail = fails[0]
            ex.provenance.update({f"{REWRITE}.outcome": "template_kept", f"{REWRITE}.reason": f"{rule}: {detail}"})
            continue
        taken[ex.image_id].add(_key(question))
        ex.provenance.update({f"{REWRITE}.outcome": "used", "template_question": template})


def judge_request(ex: Example, image: bytes, s: ModelSettings) -> Request:
    return Request(f"{ex.question}\n{PLAIN_PROMPT}", images=(image,), max_tokens=min(JUDGE_TOKENS, s.model_max_tokens), temperature=s.model_temperature, seed=s.seed)


def judge_verdict(ex: Example, reply: Reply) -> tuple[str, str]:
    """(the judge's answer, "agrees" or "disagrees" with the scene graph's answer; no answer disagrees)."""
    lines = [ln.strip() for ln in reply.text.strip().splitlines() if ln.strip()]
    answer = lines[0] if lines else ""
    agrees = bool(answer) and normalize_answer(answer, DEFAULT_SYNONYMS) == normalize_answer(ex.answer, DEFAULT_SYNONYMS)
    return answer, "agrees" if agrees else DISAGREES


def judge_answers(examples: Sequence[Example], load_image: Callable[[Example], bytes], client: ModelClient, s: ModelSettings) -> None:
    """Ask the image-text model every question with the image alone; store its answer and whether
    it agrees with the scene graph's in each example's provenance."""
    images: dict[str, bytes] = {}
    requests = []
    for ex in examples:
        if ex.image not in images:
            images[ex.image] = encode_image(load_image(ex))
        requests.append(judge_request(ex, images[ex.image], s))
    for ex, reply in zip(examples, client.map(requests, JUDGE)):
        if isinstance(reply, ModelError):
            ex.provenance.update({f"{JUDGE}.outcome": "failed", f"{JUDGE}.reason": str(reply)})
            continue
        answer, verdict = judge_verdict(ex, reply)
        ex.provenance.update({**reply.provenance(JUDGE), f"{JUDGE}.answer": answer[:200], f"{JUDGE}.outcome": verdict})

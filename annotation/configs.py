"""Label Studio labeling configs: GCoT review and LongV-EVAL review.

GCoT: the image; one rectangle per grounded step, labelled ``Step 1`` ... ``Step k``, each with its
step text editable in a per-region text box; the steps without a box, the question and the answer
as editable text; a verdict (accept / fixed / reject) and a comment.
"""

from __future__ import annotations

MAX_STEPS = 8  # longest chain a task can show (ours have at most 4 grounded steps)
STEP_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
VERDICTS = ("accept", "fixed", "reject")


def _verdict_controls(to_name: str, hints: dict[str, str], indent: str) -> str:
    """What every review config ends with and `annotation.tasks.verdict_of` reads: the ``verdict``
    choice, one of `VERDICTS` with its hint, and the ``comment`` text."""
    if tuple(hints) != VERDICTS:
        raise ValueError(f"hints for {tuple(hints)}, expected one for each of {VERDICTS} in that order")
    lines = [
        f'<Choices name="verdict" toName="{to_name}" choice="single-radio" required="true">',
        *(f'  <Choice value="{v}" hint="{hint}"/>' for v, hint in hints.items()),
        "</Choices>",
        f'<TextArea name="comment" toName="{to_name}" rows="2" placeholder="comment (say why when rejecting)"/>',
    ]
    return "\n".join(indent + line for line in lines)


def gcot_review_config(max_steps: int = MAX_STEPS) -> str:
    verdict = _verdict_controls("image", {"accept": "everything is right as it is", "fixed": "I corrected boxes or text", "reject": "the example cannot be fixed"}, " " * 6)
    labels = "\n".join(f'      <Label value="Step {k}" background="{STEP_COLORS[(k - 1) % len(STEP_COLORS)]}"/>' for k in range(1, max_steps + 1))
    return f"""<View>
  <Header value="$type question: check every step's box and text, the question and the answer"/>
  <View style="display: flex; gap: 1em">
    <View style="flex: 65%">
      <Image name="image" value="$image" zoom="true" zoomControl="true"/>
      <RectangleLabels name="box" toName="image" strokeWidth="3">
{labels}
      </RectangleLabels>
    </View>
    <View style="flex: 35%">
      <Header value="Step text (select a box; [box] stands for its coordinates)" size="6"/>
      <TextArea name="step_text" toName="image" perRegion="true" editable="true" rows="2" displayMode="region-list"/>
      <Header value="Steps without a box" size="6"/>
      <TextArea name="unboxed_steps" toName="image" editable="true" rows="2"/>
      <Header value="Question" size="6"/>
      <TextArea name="question" toName="image" editable="true" rows="2" maxSubmissions="1"/>
      <Header value="Answer" size="6"/>
      <TextArea name="answer" toName="image" editable="true" rows="1" maxSubmissions="1"/>
      <Header value="Verdict" size="6"/>
{verdict}
    </View>
  </View>
</View>"""


def longv_review_config() -> str:
    """LongV-EVAL: the video, its drafted caption, and the three edit prompts as editable text."""
    verdict = _verdict_controls("video", {"accept": "all three prompts are right as they are", "fixed": "I corrected a prompt", "reject": "the video cannot be used"}, " " * 2)
    return f"""<View>
  <Header value="Check the three edit prompts of this video: one sentence each, at most 15 words"/>
  <Video name="video" value="$video"/>
  <Header value="What the detector and tracker saw" size="6"/>
  <Text name="caption" value="$caption"/>
  <Header value="Foreground edit prompt (the main subject changed)" size="6"/>
  <TextArea name="foreground" toName="video" editable="true" rows="1" maxSubmissions="1"/>
  <Header value="Background edit prompt (the scene changed)" size="6"/>
  <TextArea name="background" toName="video" editable="true" rows="1" maxSubmissions="1"/>
  <Header value="Style edit prompt ($style_name)" size="6"/>
  <TextArea name="style" toName="video" editable="true" rows="1" maxSubmissions="1"/>
{verdict}
</View>"""

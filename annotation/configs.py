"""Label Studio labeling configs and project instructions: GCoT review and LongV-EVAL review.

GCoT: a line saying why the task is where it is in the queue, the image with one rectangle per
grounded step (labels taken from the task: only the chain's own ``Step 1`` ... ``Step k``, each
usable once, no rotation), the chain's steps listed beside it with their colours and detector IoU,
the selected box's step text editable (``[box]`` stands for its coordinates), the steps without a
box, the question and the answer; a verdict (accept / fixed / reject, with letter hotkeys) and a
comment.
"""

from __future__ import annotations

STEP_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
VERDICTS = ("accept", "fixed", "reject")
# Letters Label Studio 1.23's frontend leaves free: its keymap binds h, v, b, o, e, m, k, w, p, r
# (the rectangle tool) and u, and the step labels take 1-9 (hotkeys it hands out in order).
VERDICT_KEYS = {"accept": "a", "fixed": "f", "reject": "x"}


def _verdict_controls(to_name: str, hints: dict[str, str], indent: str) -> str:
    """What every review config ends with and `annotation.tasks.verdict_of` reads: the ``verdict``
    choice, one of `VERDICTS` with its hint and hotkey, and the ``comment`` text."""
    if tuple(hints) != VERDICTS:
        raise ValueError(f"hints for {tuple(hints)}, expected one for each of {VERDICTS} in that order")
    lines = [
        f'<Choices name="verdict" toName="{to_name}" choice="single-radio" required="true" layout="inline">',
        *(f'  <Choice value="{v}" hotkey="{VERDICT_KEYS[v]}" hint="{hint} (key {VERDICT_KEYS[v]})"/>' for v, hint in hints.items()),
        "</Choices>",
        f'<TextArea name="comment" toName="{to_name}" rows="1" placeholder="comment (say why when rejecting)"/>',
    ]
    return "\n".join(indent + line for line in lines)


def gcot_review_config() -> str:
    verdict = _verdict_controls("image", {"accept": "everything is right as it is", "fixed": "I corrected boxes or text", "reject": "the example cannot be fixed"}, " " * 6)
    keys = ", ".join(f"{k} {v}" for v, k in VERDICT_KEYS.items())
    # The image is capped so that at 1366x768 the verdict and comment under it are on screen without scrolling.
    return f"""<View>
  <Header value="$reason" size="5"/>
  <View style="display: flex; gap: 1em; align-items: flex-start">
    <View style="flex: 3 1 0; min-width: 0">
      <Image name="image" value="$image" zoom="true" zoomControl="true" maxHeight="calc(100vh - 360px)"/>
      <RectangleLabels name="box" toName="image" value="$steps" maxUsages="1" canRotate="false" strokeWidth="3"/>
      <Header value="Verdict ({keys})" size="6"/>
{verdict}
    </View>
    <View style="flex: 2 1 0; min-width: 0">
      <Header value="$type question" size="6"/>
      <TextArea name="question" toName="image" editable="true" rows="1" maxSubmissions="1"/>
      <Header value="Steps ([box] is the step's box on the image)" size="6"/>
      <HyperText name="chain" value="$chain" inline="true"/>
      <Header value="Selected box's step text" size="6"/>
      <TextArea name="step_text" toName="image" perRegion="true" editable="true" rows="2" maxSubmissions="1"/>
      <Header value="Steps without a box" size="6"/>
      <TextArea name="unboxed_steps" toName="image" editable="true" rows="1"/>
      <Header value="Answer" size="6"/>
      <TextArea name="answer" toName="image" editable="true" rows="1" maxSubmissions="1"/>
    </View>
  </View>
</View>"""


def gcot_instructions() -> str:
    """The project's expert instructions (HTML), shown when a reviewer opens the labeling stream."""
    a, f, x = (VERDICT_KEYS[v] for v in VERDICTS)
    return f"""<p>Each task is one grounded chain of thought: a question, steps that each name an object and
its <b>box</b>, and an answer. The line above the image says why the task is where it is in the queue
(tasks whose boxes a detector disagrees with come first: <i>detector IoU 0.00</i> means it found no such object there).</p>
<ul>
<li><b>Boxes</b>: one per step, labelled <i>Step 1</i> ... <i>Step k</i> in the step's colour. Drag a box or its
corners to fix it; each step label can be used once, boxes cannot be rotated. To see each box's step number
and text on the image, turn on <i>Show region labels</i> in Label Studio's settings (the gear; it is remembered).</li>
<li><b>Step texts</b>: select a box to edit its step's text. <code>[box]</code> stands for the box's coordinates:
keep it in the text, move the box instead of typing numbers.</li>
<li><b>Verdict</b> (required): <b>accept</b> (key <code>{a}</code>) when everything is right as it is;
<b>fixed</b> (key <code>{f}</code>) when you corrected a box or a text; <b>reject</b> (key <code>{x}</code>) when the
example cannot be fixed, and say why in the comment. Pressing a selected verdict's key again clears it.</li>
<li>An <b>accepted task with edits counts as fixed</b>: a box you moved by accident is a change. If Label Studio
reopens a draft of yours, check the boxes before you accept.</li>
<li>Submit with <code>Ctrl+Enter</code>.</li>
</ul>"""


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

"""The review UI against a real Label Studio server started by this test module (no mocks of it):
push a release, annotate through the API as a person would, pull, and find exactly those changes."""

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from annotation.review import PushInterrupted, existing_ids, project_title, pull, push
from annotation.server import LS_VENV, LabelStudioServer
from annotation.tasks import flag_reason, from_percent, text_with_box, text_with_placeholder, to_percent
from core.boxes import find_boxes, format_box
from pipeline.detect.crosscheck import review_order
from pipeline.release.arrow import read_examples
from pipeline.steps import BuildConfig, run_plain
from tests.conftest import REPO
from tests.ports import free_port

pytestmark = [pytest.mark.server, pytest.mark.skipif(not (LS_VENV / "bin" / "label-studio").exists(), reason="Label Studio not installed: make labelstudio")]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Cross-checked by the shipped detector, so that flagged tasks lead the queue, as `make annotate` pushes them."""
    out = tmp_path_factory.mktemp("review") / "rel"
    run_plain(BuildConfig(images=10, seed=5, detector="default", out=str(out), work_dir=str(out.parent / "work")))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("ls")
    srv = LabelStudioServer(data, data / "files", port=free_port()).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def pushed(server, release):
    return push(release, server.client(), server.files_root)


def tasks_by_example(client, project_id):
    return {t.data["example_id"]: t for t in client.tasks.list(project=project_id, fields="all")}


def prediction(task):
    p = task.predictions[0]
    return [dict(r) for r in (p.result if hasattr(p, "result") else p["result"])]


def verdict(choice: str, to_name: str = "image") -> dict:
    """The region an annotator's verdict makes in an annotation's result."""
    return {"id": "v", "from_name": "verdict", "to_name": to_name, "type": "choices", "value": {"choices": [choice]}}


def comment(text: str, to_name: str = "image") -> dict:
    return {"id": "c", "from_name": "comment", "to_name": to_name, "type": "textarea", "value": {"text": [text]}}


def test_box_conversion_at_the_border():
    box = (0.125, 0.25, 0.5, 0.375)
    assert from_percent(to_percent(box)) == box
    assert text_with_box("The cup is at [box]", box) == "The cup is at " + format_box(box)


def test_push_prefills_and_is_idempotent(server, release, pushed):
    client = server.client()
    examples = read_examples(sorted((release / "data").glob("*.parquet")))
    assert pushed.pushed == len(examples) and pushed.already == 0
    again = push(release, client, server.files_root)
    assert again.pushed == 0 and again.already == len(examples)
    tasks = tasks_by_example(client, pushed.project_id)
    assert len(tasks) == len(examples) == len(list(client.tasks.list(project=pushed.project_id)))
    ex = examples[0]
    pred = prediction(tasks[ex.id])
    rects = [r for r in pred if r["from_name"] == "box"]
    assert [r["value"]["rectanglelabels"] for r in rects] == [[f"Step {k}"] for k in range(1, len(ex.grounded_steps) + 1)]
    assert from_percent(rects[-1]["value"]) == ex.answer_box
    texts = {r["id"]: r["value"]["text"][0] for r in pred if r["from_name"] == "step_text"}
    assert all("[box]" in t for t in texts.values())
    assert [r["value"]["text"][0] for r in pred if r["from_name"] == "question"] == [ex.question]
    # the labels are the chain's own steps; the reason and the prediction's score come with the task
    data = tasks[ex.id].data
    assert [s["value"] for s in data["steps"]] == [f"Step {k}" for k in range(1, len(ex.grounded_steps) + 1)]
    assert data["reason"] == flag_reason(ex) and tasks[ex.id].predictions[0].score == pytest.approx(ex.detector.min_iou)
    # the image is served from the confined local-files root
    import httpx

    url = server.url + tasks[ex.id].data["image"]
    r = httpx.get(url, headers={"Authorization": f"Token {server.credentials.token}"})
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"


def test_review_round_trip(server, release, pushed, tmp_path):
    client = server.client()
    examples = read_examples(sorted((release / "data").glob("*.parquet")))
    tasks = tasks_by_example(client, pushed.project_id)
    moved, edited, rejected, accepted = examples[0], examples[1], examples[2], examples[3]

    # move the first step's box
    res = prediction(tasks[moved.id])
    rid = next(r["id"] for r in res if r["from_name"] == "box")
    for r in res:
        if r["id"] == rid:
            r["value"] = {**r["value"], "x": r["value"]["x"] + 4.0, "y": r["value"]["y"] + 2.0}
    res.append(verdict("fixed"))
    client.annotations.create(id=tasks[moved.id].id, result=res)
    # edit the last step's text
    res = prediction(tasks[edited.id])
    last = [r for r in res if r["from_name"] == "step_text"][-1]
    last["value"] = {**last["value"], "text": ["The thing reviewers call a gadget is at [box]"]}
    res.append(verdict("fixed"))
    client.annotations.create(id=tasks[edited.id].id, result=res)
    # reject one, accept one as it is
    client.annotations.create(id=tasks[rejected.id].id, result=[
        verdict("reject"),
        comment("the question is unanswerable"),
    ])
    client.annotations.create(id=tasks[accepted.id].id, result=prediction(tasks[accepted.id]) + [
        verdict("accept")])

    s = pull(release, client, tmp_path / "reviewed")
    assert (s.accepted, s.fixed, s.rejected) == (1, 2, 1) and s.open == len(examples) - 4 and s.reconciles
    after = {e.id: e for e in read_examples(sorted((tmp_path / "reviewed" / "data").glob("*.parquet")))}
    assert rejected.id not in after and len(after) == len(examples) - 1
    rej = [json.loads(line) for line in (tmp_path / "reviewed" / "rejections.jsonl").read_text().splitlines()]
    assert {"stage": "review", "id": rejected.id, "rule": "rejected_by_reviewer"}.items() <= next(r for r in rej if r["id"] == rejected.id).items()
    assert "unanswerable" in next(r for r in rej if r["id"] == rejected.id)["detail"]

    m = after[moved.id]
    old = moved.grounded_steps[0].box
    assert m.grounded_steps[0].box == pytest.approx((old[0] + 0.04, old[1] + 0.02, old[2], old[3]), abs=1.5e-3)
    assert find_boxes(m.grounded_steps[0].text)[-1][0] == m.grounded_steps[0].box  # the text carries the new box
    assert m.review.status == "fixed" and m.review.reviewer == server.credentials.username and m.review.reviewed_at
    assert [s.box for s in m.grounded_steps[1:]] == [s.box for s in moved.grounded_steps[1:]]

    e = after[edited.id]
    assert e.grounded_steps[-1].text == "The thing reviewers call a gadget is at " + format_box(edited.answer_box)
    assert e.answer_box == edited.answer_box and e.verification.passed
    assert after[accepted.id].review.status == "accepted" and after[accepted.id].steps == accepted.steps
    untouched = [i for i in after if i not in (moved.id, edited.id, accepted.id)]
    assert all(after[i].review.status == "pending" for i in untouched)
    stats = json.loads((tmp_path / "reviewed" / "stats.json").read_text())
    assert stats["reconciles"] and stats["review"] == {"accepted": 1, "fixed": 2, "pending": len(untouched)}

    # the per-task changelog: who, when, the verdict, the outcome and what changed
    report = json.loads((tmp_path / "reviewed" / "review_report.json").read_text())
    log = {e["example"]: e for e in report["changelog"]}
    assert set(log) == {moved.id, edited.id, rejected.id, accepted.id} and report["accepted_with_edits"] == [] and report["drafts"] == []
    assert log[moved.id]["outcome"] == "fixed" and log[moved.id]["task"] == tasks[moved.id].id and log[moved.id]["reviewer"] == server.credentials.username
    (change,) = log[moved.id]["changes"]  # the text followed the box: one change
    assert change.startswith(f"step {moved.steps.index(moved.grounded_steps[0]) + 1} box moved (IoU ")
    n = edited.steps.index(edited.grounded_steps[-1]) + 1
    assert log[edited.id]["changes"] == [f"step {n} text: {text_with_placeholder(edited.grounded_steps[-1].text)!r} -> 'The thing reviewers call a gadget is at [box]'"]
    assert (log[rejected.id]["outcome"], log[rejected.id]["comment"]) == ("rejected", "the question is unanswerable")
    assert (log[accepted.id]["outcome"], log[accepted.id]["verdict"], log[accepted.id]["changes"]) == ("accepted", "accept", [])


def test_several_annotations_latest_accepted_wins(server, release, pushed, tmp_path):
    client = server.client()
    examples = read_examples(sorted((release / "data").glob("*.parquet")))
    ex = examples[5]
    task = tasks_by_example(client, pushed.project_id)[ex.id]
    res = prediction(task)
    q1 = [dict(r, value={"text": ["First reviewer's question?"]}) if r["from_name"] == "question" else r for r in res]
    q2 = [dict(r, value={"text": ["Second reviewer's question?"]}) if r["from_name"] == "question" else r for r in res]
    client.annotations.create(id=task.id, result=q1 + [verdict("fixed")])
    client.annotations.create(id=task.id, result=q2 + [verdict("fixed")])
    client.annotations.create(id=task.id, result=res + [verdict("reject")])  # a later reject does not win
    s = pull(release, client, tmp_path / "reviewed")
    after = {e.id: e for e in read_examples(sorted((tmp_path / "reviewed" / "data").glob("*.parquet")))}
    assert after[ex.id].question == "Second reviewer's question?"
    assert s.agreement["tasks"] >= 1 and s.agreement["pairs"] >= 3 and s.agreement["mean_box_iou"] == pytest.approx(1.0)


def test_malformed_annotation_is_reported_not_a_crash(server, release, pushed, tmp_path):
    client = server.client()
    examples = read_examples(sorted((release / "data").glob("*.parquet")))
    ex = examples[6]
    task = tasks_by_example(client, pushed.project_id)[ex.id]
    client.annotations.create(id=task.id, result=[
        {"id": "z", "from_name": "box", "to_name": "image", "type": "rectanglelabels", "original_width": ex.width, "original_height": ex.height,
         "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rotation": 0, "rectanglelabels": ["Step 9"]}},
        verdict("fixed")])
    s = pull(release, client, tmp_path / "reviewed")
    bad = [m for m in s.malformed if m["example"] == ex.id]
    assert bad and "Step 9" in bad[0]["reason"]
    assert s.reconciles


def test_drafts_are_listed_apart_never_applied(server, release, pushed, tmp_path):
    """A draft Label Studio saved (a moved box nobody submitted) is in the report, and the example stays as it was."""
    import httpx

    client = server.client()
    examples = read_examples(sorted((release / "data").glob("*.parquet")))
    ex = examples[7]
    task = tasks_by_example(client, pushed.project_id)[ex.id]
    res = prediction(task)
    box = next(r for r in res if r["from_name"] == "box")
    box["value"] = {**box["value"], "x": box["value"]["x"] + 3.0}
    r = httpx.post(f"{server.url}/api/tasks/{task.id}/drafts", json={"result": res, "lead_time": 4.0}, headers={"Authorization": f"Token {server.credentials.token}"})
    assert r.status_code == 201, r.text
    s = pull(release, client, tmp_path / "reviewed")
    (draft,) = [d for d in s.drafts if d["example"] == ex.id]
    assert draft["user"] == server.credentials.username and draft["verdict"] is None and draft["of_annotation"] is None
    assert draft["changes"][0].startswith(f"step {ex.steps.index(ex.grounded_steps[0]) + 1} box moved (IoU ")
    after = {e.id: e for e in read_examples(sorted((tmp_path / "reviewed" / "data").glob("*.parquet")))}
    assert after[ex.id].review.status == "pending" and after[ex.id].steps == ex.steps
    assert json.loads((tmp_path / "reviewed" / "review_report.json").read_text())["drafts"] == s.drafts


def frontend_keymap() -> set[str]:
    """Every hotkey Label Studio's installed frontend binds by default (its keymap in the built JS)."""
    import re

    keys = set()
    for js in LS_VENV.glob("lib/python*/site-packages/web/dist/apps/labelstudio/*.js"):
        text = js.read_text(errors="replace")
        keys |= {k.lower() for k in re.findall(r'element:"[^"]+",label:"[^"]*",key:"([^"]+)"', text)}
    return keys


def test_the_project_keeps_dynamic_labels_free_hotkeys_and_instructions(server, pushed):
    """The labeling config Label Studio stores for the pushed project, read back: the step labels come
    from each task (one use each), no rotation, verdict keys that nothing else binds, instructions shown."""
    import xml.etree.ElementTree as ET

    project = server.client().projects.get(id=pushed.project_id)
    root = ET.fromstring(project.label_config)
    (rect,) = root.iter("RectangleLabels")
    assert (rect.get("value"), rect.get("maxUsages"), rect.get("canRotate"), list(rect)) == ("$steps", "1", "false", [])
    keys = [c.get("hotkey") for c in root.iter("Choice")]
    bound = frontend_keymap()
    assert len(bound) > 30 and "r" in bound  # the keymap was found: R is the rectangle tool
    assert len(set(keys)) == len(keys) == 3 and not set(keys) & bound and not any(k.isdigit() for k in keys)  # digits: the step labels
    assert project.show_instruction and all(w in project.expert_instruction for w in ("[box]", "accept", "fixed", "reject", "counts as fixed"))
    assert any(h.get("value") == "$reason" for h in root.iter("Header"))


def test_server_stopped_mid_push_then_the_next_push_completes(server, tmp_path):
    out = tmp_path / "rel2"
    run_plain(BuildConfig(images=6, seed=9, out=str(out), work_dir=str(tmp_path / "w")))
    client = server.client()
    real = client.projects.import_tasks
    calls = []

    def import_then_stop(**kw):
        if calls:
            server.stop()  # the server goes away between two batches
        calls.append(len(kw["request"]))
        return real(**kw)

    client.projects.import_tasks = import_then_stop
    with pytest.raises(PushInterrupted, match="push again"):
        push(out, client, server.files_root, batch=5)
    server.start()
    client = server.client()
    s = push(out, client, server.files_root, batch=5)
    project = next(p for p in client.projects.list() if p.title == project_title(out))
    ids = existing_ids(client, project.id)
    n = len(read_examples(sorted((out / "data").glob("*.parquet"))))
    assert s.already == 5 and s.pushed == n - 5 and len(ids) == n
    assert len(list(client.tasks.list(project=project.id))) == n  # nothing twice


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium not installed (make test installs it)")
@contextmanager
def logged_in_page(server, width: int = 1400, height: int = 900):
    """Debian's chromium (never a downloaded browser), logged in to the test server."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"{server.url}/user/login/")
        page.fill("input[name=email]", server.credentials.username)
        page.fill("input[name=password]", server.credentials.password)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(lambda u: "/login" not in u, timeout=60_000)
        try:
            yield page
        finally:
            browser.close()


def test_browser_flagged_task_accept_hotkey_then_pull_lists_the_change(server, release, tmp_path):
    """As a reviewer in Chromium: the stream opens with the instructions and the least-agreement task; it
    says why it is flagged, offers only the chain's step labels, numbers each box (Show region labels on),
    lists the step texts and cannot rotate a box; a box dragged, the accept key pressed and the task
    submitted, the pull's changelog lists it as accepted with edits, counted as fixed."""
    client = server.client()
    s = push(release, client, server.files_root, title="GCoT browser check")  # fresh tasks, no annotations
    examples = {e.id: e for e in read_examples(sorted((release / "data").glob("*.parquet")))}
    ex = review_order(list(examples.values()))[0]
    assert ex.detector.flagged, "the release is meant to have a flagged example"
    k = len(ex.grounded_steps)
    shots = REPO / "test-output"
    shots.mkdir(exist_ok=True)
    with logged_in_page(server, width=1366, height=768) as page:
        page.goto(f"{server.url}/projects/{s.project_id}/data?labeling=1")
        page.wait_for_selector("text=Labeling Instructions", timeout=90_000)
        assert "counts as fixed" in page.inner_text("body")
        page.keyboard.press("Escape")
        page.wait_for_selector("text=Labeling Instructions", state="hidden")
        page.wait_for_selector("canvas", timeout=90_000)
        page.wait_for_function("() => window.Konva && Konva.stages.length && Konva.stages[0].find('Rect').length", timeout=60_000)
        body = page.inner_text("body")
        assert flag_reason(ex) in body and flag_reason(ex).startswith("Flagged: Step")
        assert page.locator(".lsf-label__text").all_inner_texts() == [f"Step {i}" for i in range(1, k + 1)]
        assert all(text_with_placeholder(st.text) in body for st in ex.grounded_steps)
        page.click("button[aria-label=Settings]")
        page.get_by_text("Show region labels").click()
        page.keyboard.press("Escape")
        page.wait_for_selector(".lsf-settings-modal", state="hidden")  # until then it takes the mouse
        drawn = page.evaluate("() => Konva.stages[0].find('Text').map(t => t.text())")
        for i, st in enumerate(ex.grounded_steps, 1):  # "2: Step 2: The ring near the cube is at [box]" beside box 2
            assert f"{i}: Step {i}: {text_with_placeholder(st.text)}" in drawn, drawn
        # drag a box whose centre no other box covers
        rects = page.evaluate("""() => { const s = Konva.stages[0]; const o = s.container().getBoundingClientRect();
            return s.find('Rect').filter(r => /^step\\d+#/.test(r.name())).map(r => ({id: r.name().split('#')[0], ...r.getClientRect(), ox: o.x, oy: o.y})) }""")
        def centre(r):
            return r["ox"] + r["x"] + r["width"] / 2, r["oy"] + r["y"] + r["height"] / 2
        def inside(p, r):
            return r["ox"] + r["x"] <= p[0] <= r["ox"] + r["x"] + r["width"] and r["oy"] + r["y"] <= p[1] <= r["oy"] + r["y"] + r["height"]
        target = next(r for r in rects if not any(inside(centre(r), o) for o in rects if o is not r))
        x, y = centre(target)
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 12, y + 8, steps=6)
        page.mouse.up()
        assert not any(page.evaluate("() => Konva.stages[0].find('Transformer').map(t => t.rotateEnabled())")), "rotation is off"
        page.keyboard.press("u")  # unselect the box, then the verdict by its key
        page.keyboard.press("a")
        assert page.locator("input[type=radio]").evaluate_all("els => els.map(e => e.checked)") == [True, False, False]
        bar = page.locator("button[aria-label='Submit current annotation']").bounding_box()["y"]
        for control in page.locator("input[type=radio]").all() + [page.locator("[placeholder^=comment]").first]:  # no scrolling at 1366x768
            box = control.bounding_box()
            assert box and 0 <= box["y"] and box["y"] + box["height"] <= bar, (box, bar)
        page.screenshot(path=str(shots / "label_studio_task.png"))
        page.click("button[aria-label='Submit current annotation']")
        page.wait_for_function(f"() => !document.body.innerText.includes({flag_reason(ex)!r})", timeout=60_000)  # the stream moved on
    s2 = pull(release, client, tmp_path / "reviewed", title="GCoT browser check")
    report = json.loads((tmp_path / "reviewed" / "review_report.json").read_text())
    (entry,) = [e for e in report["changelog"] if e["example"] == ex.id]
    step = int(target["id"].removeprefix("step"))
    assert (entry["verdict"], entry["outcome"], entry["reviewer"]) == ("accept", "fixed", server.credentials.username)
    assert len(entry["changes"]) == 1 and entry["changes"][0].startswith(f"step {step} box moved (IoU ")
    assert [e["example"] for e in report["accepted_with_edits"]] == [ex.id] and s2.fixed == 1


def test_review_flows(server, release, pushed, prefect_harness, tmp_path):
    from gcot.flows.review import pull_review, push_review

    s = push_review(release=str(release), data_dir=str(server.data_dir), port=server.port)
    assert s["pushed"] == 0 and s["already"] == pushed.examples
    p = pull_review(release=str(release), out=str(tmp_path / "reviewed"), data_dir=str(server.data_dir), port=server.port)
    assert p["reconciles"] and p["pushed"] == pushed.examples and (tmp_path / "reviewed" / "review_report.json").is_file()


def test_both_labeling_configs_are_accepted_by_label_studio(server):
    from annotation.configs import gcot_review_config, longv_review_config

    client = server.client()
    for title, xml in (("config check gcot", gcot_review_config()), ("config check longv", longv_review_config())):
        p = client.projects.create(title=title, label_config=xml)
        assert client.projects.get(id=p.id).label_config.strip() == xml.strip()


@pytest.fixture(scope="module")
def longv_release(tmp_path_factory):
    from pipeline.longv.steps import LongVConfig
    from pipeline.longv.steps import run_plain as run_longv

    out = tmp_path_factory.mktemp("longv") / "rel"
    run_longv(LongVConfig(videos="synthetic", count=2, seconds=6, seed=2, out=str(out), work_dir=str(out.parent / "work")))
    return out


def test_longv_review_round_trip(server, longv_release, tmp_path):
    from pipeline.longv.release import read_items, read_prompt_file

    client = server.client()
    items = {i.id: i for i in read_items(longv_release)}
    s = push(longv_release, client, server.files_root)
    assert (s.examples, s.pushed, s.already) == (2, 2, 0)
    again = push(longv_release, client, server.files_root)
    assert (again.pushed, again.already) == (0, 2)  # idempotent
    tasks = tasks_by_example(client, s.project_id)
    fixed_id, rejected_id = sorted(items)
    pre = {r["from_name"]: r["value"]["text"][0] for r in prediction(tasks[fixed_id])}
    assert pre == {k: getattr(items[fixed_id], k) for k in ("foreground", "background", "style")}  # pre-filled
    assert tasks[fixed_id].data["video"].endswith(f"videos/{fixed_id}.mp4")
    edited = "A silver fox trots left across the frame."
    res = [r if r["from_name"] != "foreground" else {**r, "value": {"text": [f'"{edited}"']}} for r in prediction(tasks[fixed_id])]
    client.annotations.create(id=tasks[fixed_id].id, result=res + [verdict("fixed", "video")])
    client.annotations.create(id=tasks[rejected_id].id, result=[
        verdict("reject", "video"),
        comment("the cast is mislabelled", "video"),
    ])
    import httpx  # a draft Label Studio saved and nobody submitted: listed, never applied

    drafted = [r if r["from_name"] != "style" else {**r, "value": {"text": ['"A draft nobody sent."']}} for r in prediction(tasks[rejected_id])]
    httpx.post(f"{server.url}/api/tasks/{tasks[rejected_id].id}/drafts", json={"result": drafted}, headers={"Authorization": f"Token {server.credentials.token}"}).raise_for_status()
    p = pull(longv_release, client, tmp_path / "reviewed")
    assert [(d["example"], d["changes"]) for d in p.drafts] == [(rejected_id, ["style"])]
    assert (p.accepted, p.fixed, p.rejected, p.open) == (0, 1, 1, 0) and p.reconciles
    log = {e["example"]: e for e in p.changelog}
    assert (log[fixed_id]["outcome"], log[fixed_id]["changes"], log[fixed_id]["reviewer"]) == ("fixed", ["foreground"], server.credentials.username)
    assert (log[rejected_id]["outcome"], log[rejected_id]["comment"]) == ("rejected", "the cast is mislabelled")
    out = tmp_path / "reviewed"
    (after,) = read_items(out)
    assert after.id == fixed_id and after.foreground == edited and after.review.status == "fixed"
    assert after.review.reviewer == server.credentials.username and after.provenance["review_changes"] == "foreground"
    assert read_prompt_file(out / "foreground" / f"{fixed_id}.txt") == edited
    assert after.background == items[fixed_id].background  # untouched prompts stay
    assert not (out / "videos" / f"{rejected_id}.mp4").exists() and (out / "videos" / f"{fixed_id}.mp4").is_file()
    rej = [json.loads(line) for line in (out / "rejections.jsonl").read_text().splitlines()]
    assert any(r["id"] == rejected_id and r["rule"] == "rejected_by_reviewer" and "mislabelled" in r["detail"] for r in rej)


def test_browser_plays_the_longv_video_with_its_prompts(server, longv_release):
    from pipeline.longv.release import read_items

    s = push(longv_release, server.client(), server.files_root, title="LongV-EVAL browser check")  # fresh tasks, no annotations
    task = next(iter(tasks_by_example(server.client(), s.project_id).values()))
    item = next(i for i in read_items(longv_release) if i.id == task.data["example_id"])
    with logged_in_page(server, height=1000) as page:
        page.goto(f"{server.url}/projects/{s.project_id}/data?tab=0&task={task.id}")
        page.wait_for_selector("video", state="attached", timeout=90_000)
        page.wait_for_function("() => document.querySelector('video').readyState >= 2", timeout=60_000)
        duration = page.evaluate("() => document.querySelector('video').duration")
        page.screenshot(path=str(REPO / "test-output" / "label_studio_longv_task.png"))
        body = page.inner_text("body")
    assert duration == pytest.approx(item.duration, abs=0.2)  # the browser decoded the served H.264
    assert item.foreground in body and item.style in body and item.caption in body  # pre-filled

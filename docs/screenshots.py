"""Remake the README's screenshots: the review task in Label Studio and a build's run page in Prefect.

Everything is real and local: a detector-checked synthetic release, Label Studio from
.venv-labelstudio and a Prefect server with its UI, each started in a temporary folder, and Debian's
Chromium (never a downloaded browser). The PNGs are written beside this script, palette-compressed
to stay small (<= 300 KB each):

    docs/review-task-1600x1000.png   the task screen at 1600x1000 (region labels on, a box selected)
    docs/review-task-1366x768.png    the same at 1366x768: the verdict and comment without scrolling
    docs/prefect-run-1600x1000.png   a build-gcot flow run's page (logs, task runs by shard)

    .venv/bin/python docs/screenshots.py      (about 3 minutes on 2 cores; not part of the test run)
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
WORK = Path(tempfile.mkdtemp(prefix="gcot-screenshots-"))
os.environ["PREFECT_HOME"] = str(WORK / "prefect")  # before Prefect is imported: a home of its own
os.environ.pop("PREFECT_API_URL", None)

from core import env  # noqa: E402

env.apply()

MAX_BYTES = 300_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def save_png(png: bytes, path: Path) -> None:
    """A screenshot as a 256-colour optimised PNG (screens are flat colour: it keeps them legible)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    img.save(path, optimize=True)
    size = path.stat().st_size
    print(f"  {path.relative_to(DOCS.parent)}: {img.size[0]}x{img.size[1]}, {size // 1000} KB")
    if size > MAX_BYTES:
        raise SystemExit(f"{path} is {size} bytes, over {MAX_BYTES}")


def label_studio_shots(browser, release: Path) -> None:
    from annotation.review import push
    from annotation.server import LabelStudioServer
    from tests.ports import free_port

    srv = LabelStudioServer(WORK / "ls", WORK / "ls" / "files", port=free_port()).start()
    try:
        s = push(release, srv.client(), srv.files_root)
        for width, height in ((1600, 1000), (1366, 768)):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{srv.url}/user/login/")
            page.fill("input[name=email]", srv.credentials.username)
            page.fill("input[name=password]", srv.credentials.password)
            page.click("button[type=submit], input[type=submit]")
            page.wait_for_url(lambda u: "/login" not in u, timeout=60_000)
            page.goto(f"{srv.url}/projects/{s.project_id}/data?labeling=1")  # the stream: least agreement first
            page.wait_for_selector("text=Labeling Instructions", timeout=90_000)
            page.keyboard.press("Escape")
            page.wait_for_selector("text=Labeling Instructions", state="hidden")
            page.wait_for_function("() => window.Konva && Konva.stages.length && Konva.stages[0].find('Rect').length", timeout=60_000)
            page.click("button[aria-label=Settings]")  # a fresh browser context: the setting is off again
            page.get_by_text("Show region labels").click()
            page.keyboard.press("Escape")
            page.wait_for_selector(".lsf-settings-modal", state="hidden")
            page.locator(".lsf-label__text", has_text="Step 2").first.wait_for()
            page.get_by_text("Step 2", exact=True).last.click()  # select a box: its step text opens beside the image
            page.wait_for_timeout(1500)
            save_png(page.screenshot(), DOCS / f"review-task-{width}x{height}.png")
            page.close()
    finally:
        srv.stop()


def prefect_shot(browser) -> None:
    from gcot.flows.serve import start_server, stop_server
    from tests.ports import free_port

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server = start_server("127.0.0.1", port, log_file=WORK / "prefect-server.log", env={**os.environ, "PREFECT_UI_ENABLED": "true"})
    try:
        os.environ["PREFECT_API_URL"] = api
        from gcot.flows.build_gcot import build_gcot
        from pipeline.steps import BuildConfig

        state = build_gcot(BuildConfig(images=300, seed=7, shard_size=50, out=str(WORK / "releases" / "demo"), work_dir=str(WORK / "work")), return_state=True)
        run_id = state.state_details.flow_run_id
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/runs/flow-run/{run_id}")
        try:
            page.wait_for_selector("text=release: writing", timeout=90_000)  # the Logs tab has the run's lines
        finally:
            page.wait_for_timeout(2000)
            save_png(page.screenshot(), DOCS / "prefect-run-1600x1000.png")
        page.close()
    finally:
        stop_server(server)


def main() -> None:
    import argparse

    from playwright.sync_api import sync_playwright

    from pipeline.steps import BuildConfig, run_plain

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("label-studio", "prefect"), help="remake one of the two only")
    a = ap.parse_args()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            if a.only != "prefect":
                release = WORK / "releases" / "checked"
                print("building a detector-checked release (12 synthetic scenes) ...", flush=True)
                run_plain(BuildConfig(images=12, seed=5, detector="default", out=str(release), work_dir=str(WORK / "work-checked")))
                print("Label Studio task screen ...", flush=True)
                label_studio_shots(browser, release)
            if a.only != "label-studio":
                print("Prefect run page ...", flush=True)
                prefect_shot(browser)
            browser.close()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

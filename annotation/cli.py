"""`gcot review serve|push|pull` (also ``python -m annotation ...``): the review UI from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import CliSubCommand

from core import env
from core.cli import Command, CommandFailed, Group

DATA_DIR = env.REPO / ".labelstudio"


class ServerOptions(Command):
    data_dir: Path = Field(DATA_DIR, description="Label Studio's data: SQLite, credentials, served images")
    port: int = Field(8080, description="Label Studio's port on 127.0.0.1")

    def server(self):
        from annotation.server import LabelStudioServer

        return LabelStudioServer(self.data_dir, Path(self.data_dir) / "files", port=self.port)

    def running(self):
        server = self.server()
        if not server.healthy():
            raise CommandFailed(f"no Label Studio at {server.url}; start it with `make annotate` (gcot review serve)")
        return server


class ServeReview(ServerOptions):
    """Start Label Studio (and push a release), print the URL and how to log in; Ctrl-C stops it.

    Example:
      gcot review serve --push releases/demo
    """

    push: str | None = Field(None, description="a release folder to push once the server is up")

    def run(self) -> int:
        from annotation.review import push
        from annotation.server import ReviewServerError

        server = self.server()
        try:
            print(f"starting Label Studio at {server.url} (data: {server.data_dir}) ...", flush=True)
            server.start()
        except ReviewServerError as e:
            raise CommandFailed(str(e)) from None
        try:
            if self.push:
                s = push(self.push, server.client(), server.files_root)
                print(f"pushed {s.pushed} new tasks ({s.already} already there): {s.url}")
            print(f"\nLabel Studio: {server.url}\nLog in as {server.credentials.username}; the password is in "
                  f"{Path(self.data_dir) / 'credentials.json'} (or GCOT_LS_PASSWORD). Ctrl-C stops the server.", flush=True)
            while server.proc and server.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        return 0


class PushReview(ServerOptions):
    """Push a release to the running Label Studio (idempotent: tasks already there are not pushed twice).

    Example:
      gcot review push --release releases/demo
    """

    release: str = Field(description="the release folder to push")

    def run(self) -> int:
        from annotation.review import PushInterrupted, push

        server = self.running()
        try:
            s = push(self.release, server.client(), server.files_root)
        except (PushInterrupted, FileNotFoundError) as e:
            raise CommandFailed(str(e)) from None
        print(json.dumps(s.__dict__, indent=2))
        return 0


class PullReview(ServerOptions):
    """Pull the reviews and write the reviewed release (a new folder).

    Example:
      gcot review pull --release releases/demo --out releases/demo-reviewed
    """

    release: str = Field(description="the release folder that was pushed")
    out: str | None = Field(None, description="the reviewed release's folder; none: <release>-reviewed")
    overwrite: bool = Field(False, description="replace the reviewed release already at --out (only one this tool wrote; never the pulled release or a folder it did not write)")

    def run(self) -> int:
        from annotation.review import pull, pull_guard
        from core.guard import OutputRefused

        out = self.out or f"{Path(self.release).resolve()}-reviewed"
        try:
            guard = pull_guard(self.release, out, self.overwrite, (("Label Studio's data folder", self.data_dir),))
            guard.check()  # before the server is asked anything
            server = self.running()
            s = pull(self.release, server.client(), out, guard=guard)
        except (LookupError, FileNotFoundError, OutputRefused) as e:
            raise CommandFailed(str(e)) from None
        print(json.dumps(s.counts(), indent=2))  # the per-task changelog is in the release's review_report.json
        return 0


class Review(Group):
    """Review GCoT chains and LongV-EVAL prompts in Label Studio: start the server, push a release, pull
    the reviews into a new release."""

    serve: CliSubCommand[ServeReview] = Field(description="start Label Studio (and push a release), print the URL and how to log in")
    push: CliSubCommand[PushReview] = Field(description="push a release to the running server (idempotent)")
    pull: CliSubCommand[PullReview] = Field(description="pull reviews and write the reviewed release")

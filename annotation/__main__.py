"""``python -m annotation serve|push|pull --help``: the review UI from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core import env

env.apply()

DATA_DIR = env.REPO / ".labelstudio"


def _server(a):
    from annotation.server import LabelStudioServer

    return LabelStudioServer(a.data_dir, Path(a.data_dir) / "files", port=a.port)


def cmd_serve(a) -> int:
    from annotation.review import push
    from annotation.server import ReviewServerError

    server = _server(a)
    try:
        print(f"starting Label Studio at {server.url} (data: {server.data_dir}) ...", flush=True)
        server.start()
    except ReviewServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        if a.push:
            s = push(a.push, server.client(), server.files_root)
            print(f"pushed {s.pushed} new tasks ({s.already} already there): {s.url}")
        print(f"\nLabel Studio: {server.url}\nLog in as {server.credentials.username}; the password is in "
              f"{Path(a.data_dir) / 'credentials.json'} (or GCOT_LS_PASSWORD). Ctrl-C stops the server.", flush=True)
        while server.proc and server.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _running(a):
    server = _server(a)
    if not server.healthy():
        print(f"error: no Label Studio at {server.url}; start it with `make annotate`", file=sys.stderr)
        return None
    return server


def cmd_push(a) -> int:
    from annotation.review import PushInterrupted, push

    server = _running(a)
    if server is None:
        return 2
    try:
        s = push(a.release, server.client(), server.files_root)
    except (PushInterrupted, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(s.__dict__, indent=2))
    return 0


def cmd_pull(a) -> int:
    from annotation.review import pull

    server = _running(a)
    if server is None:
        return 2
    try:
        s = pull(a.release, server.client(), a.out or f"{Path(a.release).resolve()}-reviewed")
    except (LookupError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(s.report(), indent=2))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m annotation", description="Review GCoT chains in Label Studio: start the server, push a release, pull the reviews into a new release.")
    p.add_argument("--data-dir", default=str(DATA_DIR), help="Label Studio data (SQLite, credentials, served images) [default: %(default)s]")
    p.add_argument("--port", type=int, default=8080, help="[default: %(default)s]")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="start Label Studio (and push a release), print the URL and how to log in")
    s.add_argument("--push", default=None, help="release folder to push once the server is up")
    s.set_defaults(func=cmd_serve)
    s = sub.add_parser("push", help="push a release to the running server (idempotent)")
    s.add_argument("--release", required=True)
    s.set_defaults(func=cmd_push)
    s = sub.add_parser("pull", help="pull reviews and write the reviewed release")
    s.add_argument("--release", required=True)
    s.add_argument("--out", default=None, help="[default: <release>-reviewed]")
    s.set_defaults(func=cmd_pull)
    a = p.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())

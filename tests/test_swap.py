"""Swapping a release into place (core/swap.py): no moment without one at the path, a crash leaves the old one
intact, and the aside folders of runs that died are removed by the next run, those of live runs left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from core.guard import MARKER, OutputGuard
from core.shards import write_atomically
from core.swap import aside_folder, clean_stale, exchange, replace_folder
from tests.conftest import REPO
from tests.digests import file_digests


def release(folder, text: str):
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(text)
    return folder


def test_exchange_trades_two_folders_in_one_step(tmp_path):
    a, b = release(tmp_path / "a", "A"), release(tmp_path / "b", "B")
    exchange(a, b)
    assert (a / "README.md").read_text() == "B" and (b / "README.md").read_text() == "A"
    with pytest.raises(FileNotFoundError):
        exchange(a, tmp_path / "missing")


# A reader in its own process (the two cores run it beside the swaps): how often the path held nothing.
READER = textwrap.dedent("""
    import os, sys, time
    path, stop = sys.argv[1], sys.argv[2]
    misses = looks = 0
    while not os.path.exists(stop):
        looks += 1
        if not os.path.isfile(os.path.join(path, "README.md")):
            misses += 1
    print(misses, looks)
""")


def count_gaps(tmp_path, swaps: int, atomic: bool) -> tuple[int, int]:
    out = release(tmp_path / "rel", "0")
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(out), str(stop)], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # the reader is looking
    for i in range(swaps):
        new = release(tmp_path / f".rel.tmp-{i:08x}", str(i + 1))
        replace_folder(new, out, atomic=atomic)
    stop.touch()
    misses, looks = map(int, reader.communicate(timeout=60)[0].split())
    assert (out / "README.md").read_text() == str(swaps) and sorted(os.listdir(tmp_path)) == ["rel", "stop"]
    return misses, looks


def test_the_swap_leaves_no_moment_without_a_release(tmp_path):
    misses, looks = count_gaps(tmp_path, 400, atomic=True)
    assert looks > 1000 and misses == 0, (misses, looks)  # benchmarks/bench_swap.py: two renames missed 515 looks a million


def test_a_crash_mid_release_leaves_the_old_one_and_the_next_run_clears_its_leftovers(tmp_path):
    out = tmp_path / "rel"
    write_atomically(out, lambda tmp: (tmp / "README.md").write_text("first"))
    before = file_digests(out)
    # a real process dies (SIGKILL) while it fills the aside folder: no handler runs, nothing is tidied
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from core.guard import OutputGuard
        from core.shards import write_atomically
        def fill(tmp):
            (tmp / "README.md").write_text("second, half written")
            os.kill(os.getpid(), signal.SIGKILL)
        write_atomically({str(out)!r}, fill, OutputGuard({str(out)!r}, "folder", overwrite=True))
    """)
    r = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert r.returncode == -signal.SIGKILL
    assert file_digests(out) == before  # the previous release, as it was
    (left,) = [p for p in tmp_path.iterdir() if p.name.startswith(".rel.tmp-")]
    assert (left / "README.md").read_text() == "second, half written"
    write_atomically(out, lambda tmp: (tmp / "README.md").write_text("third"), OutputGuard(out, "folder", overwrite=True))
    assert sorted(os.listdir(tmp_path)) == ["rel"] and (out / "README.md").read_text() == "third" and (out / MARKER).is_file()


def test_the_aside_folder_of_a_live_run_is_left_alone(tmp_path):
    out = tmp_path / "rel"
    old = tmp_path / ".rel.old-0badf00d"  # from a run that died between the two renames of an older version
    old.mkdir()
    (old / "stats.json").write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from core.swap import aside_folder
        with aside_folder({str(out)!r}) as tmp:
            print(tmp.name, flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        busy = holder.stdout.readline().strip()
        (tmp_path / "unrelated.tmp-12345678").mkdir()  # not an aside name of this release
        removed, in_use = clean_stale(out)
        assert removed == [".rel.old-0badf00d"] and in_use == [busy]
        assert sorted(os.listdir(tmp_path)) == sorted([busy, "unrelated.tmp-12345678"])
    finally:
        holder.kill()
        holder.wait()
    removed, in_use = clean_stale(out)  # its process is gone: so is its lock
    assert removed == [busy] and in_use == []


def test_an_aside_folder_is_made_and_locked_in_one_step(tmp_path):
    out = tmp_path / "rel"
    with aside_folder(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".rel.tmp-")
        assert clean_stale(out) == ([], [tmp.name])
    assert clean_stale(out) == ([tmp.name], [])

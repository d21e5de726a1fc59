"""What "the same bytes" means in the tests: every file below a folder by its path, with its SHA-256."""

import hashlib
from pathlib import Path


def file_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

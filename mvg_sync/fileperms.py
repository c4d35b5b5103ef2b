"""Owner-only folders (0700) and files (0600) for everything that may hold patient data (issue 14)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077


def restrict_umask() -> int:
    """Make every file this process creates from now on owner-only; returns the old umask.

    Called at each entry point (CLI, flows, sandbox) because the state, snapshots, quarantine,
    landing copy and reports hold personnummer, and third-party writers (DuckDB, Parquet, GX)
    create files with 0666 & ~umask.
    """
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path | str) -> Path:
    """Create `path` and its missing parents 0700 whatever the umask; make `path` itself 0700.

    Folders that already existed above `path` are left alone (they may be /tmp or a home).
    """
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by another process
            pass
        _chmod(folder, DIR_MODE)
    _chmod(path, DIR_MODE)
    return path


def private_file(path: Path | str) -> None:
    """Make an existing file 0600 (a file another library wrote); a missing one is skipped."""
    _chmod(Path(path), FILE_MODE)


def private_tree(root: Path | str) -> None:
    """Every folder under `root` (itself included) 0700 and every file 0600.

    For trees third-party code writes (GX Data Docs, Parquet datasets). Symlinks are left alone:
    chmod would follow them out of the tree.
    """
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        return
    _chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            child = Path(folder, name)
            if not child.is_symlink():
                _chmod(child, DIR_MODE)
        for name in files:
            child = Path(folder, name)
            if not child.is_symlink():
                _chmod(child, FILE_MODE)


def _chmod(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return
    if current != mode:
        os.chmod(path, mode)

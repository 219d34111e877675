"""Run folders: atomic writes, a manifest that says whether the run finished."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.foundations.errors import PrivsimError, shown

RUN_FILES = ("config.yaml", "manifest.json", "metrics.parquet", "groups.parquet",
             "agents.parquet", "events.parquet")
PACKAGES = ("privsim", "mesa", "torch", "numpy", "pandas", "scikit-learn", "xgboost-cpu",
            "pyarrow", "pydantic", "networkx", "matplotlib")


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Python, platform and the versions of the packages a run depends on."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def privsim_version() -> str:
    """The installed privsim version (what a checkpoint must match)."""
    try:
        return metadata.version("privsim")
    except metadata.PackageNotFoundError:  # pragma: no cover - always installed
        return "unknown"


def git_commit() -> str | None:
    """The commit of the source tree privsim runs from (with "+changes" when it has
    uncommitted edits), or None outside a git checkout or without git."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                  "--untracked-files=no"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+changes" if changes else head or None


def folder_name(name: str) -> str:
    """`name` as one safe folder-name component: letters, digits, '.', '_' and '-' only
    (anything else becomes '-'), no leading dot, so it cannot leave its parent folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return safe[:100] or "run"


def new_run_dir(base: Path, name: str) -> Path:
    """Create `base/<name>-<timestamp>` (with a counter if it exists); `name` is made a safe
    single folder name first, so the folder is always inside `base`."""
    name = folder_name(name)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        path = base / (f"{name}-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {base}")


def check_writable(folder: Path) -> None:
    """Refuse, before any work, an output folder that cannot be written: `folder` or, if it
    does not exist yet, the nearest existing folder above it, where it would be created."""
    if "\0" in str(folder):  # pathlib reads such a name as missing, then fails to create it
        raise PrivsimError(f"{shown(str(folder), 300)}: a folder name cannot hold a NUL "
                           "character; choose another --out or output.dir")
    existing = folder.absolute()
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except (OSError, ValueError) as exc:  # a name too long, a NUL, a folder not to enter
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise PrivsimError(f"{shown(str(folder), 300, quote=False)}: cannot be an output "
                           f"folder ({shown(str(reason), quote=False)}); choose another "
                           "--out or output.dir") from None
    if not existing.is_dir():
        raise PrivsimError(f"{existing}: not a folder, so {folder} cannot be created there")
    try:  # a real write: permissions, read-only mounts and full quotas all show here
        with tempfile.TemporaryFile(dir=existing, prefix=".privsim-probe-"):
            pass
    except OSError as exc:
        raise PrivsimError(f"{existing}: not writable ({exc.strerror}), so no run can be "
                           f"written to {folder}; choose another --out or output.dir") from None


def _umask() -> int:
    """The process's umask (read by setting it, then put back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file in `path`'s folder that is renamed over `path` when the block ends
    without error (and removed when it fails): readers never see a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp's file is owner-only; results follow the user's umask like any file.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_text(path: Path, text: str) -> None:
    """Atomically write a text file."""
    _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write JSON (NaN written as null)."""
    write_text(path, json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n")


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Atomically write a Parquet table."""
    _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False, engine="pyarrow"))


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """A run's manifest."""
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item") and callable(value.item):
        return _json_safe(value.item())
    return value

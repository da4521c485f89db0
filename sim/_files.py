"""Reading files a user names: regular files only, read with a byte cap. ``/dev/zero`` (stat size 0, endless),
a FIFO (blocks forever) or a directory is one clear error, never a hang or a runaway."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sim.errors import ConfigError

__all__ = ["read_bounded", "check_output", "check_writable_dir"]


def read_bounded(path: str | Path, *, what: str, max_bytes: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``max_bytes``; every way it can be wrong is one
    ConfigError naming the file."""
    source = str(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"is a directory, not {what}", source=source)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"is not a regular file (a device, FIFO or socket), not {what}", source=source)
        if st.st_size > max_bytes:
            raise ConfigError(f"{st.st_size:,} bytes: too large for {what} (at most {max_bytes:,})", source=source)
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", source=source) from None
    except PermissionError:
        raise ConfigError("cannot be read (permission denied)", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", source=source) from None
    if len(raw) > max_bytes:  # grew while being read
        raise ConfigError(f"too large for {what} (at most {max_bytes:,} bytes)", source=source)
    return raw


def check_output(path: str | Path | None, *, what: str) -> None:
    """Before any load: ``path`` can be written (not a directory, its folder creatable, the file openable for
    writing). Checked up front so a run never ends in a traceback after its load was spent."""
    if not path:
        return
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"is a directory: {what} needs a file name", source=str(path))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        existed = p.exists()
        with open(p, "ab"):
            pass
        if not existed:
            p.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot be written ({exc.strerror or exc}): {what}", source=str(path)) from None


def check_writable_dir(path: str | Path, *, what: str, need_bytes: int = 0) -> None:
    """``path`` is (or can be made) a folder flowsim can write ``need_bytes`` into."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".flowsim-probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
        fs = os.statvfs(p)
        free = fs.f_bavail * fs.f_frsize
    except OSError as exc:
        raise ConfigError(f"cannot be written ({exc.strerror or exc}): {what}", source=str(path)) from None
    if free < need_bytes:
        raise ConfigError(f"{free / 1e6:,.1f} MB free: {what} needs about {need_bytes / 1e6:,.1f} MB for this run "
                          "(flowsim stops sending when it cannot record)", source=str(path))

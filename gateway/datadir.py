"""Where the embedded PostgreSQL keeps its data by default: a per-user directory, the same
whatever the current directory is (GATEWAY_DATA_DIR and --data-dir choose another)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user data directory, the same whatever the current directory is.

    Linux and other Unixes follow the XDG base directories (``$XDG_DATA_HOME/gateway``,
    else ``~/.local/share/gateway``); macOS and Windows use their usual places.
    """
    env = os.environ if environ is None else environ
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if sys.platform == "win32":
        local = env.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / "gateway"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "gateway"
    xdg = env.get("XDG_DATA_HOME", "")
    # The XDG spec says a relative value is invalid and is to be ignored.
    base = Path(xdg) if os.path.isabs(xdg) else home / ".local" / "share"
    return base / "gateway"

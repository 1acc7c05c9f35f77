"""`interlock version`: what this installation or binary is made of.

The version, the Python it runs on, the event loop, each server profile's server and
upstream client libraries, and the plugins found through entry points: the first lines
to ask for in a bug report, and a check that a single binary bundled what it should
(a library present without its metadata shows "version unknown"). Whether a library
is installed is asked of the import system without importing it.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from importlib import import_module, metadata

__all__ = ["PROFILES", "library", "report"]

# Per profile: (distribution, module) of its server and its upstream client libraries.
PROFILES: dict[str, tuple[tuple[str, str], ...]] = {
    "default": (("hypercorn", "hypercorn"), ("httpx", "httpx"), ("httpx-aiohttp", "httpx_aiohttp")),
    "fast": (("uvicorn", "uvicorn"), ("httptools", "httptools"), ("aiohttp", "aiohttp")),
}
EVENT_LOOP = ("uvloop", "uvloop")


def library(distribution: str, module: str) -> str:
    """`name version`, or `name not installed`."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return f"{distribution} not installed"
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        version = getattr(import_module(module), "__version__", None)
        return f"{distribution} {version or 'version unknown'}"


def _own_version() -> str:
    try:
        return metadata.version("interlock")
    except metadata.PackageNotFoundError:
        return "unknown (no package metadata)"


def _plugins() -> str:
    from .plugins import ENTRY_POINT_GROUP

    names = sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})
    return ", ".join(names) or "none"


def report() -> list[str]:
    frozen = " (single binary)" if getattr(sys, "frozen", False) else ""
    python = (
        f"{platform.python_implementation()} {platform.python_version()} "
        f"on {sys.platform} {platform.machine()}"
    )
    lines = [
        f"interlock {_own_version()}{frozen}",
        f"python: {python}",
        f"event loop: {library(*EVENT_LOOP)}",
    ]
    for name, libraries in PROFILES.items():
        lines.append(f"profile {name}: " + ", ".join(library(*lib) for lib in libraries))
    lines.append(f"plugins (entry points): {_plugins()}")
    return lines

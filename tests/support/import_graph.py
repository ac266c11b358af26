"""The import graph between the gateway's folders and the domain packages, as text.

`python -m tests.support.import_graph` prints it; the Architecture section of
gateway/README.md carries the same lines, and tests/test_architecture.py checks that they agree.
"""

from __future__ import annotations

import grimp

PACKAGES = ("gateway", "geo", "offers", "wallet")
# gateway's top-level modules below every folder: one unit in the drawing.
BASE = frozenset(
    {
        "settings",
        "declare",
        "secret",
        "datadir",
        "db",
        "migrate",
        "migrations",
        "listen",
        "clock",
        "logs",
        "metrics",
    }
)
# Top to bottom: every edge should point down this list.
ORDER = (
    "gateway/__main__.py",
    "gateway/cli/",
    "gateway/demo/",
    "gateway/app.py",
    "gateway/http/",
    "gateway/pingpath/",
    "gateway/jobs/",
    "gateway/delivery/",
    "gateway/accounts/",
    "gateway (base)",
    "offers",
    "wallet",
    "geo",
)


def unit(module: str) -> str:
    """The folder (or base layer, or domain package) a module belongs to."""
    parts = module.split(".")
    if parts[0] != "gateway" or len(parts) == 1:
        return parts[0]
    if parts[1] in BASE:
        return "gateway (base)"
    if parts[1] in {"__main__", "app"}:
        return f"gateway/{parts[1]}.py"
    return f"gateway/{parts[1]}/"


def edges() -> list[tuple[str, str]]:
    """Every (importer, imported) pair of distinct units, sorted."""
    graph = grimp.build_graph(*PACKAGES)
    found = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = unit(module), unit(imported)
            if a != b:
                found.add((a, b))
    return sorted(found, key=lambda e: (ORDER.index(e[0]), ORDER.index(e[1])))


def render() -> str:
    """One line per importing unit: what it imports."""
    by_source: dict[str, list[str]] = {}
    for a, b in edges():
        by_source.setdefault(a, []).append(b)
    width = max(len(a) for a in by_source)
    return "\n".join(f"{a:<{width}} -> {', '.join(bs)}" for a, bs in by_source.items())


if __name__ == "__main__":
    print(render())

"""Draw chainrule's import graph, grouped by the layers of pyproject.toml's import contract.

    python scripts/import_graph.py [--out docs/architecture.svg]

The edges are the real imports (grimp reads every import statement, those inside
functions too), folded to one box per module of the top-level layers; each box
sits in its layer's row, highest layer first.  An arrow points from the importer
to the module it imports, so every arrow points down.  Writes an SVG with
Graphviz's ``dot`` (Debian's graphviz package) and prints the DOT source with
``--dot``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "chainrule"


def layers() -> list[list[str]]:
    """The top-level contract's layers, highest first, each a list of module names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "layers" and contract["containers"] == [PACKAGE]:
            return [[m.strip() for m in row.replace(":", "|").split("|")] for row in contract["layers"]]
    raise SystemExit("pyproject.toml has no layers contract for the chainrule package")


def top(module: str) -> str:
    """``chainrule.explain.trace`` -> ``explain``: the module's box."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def edges() -> set[tuple[str, str]]:
    sys.path.insert(0, str(ROOT / "src"))
    graph = grimp.build_graph(PACKAGE)
    found = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = top(importer), top(imported)
            if a != b and PACKAGE not in (a, b):
                found.add((a, b))
    return found


def dot_source() -> str:
    rows = layers()
    lines = [
        "digraph layers {",
        '  graph [rankdir=TB, nodesep=0.25, ranksep=0.45, fontname="Helvetica"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=11];',
        '  edge [color="#8090a0", arrowsize=0.6];',
    ]
    for i, row in enumerate(rows):
        names = " ".join(f'"{m}"' for m in row)
        lines.append(f"  {{ rank=same; {names} }}  // layer {i + 1}")
    for a, b in sorted(edges()):
        lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "architecture.svg"), help="the SVG to write")
    parser.add_argument("--dot", action="store_true", help="print the DOT source instead of drawing")
    args = parser.parse_args()
    source = dot_source()
    if args.dot:
        print(source, end="")
        return
    if shutil.which("dot") is None:
        raise SystemExit("import_graph: Graphviz's dot is not installed (apt install graphviz); use --dot")
    svg = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True).stdout
    Path(args.out).write_bytes(svg)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Run a PyTorch program twice, as written and with ``import chainrule.torch as torch``, and compare what it prints.

    python scripts/dropin_check.py program.py [more.py ...] [--rtol 1e-5] [--timeout 600] [--torch-print]

Only the import lines change (``import torch`` → ``import chainrule.torch as torch``, ``from torch.nn import X`` →
``from chainrule.torch.nn import X``, and so on); every number the two runs print is compared in order, to a
relative tolerance (float32 rounding by default).  For issue 25's measurement on public programs: keep their code
out of the repository, point this at local copies.  Exit status 0 when every program agrees.

chainrule.torch prints tensors as torch does (four decimals, ``grad_fn=<...>``), so the two outputs can be
compared as text too: the report says whether they are identical.  ``--torch-print`` (from before chainrule.torch
printed as torch) prints chainrule's values through torch's own formatter instead (``scripts/dropin_torch_print``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

IMPORT = re.compile(r"^(\s*)(import|from)\s+torch\b", re.M)
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf")


def rewrite(source: str) -> str:
    """The program with its torch imports pointed at chainrule.torch (nothing else changes)."""
    out = []
    for line in source.splitlines(keepends=True):
        stripped = line.lstrip()
        if stripped.startswith("import ") and re.search(r"(?:^import|,)\s*torch\b", stripped.split("#")[0]):
            indent = line[: len(line) - len(stripped)]
            names = [n.strip() for n in stripped[len("import ") :].split("#")[0].split(",")]
            parts = []
            for n in names:
                module, _, alias = n.partition(" as ")
                module, alias = module.strip(), alias.strip()
                if module == "torch" or module.startswith("torch."):
                    if alias:
                        parts.append(f"import chainrule.{module} as {alias}")
                    else:  # `import torch` and `import torch.nn` both bind the name `torch`
                        parts.append("import chainrule.torch as torch")
                        if module != "torch":
                            parts.append(f"import chainrule.{module}")
                else:
                    parts.append(f"import {n}")
            line = indent + "; ".join(parts) + "\n"
        elif re.match(r"from torch\b", stripped):
            line = line.replace("from torch", "from chainrule.torch", 1)
        out.append(line)
    return "".join(out)


def numbers(text: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(text)]


def agree(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) or abs(a - b) <= 1e-6


TORCH_PRINT = Path(__file__).resolve().parent / "dropin_torch_print"


def run(path: Path, source: str, timeout: int, torch_print: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if torch_print:  # chainrule tensors print through torch's formatter (see dropin_torch_print/)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TORCH_PRINT), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / path.name
        target.write_text(source, encoding="utf-8")
        for other in path.parent.iterdir():  # the program's data files (input.txt ...), linked, never copied
            if other.suffix != ".py" and not (Path(scratch) / other.name).exists():
                (Path(scratch) / other.name).symlink_to(other.resolve())
        return subprocess.run(
            [sys.executable, target.name], cwd=scratch, capture_output=True, text=True, timeout=timeout, env=env
        )


def check(path: Path, rtol: float, timeout: int, torch_print: bool = False) -> bool:
    source = path.read_text(encoding="utf-8")
    ours = rewrite(source)
    ref = run(path, source, timeout)
    mine = run(path, ours, timeout, torch_print)
    if ref.returncode != 0:
        print(f"{path.name}: torch itself fails: {ref.stderr.strip().splitlines()[-1:]}")
        return False
    if mine.returncode != 0:
        print(f"{path.name}: FAILS with chainrule.torch: {mine.stderr.strip().splitlines()[-1:]}")
        return False
    a, b = numbers(ref.stdout), numbers(mine.stdout)
    if len(a) != len(b):
        print(f"{path.name}: prints {len(b)} numbers, torch {len(a)}")
        return False
    bad = [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if not agree(x, y, rtol)]
    if bad:
        i, x, y = bad[0]
        print(f"{path.name}: {len(bad)} of {len(a)} numbers differ (first: #{i}, torch {x!r}, chainrule.torch {y!r})")
        return False
    same = "; the printed text is identical" if ref.stdout == mine.stdout else "; the text differs elsewhere"
    print(f"{path.name}: ok, {len(a)} numbers agree to rtol {rtol:g}{same}")
    return True


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scripts/dropin_check.py", description=__doc__.splitlines()[0])
    p.add_argument("programs", nargs="+", type=Path)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--timeout", type=int, default=600)
    p.add_argument(
        "--torch-print",
        action="store_true",
        help="print chainrule tensors with torch's formatter (needs torch): compare at torch's digits",
    )
    p.add_argument("--show", action="store_true", help="print the rewritten imports of each program")
    args = p.parse_args(argv)
    results = []
    for path in args.programs:
        if args.show:
            print("".join(line for line in rewrite(path.read_text()).splitlines(True) if "chainrule" in line))
        results.append(check(path, args.rtol, args.timeout, args.torch_print))
    print(f"{sum(results)} of {len(results)} programs agree")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

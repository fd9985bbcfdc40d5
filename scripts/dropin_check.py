"""Run a PyTorch program twice, as written and with ``import chainrule.torch as torch``, and compare what it prints.

    python scripts/dropin_check.py program.py [more.py ...] [--rtol 1e-5] [--timeout 600] [--torch-print]

Only the import lines change (``import torch`` → ``import chainrule.torch as torch``, ``from torch.nn import X`` →
``from chainrule.torch.nn import X``, and so on), in the program and in its own modules (sibling ``.py`` files and
packages such as ``res/``); every number the two runs print is compared in order, to a relative tolerance (float32
rounding by default), plus one unit in the last printed decimal (values that agree can print one unit apart when
they straddle a rounding boundary; integers, and floats printed without decimals, must match exactly).  For issue
25's measurement on public programs: keep their code out of the repository, point this at local copies.  Exit
status 0 when every program agrees.

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
import time
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


def last_place(token: str) -> float:
    """One unit in the last printed digit of a float as printed ("0.035983" -> 1e-6, "2.5e-03" -> 1e-4);
    0 where no digit follows the point ("5437", torch's "1."): those must match exactly."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    if not decimals:  # "5437", "1." (torch's integral floats): exact
        return 0.0
    return 10.0 ** (int(exponent or 0) - decimals)


def agree(a: float, b: float, rtol: float, unit: float = 0.0) -> bool:
    """Equal to ``rtol``; ``unit`` allows one unit in the last printed place, since two floats that agree to
    ``rtol`` can print one unit apart when they straddle a rounding boundary (0.0359825 -> 0.035982, 0.035983)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + unit * (1 + 1e-9) or abs(a - b) <= 1e-6


TORCH_PRINT = Path(__file__).resolve().parent / "dropin_torch_print"


def place_modules(folder: Path, into: Path, convert: bool) -> None:
    """Copy the program's own modules (sibling ``.py`` files, packages such as ``res/``) into the scratch
    folder, their torch imports rewritten too when ``convert``: the program's helpers are part of it."""
    into.mkdir(exist_ok=True)
    for other in folder.iterdir():
        if (into / other.name).exists() or other.name == "__pycache__":
            continue
        if other.suffix == ".py":
            text = other.read_text(encoding="utf-8")
            (into / other.name).write_text(rewrite(text) if convert else text, encoding="utf-8")
        elif other.is_dir() and any(other.rglob("*.py")):
            place_modules(other, into / other.name, convert)
        else:  # data files (input.txt ...), linked, never copied
            (into / other.name).symlink_to(other.resolve())


def run(
    path: Path, source: str, timeout: int, torch_print: bool = False, convert: bool = False
) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if torch_print:  # chainrule tensors print through torch's formatter (see dropin_torch_print/)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TORCH_PRINT), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / path.name
        target.write_text(source, encoding="utf-8")
        place_modules(path.parent, Path(scratch), convert)
        return subprocess.run(
            [sys.executable, target.name], cwd=scratch, capture_output=True, text=True, timeout=timeout, env=env
        )


def check(path: Path, rtol: float, timeout: int, torch_print: bool = False, keep: Path | None = None) -> bool:
    source = path.read_text(encoding="utf-8")
    ours = rewrite(source)
    start = time.perf_counter()
    try:
        ref = run(path, source, timeout)
    except subprocess.TimeoutExpired:
        print(f"{path.name}: torch itself takes over {timeout} s")
        return False
    middle = time.perf_counter()
    try:
        mine = run(path, ours, timeout, torch_print, convert=True)
    except subprocess.TimeoutExpired:
        print(f"{path.name}: chainrule.torch takes over {timeout} s (torch {middle - start:.0f} s)")
        return False
    took = f" (torch {middle - start:.0f} s, chainrule.torch {time.perf_counter() - middle:.0f} s)"
    if keep is not None:  # both runs' output, to diff
        keep.mkdir(parents=True, exist_ok=True)
        for tag, done in (("torch", ref), ("chainrule", mine)):
            (keep / f"{path.stem}.{tag}.out").write_text(done.stdout, encoding="utf-8")
            (keep / f"{path.stem}.{tag}.err").write_text(done.stderr, encoding="utf-8")
    if ref.returncode != 0:
        print(f"{path.name}: torch itself fails: {ref.stderr.strip().splitlines()[-1:]}")
        return False
    if mine.returncode != 0:
        print(f"{path.name}: FAILS with chainrule.torch{took}: {mine.stderr.strip().splitlines()[-1:]}")
        return False
    ta, tb = NUMBER.findall(ref.stdout), NUMBER.findall(mine.stdout)
    a, b = [float(x) for x in ta], [float(x) for x in tb]
    units = [max(last_place(x), last_place(y)) for x, y in zip(ta, tb)]
    if len(a) != len(b):
        print(f"{path.name}: prints {len(b)} numbers, torch {len(a)}{took}")
        return False
    bad = [(i, x, y) for i, (x, y, u) in enumerate(zip(a, b, units)) if not agree(x, y, rtol, u)]
    if bad:
        i, x, y = bad[0]
        first = f"first: #{i}, torch {x!r}, chainrule.torch {y!r}"
        print(f"{path.name}: {len(bad)} of {len(a)} numbers differ ({first}){took}")
        return False
    same = "; the printed text is identical" if ref.stdout == mine.stdout else "; the text differs elsewhere"
    print(f"{path.name}: ok, {len(a)} numbers agree to rtol {rtol:g}{same}{took}")
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
    p.add_argument("--keep", type=Path, help="write both runs' stdout and stderr into this folder")
    p.add_argument("--show", action="store_true", help="print the rewritten imports of each program")
    args = p.parse_args(argv)
    results = []
    for path in args.programs:
        if args.show:
            print("".join(line for line in rewrite(path.read_text()).splitlines(True) if "chainrule" in line))
        results.append(check(path, args.rtol, args.timeout, args.torch_print, args.keep))
    print(f"{sum(results)} of {len(results)} programs agree")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

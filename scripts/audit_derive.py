"""Issue 23's audit: every program of both derive audit lists through both layouts, both step routes, the JSON and
the chain, counting false steps, failed checks and crashes.

    python scripts/audit_derive.py        # from the repository root; about 30 s
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_derive_audit import PROGRAMS as OLD  # noqa: E402
from tests.test_derive_steps_audit import PROGRAMS as NEW  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule.explain.derive_layout import LayoutError  # noqa: E402


def programs() -> list[tuple[str, dict, tuple]]:
    seen, out = set(), []
    for p in list(NEW) + list(OLD):
        source, shapes = p[0], p[1]
        constants = p[2] if len(p) > 2 else ()
        if source not in seen:
            seen.add(source)
            out.append((source, shapes, constants))
    return out


def audit_one(source: str, shapes: dict, constants: tuple, counts: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = cr.derive(source, shapes, constants=constants)
    counts["equations"] += len(d.backward)
    counts["notes"] += len(d.jacobians)
    steps = (json.loads(d.to_json()).get("check") or {}).get("steps") or {}
    counts["step lines checked"] += steps.get("checked", 0) or 0
    counts["false steps"] += len(steps.get("failed") or [])
    if d.check is None or d.check.status != "passed":
        counts["failed checks"] += 1
        print("check", d.check.status if d.check else None, source)
    route = d.differential
    if route is None or isinstance(route, str):
        counts["differential routes not made"] += 1
        print("differential route not made:", source, route)
    else:
        counts["differential lines"] += len(route.steps())
        if route.check is None or route.check.status != "passed":
            counts["failed differential checks"] += 1
            print("differential", route.check, source)
    for layout in ("column", "row"):
        try:
            d.layout(layout)
            counts["layouts printed"] += 1
        except LayoutError:
            counts["layouts refused"] += 1
    d.text(steps="index")
    d.text(steps="differential")
    if d.chain is not None:
        d.chain.text()


def main() -> int:
    keys = (
        "programs equations notes step-lines-checked false-steps failed-checks differential-lines "
        "failed-differential-checks differential-routes-not-made layouts-printed layouts-refused crashes"
    )
    counts = {k.replace("-", " "): 0 for k in keys.split()}
    start = time.time()
    for source, shapes, constants in programs():
        counts["programs"] += 1
        try:
            audit_one(source, shapes, constants, counts)
        except Exception as exc:  # noqa: BLE001  (a crash is what the audit counts)
            counts["crashes"] += 1
            print("crash", type(exc).__name__, str(exc)[:200], source)
    for k, v in counts.items():
        print(f"{k:32} {v}")
    print(f"{time.time() - start:.0f} s")
    bad = counts["false steps"] + counts["failed checks"] + counts["crashes"] + counts["failed differential checks"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 23's audit: every program of both derive audit lists through both layouts, both step routes, the JSON and
the chain, counting false steps, failed checks and crashes; then issue 24's recorded models (a char-MLP with batch
norm, a CNN, an attention block, layer norm, an MLP; with and without a symbolic batch), counting their step lines
checked, the step lines that state something with no claim to check it, and false steps.

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


def recorded_models() -> list[tuple[str, object, dict]]:
    """Models built with chainrule's nn, as learners write them: (name, loss, keywords for cr.derive)."""
    import numpy as np

    import chainrule.nn as nn
    import chainrule.nn.functional as F
    import chainrule.torch.nn.functional as TF

    rng = np.random.default_rng(0)
    out = []
    emb, fc1 = nn.Embedding(27, 5, dtype=np.float64), nn.Linear(15, 16, dtype=np.float64)
    bn, fc2 = nn.BatchNorm1d(16, dtype=np.float64), nn.Linear(16, 27, dtype=np.float64)
    Xb, Yb = rng.integers(0, 27, (8, 3)), rng.integers(0, 27, 8)
    loss = F.cross_entropy(fc2(cr.tanh(bn(fc1(emb(Xb).reshape(8, 15))))), Yb)
    out += [("char-MLP", loss, {}), ("char-MLP, batch B", loss, {"batch": "Xb", "names": [(Xb, "Xb")]})]
    conv, lin = nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64), nn.Linear(12, 4, dtype=np.float64)
    images = cr.tensor(rng.normal(size=(2, 2, 4, 4)))
    out.append(("CNN", F.cross_entropy(lin(F.max_pool2d(cr.relu(conv(images)), 2).reshape(2, -1)), [1, 3]), {}))
    q = cr.tensor(rng.normal(size=(2, 3, 4)), requires_grad=True)
    attended = TF.scaled_dot_product_attention(q, q, q)
    out.append(("attention", (attended * attended).sum(), {}))
    norm = nn.LayerNorm(4, dtype=np.float64)
    out.append(("layer norm", (norm(cr.tensor(rng.normal(size=(3, 4)))) ** 2).sum(), {}))
    mlp = nn.Sequential(nn.Linear(4, 6, dtype=np.float64), nn.Tanh(), nn.Linear(6, 3, dtype=np.float64))
    out.append(("MLP", F.cross_entropy(mlp(cr.tensor(rng.normal(size=(5, 4)))), rng.integers(0, 3, 5)), {}))
    return out


def audit_recorded(counts: dict) -> None:
    from chainrule.explain.derive_stepcheck import _states_formula

    for name, loss, keywords in recorded_models():
        counts["recorded models"] += 1
        try:
            d = cr.derive(loss, **keywords)
        except Exception as exc:  # noqa: BLE001
            counts["recorded crashes"] += 1
            print("crash", name, type(exc).__name__, str(exc)[:200])
            continue
        steps = [st for ln in d.backward for st in ln.steps]
        counts["recorded step lines checked"] += sum(1 for st in steps if st.check is not None)
        unclaimed = [st.text for st in steps if st.check is None and (_states_formula(st.text) or " is " in st.text)]
        counts["recorded statements unchecked"] += len(unclaimed)
        for text in unclaimed:
            print("unchecked", name, text[:120])
        failures = d.check.steps.failures if d.check is not None and d.check.steps is not None else []
        counts["recorded false steps"] += len(failures)
        if not d.ok:
            counts["recorded failed checks"] += 1
            print("check", name, d.check_text()[:300])


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
    for key in (
        "recorded models",
        "recorded step lines checked",
        "recorded statements unchecked",
        "recorded false steps",
        "recorded failed checks",
        "recorded crashes",
    ):
        counts[key] = 0
    audit_recorded(counts)
    for k, v in counts.items():
        print(f"{k:32} {v}")
    print(f"{time.time() - start:.0f} s")
    bad = counts["false steps"] + counts["failed checks"] + counts["crashes"] + counts["failed differential checks"]
    bad += counts["recorded false steps"] + counts["recorded failed checks"] + counts["recorded crashes"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

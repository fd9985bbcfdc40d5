"""The primitive suite of tests/test_backends.py on JAX arrays (JAX is not a test dependency).

    python bench/jax_check.py

Every case of tests/cases.py: values, gradients, second-order gradients and
forward-mode tangents on ``jax.numpy`` arrays (with 64-bit floats enabled), each
compared with the NumPy run.  Prints the count and any failures; exit status 1 if
any case fails.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    sys.path[:0] = [ROOT, os.path.join(ROOT, "src")]
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from tests import test_backends as suite
    from tests.cases import CASES

    suite.LIBRARIES["jax"] = lambda a: jnp.asarray(np.asarray(a))
    suite.LIBRARY_OF["jax"] = "jaxlib"
    suite.NOT_IN_STANDARD["jax"] = set()
    checks = (
        suite.test_values_and_gradients_match_numpy,
        suite.test_second_order_matches_numpy,
        suite.test_forward_mode_matches_numpy,
    )
    failures = []
    count = 0
    for name, cases in CASES.items():
        for case in cases:
            for check in checks:
                count += 1
                try:
                    check("jax", name, case)
                except Exception as exc:  # noqa: BLE001 - every failure is reported, whatever it is
                    failures.append(f"{check.__name__} {name} {case.label!r}: {type(exc).__name__}: {exc}"[:300])
    print(f"{count} checks on JAX arrays, {len(failures)} failed")
    for line in failures:
        print("  " + line)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

import inspect
import os
import sys
import types

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _faces(request):
    """Importing chainrule.torch makes every tensor in the process promote and print as torch's (docs/torch.md).
    Tests of chainrule's own face run as in a process without it; tests that use chainrule.torch get its rules."""
    core = sys.modules.get("chainrule.torch._core")
    if core is None:
        yield
        return
    uses_torch_face = any(
        (v.__name__ if isinstance(v, types.ModuleType) else v.__module__ or "").startswith("chainrule.torch")
        for v in vars(request.module).values()
        if isinstance(v, types.ModuleType) or inspect.isfunction(v) or inspect.isclass(v)
    )
    core._torch_face(uses_torch_face)
    try:
        yield
    finally:
        core._torch_face(True)

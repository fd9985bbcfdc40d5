"""``cr.compile``: trace one call of a function, replay later calls from the recorded schedule.

The first call with a given signature (argument shapes, dtypes, ``requires_grad``,
Python-number arguments and the numbers in the function's closure and globals)
runs eagerly while a tracer watches it through the engine's hooks.  The tracer
records every primitive the call applied, every ``backward()`` and every optimizer
``step()`` / ``zero_grad()``, and writes them out as one straight-line Python
function.  Every line of it comes from a primitive: its forward and VJP rules, run
on symbols and written out by :mod:`chainrule.codegen` (the generator ``derive
--numpy`` uses), kept where they give the primitive's own result bit for bit (checked
when traced), and otherwise a call of the primitive's forward or rule itself.  On
arrays, large results are written into buffers allocated once (``out=``), in place
where an operand dies.  Gradients are summed in the order the eager walk sums them,
with eager's roundings: no Tensor objects, no graph, no heap.  A rule changed in the
registry therefore changes the next trace's replay.
Later calls with the same signature run that function; a different signature
traces again (a small cache keeps the last few).  ``compiled.code()`` shows the
schedule as readable code.

What a trace cannot see, it refuses, so a replay is never silently stale:

* reading a tensor's value in the function (``item()``, ``float()``, ``if t:``,
  ``.data``, ``.numpy()``), i.e. Python control flow on data: raises
  :class:`CompileError` naming the line;
* tensors made inside the function without being recorded (under ``no_grad``, or
  from ``.data``), and tensors modified in place outside an optimizer step;
* ``backward(create_graph=True)``, ``grad(...)`` with ``inputs``, explicit seeds.

Outputs come back detached (call ``backward()`` inside the function).  Under
``no_grad()`` or anomaly detection the function simply runs eagerly.

The modules, by job: :mod:`.tracer` (watching a call), :mod:`.schedule` (writing the
schedule), :mod:`.prove` (the bit-for-bit check of written lines), :mod:`.passes`
(buffers and early release), :mod:`.guards` (what a trace is valid for), :mod:`.cache`
(the compiled function and its schedules), :mod:`.runtime` (what a schedule calls).
"""

from __future__ import annotations

from .cache import Compiled, compile  # noqa: A004  (cr.compile, as torch.compile)
from .errors import CompileError

# Array schedules write into buffers allocated when the schedule is written (``out=`` calls).
# ``BUFFERS = False`` writes the allocating schedule instead (bench/ab_compile.py compares the two).
BUFFERS = True

__all__ = ["BUFFERS", "CompileError", "Compiled", "compile"]

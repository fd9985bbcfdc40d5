"""Tools that show the work: step-by-step traces, graph drawings, matrix-form derivations, a safe parser.

``rich`` (tables) and ``graphviz`` (drawings) are imported only when used.
"""

from .derive import Derivation, derive
from .draw import Drawing, draw
from .parse import ParseError
from .trace import Trace, trace

__all__ = ["Derivation", "Drawing", "ParseError", "Trace", "derive", "draw", "trace"]

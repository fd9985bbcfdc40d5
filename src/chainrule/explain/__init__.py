"""Tools that show the work: step-by-step traces, graph drawings, matrix-form derivations, a safe parser.

``rich`` (tables) and ``graphviz`` (drawings) are imported only when used.
"""

from .compare import Comparison, compare
from .derive import Derivation, derive
from .derive_chain_text import chain_text as _chain_text  # noqa: F401  (attaches Chain.text, its text view)
from .draw import Drawing, draw
from .notebook import Exploration, explore
from .page import save_html as _save_html  # noqa: F401  (attaches Trace.save_html, the page view of a trace)
from .parse import ParseError
from .trace import Trace, trace

__all__ = [
    "Comparison",
    "Derivation",
    "Drawing",
    "Exploration",
    "ParseError",
    "Trace",
    "compare",
    "derive",
    "draw",
    "explore",
    "trace",
]

# dropin_check --torch-print: print chainrule tensors with torch's own formatter (4 decimals, its summarising),
# so that a program's printed numbers can be compared with torch's at the precision torch prints. Printing only:
# the values are chainrule's. (grad_fn names are not reproduced; their digits are kept as "Backward0".)
import builtins
import sys

_orig_import = builtins.__import__
_done = []


def _patch():
    import numpy as np
    import torch as _real

    from chainrule.tensor import Tensor

    def rep(self):
        t = _real.from_numpy(np.array(self._data))
        r = repr(t)
        if self.requires_grad:
            tail = ", requires_grad=True)" if self.is_leaf else ", grad_fn=<Backward0>)"
            r = r[:-1] + tail
        return r

    Tensor.__repr__ = rep
    Tensor.__str__ = rep


def _hook(name, *args, **kw):
    mod = _orig_import(name, *args, **kw)
    if not _done and "chainrule.tensor" in sys.modules and "chainrule.torch" in sys.modules:
        _done.append(1)
        _patch()
    return mod


builtins.__import__ = _hook

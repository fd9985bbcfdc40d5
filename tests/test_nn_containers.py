"""ModuleList / ModuleDict / ParameterList registration, the refusal of plain lists of layers, and buffers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn


class Tower(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b, rng=i) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
        self.heads = nn.ModuleDict({"cls": nn.Linear(sizes[-1], 3, rng=9), "reg": nn.Linear(sizes[-1], 1, rng=8)})

    def forward(self, x):
        for layer in self.layers:
            x = cr.relu(layer(x))
        return self.heads["cls"](x), self.heads["reg"](x)


class TorchTower(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(sizes[-1], 3), "reg": torch.nn.Linear(sizes[-1], 1)})

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.heads["cls"](x), self.heads["reg"](x)


def test_module_list_and_dict_register_their_layers_under_torchs_names():
    ours = Tower([4, 5, 6]).double()
    theirs = TorchTower([4, 5, 6]).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 4))
    (a, b), (ta, tb) = ours(cr.tensor(x)), theirs(torch.tensor(x))
    (cr.sum(a * a) + cr.sum(b)).backward()
    ((ta * ta).sum() + tb.sum()).backward()
    grads = {k: p.grad for k, p in theirs.named_parameters()}
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, grads[name].numpy(), rtol=1e-10, err_msg=name)
    # an optimizer over parameters() trains every layer in the containers
    before = [p.data.copy() for p in ours.parameters()]
    cr.optim.SGD(ours.parameters(), lr=0.1).step()
    assert all(not np.array_equal(b, p.data) for b, p in zip(before, ours.parameters()))


def test_module_list_operations():
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    ml.append(nn.Sigmoid())
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "ReLU", "Tanh", "Sigmoid"]
    assert isinstance(ml[-1], nn.Sigmoid) and len(ml[1:3]) == 2
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2"]
    ml += [nn.ReLU()]
    assert len(ml) == 4 and isinstance(ml.pop(), nn.ReLU)
    with pytest.raises(TypeError, match="entries must be Modules"):
        ml.append(3)
    with pytest.raises(IndexError, match="index 7 out of range for 3"):
        ml[7]
    with pytest.raises(NotImplementedError, match="loop over it"):
        ml(cr.tensor(1.0))
    md = nn.ModuleDict()
    md["a"] = nn.ReLU()
    assert "a" in md and list(md.keys()) == ["a"]
    with pytest.raises(KeyError, match="no entry 'b'"):
        md["b"]
    with pytest.raises(KeyError, match="without dots"):
        md["x.y"] = nn.ReLU()


def test_parameter_list_registers_parameters():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([nn.Parameter(np.ones(2)), nn.Parameter(np.zeros(3))])
            self.named = nn.ParameterDict({"scale": nn.Parameter(np.ones(1))})

    m = M()
    assert list(m.state_dict()) == ["ws.0", "ws.1", "named.scale"]
    with pytest.raises(TypeError, match="requires_grad=True"):
        m.ws.append(cr.tensor(np.ones(2)))


def test_a_plain_list_of_layers_is_refused_with_the_modulelist_way():
    """torch silently leaves such layers untrained and unsaved; chainrule says so instead."""

    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(2, 2), nn.Linear(2, 1)]

    with pytest.raises(TypeError, match=r"plain list of modules is not registered.*cr\.nn\.ModuleList"):
        Bad()

    class BadDict(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = {"a": nn.Linear(2, 2)}

    with pytest.raises(TypeError, match=r"cr\.nn\.ModuleDict"):
        BadDict()

    class BadParams(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = [nn.Parameter(np.ones(2))]

    with pytest.raises(TypeError, match=r"cr\.nn\.ParameterList"):
        BadParams()

    class Deliberate(nn.Module):
        def __init__(self):
            super().__init__()
            object.__setattr__(self, "helpers", [nn.Linear(2, 2)])  # the documented escape hatch
            self.sizes = [2, 3]  # lists of anything else are plain attributes

    d = Deliberate()
    assert list(d.parameters()) == [] and d.sizes == [2, 3]


def test_buffers_follow_to_and_deepcopy_and_are_checked_on_assignment():
    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("stat", cr.tensor(np.zeros(3)))
            self.register_buffer("scratch", cr.tensor(np.ones(2)), persistent=False)

    m = WithBuffer()
    assert list(m.state_dict()) == ["stat"]
    assert [k for k, _ in m.named_buffers()] == ["stat", "scratch"]
    m.float()
    assert m.stat.dtype == np.float32
    twin = copy.deepcopy(m)
    twin.stat[...] = 5.0
    assert np.all(m.stat.data == 0)
    with pytest.raises(TypeError, match="is a buffer: assign a Tensor or None"):
        m.stat = 3
    with pytest.raises(KeyError, match=r"load_state_dict.*missing keys \['stat'\]"):
        m.load_state_dict({})
    with pytest.raises(KeyError, match="already a parameter"):
        nn.Linear(2, 2).register_buffer("weight", cr.tensor(np.zeros(2)))


def test_sequential_from_an_ordered_dict_and_module_apply():
    from collections import OrderedDict

    seq = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("act", nn.ReLU())]))
    ref = torch.nn.Sequential(OrderedDict([("conv", torch.nn.Conv2d(1, 2, 3)), ("act", torch.nn.ReLU())]))
    assert list(seq.state_dict()) == list(ref.state_dict()) == ["conv.weight", "conv.bias"]
    seen = []
    seq.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Conv2d", "ReLU", "Sequential"]  # children first, as torch's Module.apply

    def set_conv_bias(m):
        if isinstance(m, nn.Conv2d):
            with cr.no_grad():
                m.bias[...] = 1.0

    seq.apply(set_conv_bias)
    assert np.all(seq.conv.bias.data == 1.0)

import torch
import torch.nn.functional as F

from bridge.field.layers import softplus


def test_softplus_is_torchs_to_within_its_floor():
    x = torch.cat([torch.linspace(-1000, 1000, 20001), torch.tensor([-20.0, -19.999, 0.0, 20.0, 20.001])])
    assert (softplus(x) - F.softplus(x)).abs().max() < 2.1e-9
    assert torch.equal(softplus(x)[x > -20], F.softplus(x)[x > -20])

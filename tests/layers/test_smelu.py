import pytest
import torch

from panext_d2.layers import SmeLU, smelu

# Hand-computed from eq. 2.6.8 with beta = 2: (x + 2)^2 / 8 inside [-2, 2], derivative (x + 2) / 4.
X = [-5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
VALUES = [0.0, 0.0, 0.125, 0.5, 1.125, 2.0, 3.0]
GRADS = [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def _value_and_grad(module, xs, dtype=torch.float32):
    x = torch.tensor(xs, dtype=dtype, requires_grad=True)
    y = module(x)
    y.sum().backward()
    return y.detach(), x.grad


def test_smelu_default_beta_matches_eq_2_6_8_by_hand():
    y, g = _value_and_grad(SmeLU(), X)
    assert SmeLU().beta == 2.0
    torch.testing.assert_close(y, torch.tensor(VALUES))
    torch.testing.assert_close(g, torch.tensor(GRADS))


def test_smelu_configurable_beta():
    # beta = 0.5: x = 0.25 -> 0.75^2 / 2 = 0.28125, derivative 0.75 / 1 = 0.75; joints at +-0.5.
    y, g = _value_and_grad(SmeLU(beta=0.5), [-0.6, -0.5, 0.25, 0.5, 0.7])
    torch.testing.assert_close(y, torch.tensor([0.0, 0.0, 0.28125, 0.5, 0.7]))
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, 0.75, 1.0, 1.0]))
    assert "beta=0.5" in repr(SmeLU(beta=0.5))


def test_smelu_is_continuous_with_continuous_gradient_at_the_joints():
    beta, eps = 2.0, 1e-6
    for joint in (-beta, beta):
        y, g = _value_and_grad(SmeLU(beta), [joint - eps, joint, joint + eps], torch.float64)
        assert (y.max() - y.min()).item() < 3 * eps
        assert (g.max() - g.min()).item() < 1e-6


def test_smelu_gradcheck_float64_including_the_joints():
    x = torch.cat(
        [torch.linspace(-4, 4, 41, dtype=torch.float64), torch.tensor([-2.0, 2.0]).double()]
    )
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: smelu(t, 2.0), (x,))
    assert torch.autograd.gradcheck(lambda t: smelu(t, 0.3), (x,))


def test_smelu_rejects_non_positive_beta():
    with pytest.raises(ValueError):
        SmeLU(beta=0.0)

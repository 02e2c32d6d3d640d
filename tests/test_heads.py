"""Shared head layers: gradient reversal and its schedule."""

import math

import pytest
import torch

from ghuda.models.heads import discriminator, grl_coefficient, reverse_gradient


def test_reverse_gradient_scales_and_flips():
    x = torch.randn(5, requires_grad=True)
    reverse_gradient(x, 0.3).sum().backward()
    assert torch.allclose(x.grad, torch.full((5,), -0.3))


def test_grl_schedule_endpoints():
    assert grl_coefficient(0) == 0.0
    assert grl_coefficient(10**9) == pytest.approx(1.0)
    assert grl_coefficient(10000) == pytest.approx(2 / (1 + math.exp(-10)) - 1)


def test_discriminator_outputs_one_logit():
    assert discriminator(16, hidden=8)(torch.randn(4, 16)).shape == (4, 1)

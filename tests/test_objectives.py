"""Each base objective against its formula written out independently with numpy loops."""

import numpy as np
import pytest
import torch

from sma.objectives import (
    diffusion_mse,
    dmt_feature_loss,
    motiondirector_spatial_loss,
    motiondirector_temporal_loss,
    vmc_loss,
)


def pair(shape=(2, 3, 5, 4, 3), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64), torch.randn(
        shape, generator=generator, dtype=torch.float64
    )


def test_diffusion_mse():
    prediction, target = pair()
    expected = np.mean((prediction.numpy() - target.numpy()) ** 2)
    assert float(diffusion_mse(prediction, target)) == pytest.approx(expected, rel=1e-6)
    assert diffusion_mse(prediction.half(), target.half()).dtype == torch.float32


def test_vmc_loss():
    predicted, noise = pair()
    p, n = predicted.numpy(), noise.numpy()
    b, c, _, h, w = p.shape
    cosines = []
    for i in range(b):
        for k in range(c):
            for y in range(h):
                for x in range(w):
                    u = np.abs(np.diff(p[i, k, :, y, x]))
                    v = np.abs(np.diff(n[i, k, :, y, x]))
                    cosines.append(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    assert float(vmc_loss(predicted, noise)) == pytest.approx(1 - np.mean(cosines), rel=1e-6)
    assert float(vmc_loss(noise, noise)) == pytest.approx(0.0, abs=1e-6)


def test_motiondirector_spatial_loss():
    predicted, noise = pair((1, 4, 1, 6, 6))
    expected = np.mean((predicted.numpy() - noise.numpy()) ** 2)
    assert float(motiondirector_spatial_loss(predicted, noise)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("anchor", [0, 3, -1])
def test_motiondirector_temporal_loss(anchor):
    predicted, noise = pair()
    p, n = predicted.numpy(), noise.numpy()
    i = anchor % p.shape[2]
    debiased_p = np.sqrt(2) * p - p[:, :, i : i + 1]
    debiased_n = np.sqrt(2) * n - n[:, :, i : i + 1]
    expected = np.mean((p - n) ** 2) + np.mean((debiased_p - debiased_n) ** 2)
    assert float(motiondirector_temporal_loss(predicted, noise, anchor)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="outside the clip's 5 frames"):
        motiondirector_temporal_loss(predicted, noise, 5)


def test_dmt_feature_loss():
    reference, output = pair((2, 6, 4, 3, 5))
    r, o = reference.numpy().mean(axis=(3, 4)), output.numpy().mean(axis=(3, 4))  # (b, c, f)
    b, _, f = r.shape
    per_anchor = []
    for batch in range(b):
        for i in range(f):
            cosines = []
            for j in range(f):
                u, v = o[batch, :, j] - o[batch, :, i], r[batch, :, j] - r[batch, :, i]
                norms = np.linalg.norm(u) * np.linalg.norm(v)
                cosines.append(0.0 if norms == 0 else u @ v / norms)
            per_anchor.append(1 - np.mean(cosines))
    output.requires_grad_(True)
    loss = dmt_feature_loss(reference, output)
    assert loss.item() == pytest.approx(np.mean(per_anchor), rel=1e-6)
    loss.backward()
    assert output.grad.abs().sum() > 0
    # identical motion with another appearance (a constant offset per channel) scores best
    shifted = reference + torch.randn(2, 6, 1, 1, 1, dtype=torch.float64)
    assert float(dmt_feature_loss(reference, shifted)) == pytest.approx(1 / 4, abs=1e-9)

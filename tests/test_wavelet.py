import numpy as np
import pytest
import pywt
import torch

from sma.spectral.wavelet import BOUNDARY_MODES, dwt, max_levels, wavedec

WAVELETS = ["haar", "db2", "db4", "sym3", "coif1", "bior2.2"]


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("mode", BOUNDARY_MODES)
def test_dwt_matches_pywavelets(wavelet, mode):
    rng = np.random.default_rng(1)
    for length in range(2 if mode == "reflect" else 1, 26):
        signal = rng.standard_normal((2, 3, length))
        expected = pywt.dwt(signal, wavelet, mode=mode, axis=-1)
        actual = dwt(torch.from_numpy(signal), wavelet, mode, dim=-1)
        for e, a in zip(expected, actual, strict=True):
            np.testing.assert_allclose(a.numpy(), e, rtol=1e-12, atol=1e-12, err_msg=f"length {length}")


@pytest.mark.parametrize("frames", [7, 15, 23])
@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_wavedec_along_frame_axis(frames, wavelet):
    rng = np.random.default_rng(2)
    video = rng.standard_normal((1, 2, frames, 3, 5))
    levels = 2
    expected = pywt.wavedec(video, wavelet, mode="zero", level=levels, axis=2)
    actual = wavedec(torch.from_numpy(video), wavelet, levels, "zero", dim=2)
    assert len(actual) == len(expected) == levels + 1
    for e, a in zip(expected, actual, strict=True):
        np.testing.assert_allclose(a.numpy(), e, rtol=1e-12, atol=1e-12)


def test_max_levels_counts_shrinking_levels():
    assert max_levels(7, "haar") == 3  # 7 -> 4 -> 2 -> 1
    assert max_levels(15, "haar") == 4
    assert max_levels(23, "haar") == 5
    assert max_levels(1, "haar") == 1
    assert max_levels(7, "db2") == 3  # 7 -> 5 -> 4 -> 3, then 3 stays 3


def test_unknown_wavelet_and_mode():
    with pytest.raises(ValueError, match="unknown wavelet 'morl'"):
        dwt(torch.zeros(4), "morl")
    with pytest.raises(ValueError, match="unknown boundary mode"):
        dwt(torch.zeros(4), "haar", "mirror")

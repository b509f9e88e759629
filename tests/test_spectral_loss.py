import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import global_term, local_terms
from sma import SpectralMotionAlignment
from sma.spectral.fourier import half_spectrum_weights, low_frequency_weights, spectra

SHAPES = [
    (1, 4, 8, 40, 64),
    (2, 3, 16, 9, 11),  # odd sizes
    (1, 4, 24, 10, 18),
    (1, 2, 8, 7, 8),
    (1, 1, 16, 8, 7),
]


def video_pair(shape, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randn(shape, generator=generator, dtype=dtype)
    prediction = target + 0.5 * torch.randn(shape, generator=generator, dtype=dtype)
    return target, prediction


def relative_error(actual, expected):
    return abs(float(actual) - expected) / abs(expected)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_terms_match_float64_reference(shape, dtype):
    target, prediction = video_pair(shape, dtype)
    terms = SpectralMotionAlignment().terms(target, prediction)
    t, p = target.double().numpy(), prediction.double().numpy()
    expected_global = global_term(t, p)
    expected_amplitude, expected_phase = local_terms(t, p)
    assert relative_error(terms.global_motion, expected_global) < 1e-5
    assert relative_error(terms.local_amplitude, expected_amplitude) < 1e-5
    assert relative_error(terms.local_phase, expected_phase) < 1e-5
    expected_total = 0.4 * expected_global + 0.2 * (expected_amplitude + expected_phase)
    assert relative_error(terms.total, expected_total) < 1e-5


@pytest.mark.parametrize(
    "options",
    [
        dict(wavelet="db2", levels=1, boundary="symmetric"),
        dict(wavelet="sym3", levels=2, boundary="periodization", level_weights=[0.5, 2.0, 0.0]),
        dict(levels=3, level_weights=[0.0, 0.0, 0.0, 1.0], absolute_residuals=False),
        dict(delta=0.2, base=0.5, wrap_phase=True, absolute_residuals=False),
    ],
)
@pytest.mark.filterwarnings("ignore:Level value")
def test_options_match_reference(options):
    target, prediction = video_pair((1, 2, 16, 9, 12), torch.float64, seed=3)
    terms = SpectralMotionAlignment(**options).terms(target, prediction)
    t, p = target.numpy(), prediction.numpy()
    absolute = options.get("absolute_residuals", True)
    expected_global = global_term(
        t,
        p,
        options.get("wavelet", "haar"),
        options.get("levels", 2),
        options.get("level_weights"),
        options.get("boundary", "zero"),
        absolute,
    )
    expected_amplitude, expected_phase = local_terms(
        t, p, options.get("delta", 0.05), options.get("base", 1.0), absolute, options.get("wrap_phase", False)
    )
    assert relative_error(terms.global_motion, expected_global) < 1e-10
    assert relative_error(terms.local_amplitude, expected_amplitude) < 1e-10
    assert relative_error(terms.local_phase, expected_phase) < 1e-10


def test_wrapping_changes_only_the_phase_term():
    target, prediction = video_pair((1, 2, 8, 8, 8), torch.float64, seed=4)
    raw = SpectralMotionAlignment(absolute_residuals=False).terms(target, prediction)
    wrapped = SpectralMotionAlignment(absolute_residuals=False, wrap_phase=True).terms(target, prediction)
    assert float(wrapped.local_phase) < float(raw.local_phase)
    assert float(wrapped.local_amplitude) == pytest.approx(float(raw.local_amplitude), rel=1e-12)
    assert float(wrapped.local_phase) <= math.pi * low_frequency_weights(8, 8).max().item()


@pytest.mark.parametrize("height,width", [(8, 8), (7, 9), (6, 5), (1, 4), (3, 1)])
def test_half_spectrum_weights_sum_to_full_weights(height, width):
    half = half_spectrum_weights(height, width)
    full = low_frequency_weights(height, width)
    assert half.shape == (height, width // 2 + 1)
    assert float(half.sum()) == pytest.approx(float(full.sum()), rel=1e-12)


def test_self_conjugate_bins_have_phase_zero_or_pi():
    frames = torch.randn(64, 6, 8, dtype=torch.float64)
    _, phase, _, _ = spectra(frames, frames.flip(0))
    full = torch.fft.fftn(frames, dim=(-2, -1))
    for row in (0, 3):
        for col in (0, 4):
            expected = (full[:, row, col].real < 0).double() * math.pi
            assert torch.equal(phase[:, row, col], expected)


@pytest.mark.parametrize("shape", [(1, 2, 5, 4, 5), (2, 1, 4, 6, 6)])
def test_gradcheck(shape):
    target, prediction = video_pair(shape, torch.float64, seed=5)
    target.requires_grad_(True)
    prediction.requires_grad_(True)
    for loss in (
        SpectralMotionAlignment(),
        SpectralMotionAlignment(global_weight=0.0, wrap_phase=True, absolute_residuals=False),
        SpectralMotionAlignment(local_weight=0.0, wavelet="db2", levels=1, boundary="reflect"),
    ):
        assert torch.autograd.gradcheck(loss, (target, prediction))


def test_gradient_reaches_prediction_only_through_computed_terms():
    target, prediction = video_pair((1, 2, 8, 6, 6))
    prediction.requires_grad_(True)
    SpectralMotionAlignment()(target, prediction).backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all()
    assert prediction.grad.abs().sum() > 0


def test_zero_weight_term_is_not_computed():
    target, prediction = video_pair((1, 2, 8, 6, 6))
    only_global = SpectralMotionAlignment(local_weight=0.0).terms(target, prediction)
    only_local = SpectralMotionAlignment(global_weight=0.0).terms(target, prediction)
    assert only_global.local_amplitude is None and only_global.local_phase is None
    assert only_local.global_motion is None
    assert float(only_global.total) == pytest.approx(0.4 * float(only_global.global_motion))
    assert set(only_local.as_dict()) == {"total", "local_amplitude", "local_phase"}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    target, prediction = video_pair((1, 4, 8, 8, 8))
    target, prediction = target.to(dtype), prediction.to(dtype)
    loss = SpectralMotionAlignment()
    value = loss(target, prediction)
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(loss(target.float(), prediction.float())), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert loss(target.float(), prediction.float()).dtype == torch.float32


@pytest.mark.parametrize("frames", [2, 3, 5])
def test_short_clips(frames):
    target, prediction = video_pair((1, 2, frames, 5, 6), torch.float64)
    loss = SpectralMotionAlignment(levels=1)
    expected = 0.4 * global_term(target.numpy(), prediction.numpy(), levels=1) + 0.2 * sum(
        local_terms(target.numpy(), prediction.numpy())
    )
    assert float(loss(target, prediction)) == pytest.approx(expected, rel=1e-10)


def test_bad_input_errors():
    loss = SpectralMotionAlignment()
    video = torch.zeros(1, 2, 8, 4, 4)
    with pytest.raises(ValueError, match="at least 2 frames"):
        loss(video[:, :, :1], video[:, :, :1])
    with pytest.raises(ValueError, match="shapes differ"):
        loss(video, video[:, :, :7])
    with pytest.raises(ValueError, match=r"\(b, c, f, h, w\)"):
        loss(video[0], video[0])
    with pytest.raises(ValueError, match="at most 3"):
        SpectralMotionAlignment(levels=4)(video, video)
    with pytest.raises(ValueError, match="unknown wavelet 'nope'"):
        SpectralMotionAlignment(wavelet="nope")
    with pytest.raises(ValueError, match="levels \\+ 1 = 3"):
        SpectralMotionAlignment(level_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="levels must be"):
        SpectralMotionAlignment(levels=0)


videos = st.tuples(
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(4, 12),
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(0, 10**6),
)
option_sets = st.fixed_dictionaries(
    {"absolute_residuals": st.booleans(), "wrap_phase": st.booleans(), "wavelet": st.sampled_from(["haar", "db2"])}
)


def random_video(spec):
    *shape, seed = spec
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=40, deadline=None)
@given(videos, option_sets)
def test_identical_inputs_give_zero(spec, options):
    video = random_video(spec)
    terms = SpectralMotionAlignment(levels=1, **options).terms(video, video.clone())
    assert float(terms.global_motion) == 0.0
    # both spectra come from one batched FFT, whose SIMD lanes may round the halves differently
    assert float(terms.total) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(videos, option_sets)
def test_loss_is_symmetric(spec, options):
    a = random_video(spec)
    b = random_video((*spec[:-1], spec[-1] + 1))
    loss = SpectralMotionAlignment(levels=1, **options)
    assert float(loss(a, b)) == pytest.approx(float(loss(b, a)), rel=1e-12, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(videos, option_sets, st.floats(-5, 5))
def test_offset_common_to_all_frames_changes_nothing(spec, options, scale):
    a = random_video(spec)
    b = random_video((*spec[:-1], spec[-1] + 1))
    offset = scale * torch.rand(a.shape[0], a.shape[1], 1, *a.shape[3:], dtype=torch.float64)
    loss = SpectralMotionAlignment(levels=1, **options)
    assert float(loss(a, b + offset)) == pytest.approx(float(loss(a, b)), rel=1e-7, abs=1e-9)


def test_matches_the_authors_formulation():
    pytorch_wavelets = pytest.importorskip("pytorch_wavelets")
    target, prediction = video_pair((1, 4, 8, 12, 16), seed=6)
    official_dwt = pytorch_wavelets.DWT1DForward(wave="haar", J=2, mode="zero")
    b, c, f, h, w = target.shape

    def flat_residuals(video):
        flat = video.permute(0, 1, 3, 4, 2).reshape(b, c * h * w, f)
        return (flat[:, :, 1:] - flat[:, :, :-1]).abs()

    (low_t, high_t), (low_p, high_p) = official_dwt(flat_residuals(target)), official_dwt(flat_residuals(prediction))
    official_global = (low_t - low_p).abs().mean() + sum(
        (x - y).abs().mean() for x, y in zip(high_t, high_p, strict=True)
    )
    terms = SpectralMotionAlignment().terms(target, prediction)
    assert float(terms.global_motion) == pytest.approx(float(official_global), rel=1e-5)
    weights = torch.from_numpy(np.asarray(low_frequency_weights(h, w), dtype=np.float32))

    def official_spectrum(video):
        residual = (video[:, :, 1:] - video[:, :, :-1]).abs()
        return torch.fft.fftshift(torch.fft.fftn(residual, dim=(-2, -1)), dim=(-2, -1))

    spectrum_t, spectrum_p = official_spectrum(target), official_spectrum(prediction)
    official_amplitude = (weights * (spectrum_t.abs() - spectrum_p.abs()).abs()).mean()
    assert float(terms.local_amplitude) == pytest.approx(float(official_amplitude), rel=1e-5)

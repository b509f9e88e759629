import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

from sma import frame_residuals, predict_x0


def test_frame_residuals():
    video = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4, 1) ** 2
    residuals = frame_residuals(video)
    assert residuals.shape == (1, 2, 2, 4, 1)
    assert torch.equal(residuals[:, :, 1], video[:, :, 2] - video[:, :, 1])
    assert torch.equal(frame_residuals(-video, absolute=True), residuals)


def clean_and_noise(shape=(2, 4, 3, 5, 6)):
    return torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)


@pytest.mark.parametrize("scheduler_class", [DDPMScheduler, DDIMScheduler])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_predict_x0_inverts_add_noise(scheduler_class, prediction_type):
    scheduler = scheduler_class(num_train_timesteps=1000, prediction_type=prediction_type)
    clean, noise = clean_and_noise()
    timesteps = torch.tensor([10, 937])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    model_output = {
        "epsilon": noise,
        "v_prediction": scheduler.get_velocity(clean, noise, timesteps),
        "sample": clean,
    }[prediction_type]
    torch.testing.assert_close(predict_x0(model_output, noisy, timesteps, scheduler), clean, rtol=1e-6, atol=1e-6)


def test_predict_x0_epsilon_formula_with_scalar_timestep():
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear")
    noisy, eps = clean_and_noise()
    alpha_bar = scheduler.alphas_cumprod[500].double()
    expected = (noisy - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5
    torch.testing.assert_close(predict_x0(eps, noisy, 500, scheduler), expected)


def test_predict_x0_flow_matching():
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    scheduler.set_timesteps(20)
    clean, noise = clean_and_noise((1, 4, 3, 5, 6))
    timestep = scheduler.timesteps[7]
    noisy = scheduler.scale_noise(clean, timestep[None], noise)
    velocity = noise - clean
    torch.testing.assert_close(predict_x0(velocity, noisy, timestep, scheduler), clean)


def test_learned_variance_channels_are_dropped():
    scheduler = DDPMScheduler(variance_type="learned_range")
    clean, noise = clean_and_noise((1, 3, 2, 4, 4))
    noisy = scheduler.add_noise(clean, noise, torch.tensor([300]))
    output = torch.cat([noise, torch.randn_like(noise)], dim=1)
    torch.testing.assert_close(predict_x0(output, noisy, 300, scheduler), clean)


def test_half_precision_output_is_float32():
    scheduler = DDPMScheduler()
    x0 = predict_x0(torch.randn(1, 4, 2, 3, 3, dtype=torch.bfloat16), torch.randn(1, 4, 2, 3, 3).half(), 5, scheduler)
    assert x0.dtype == torch.float32


def test_unsupported_scheduler():
    with pytest.raises(ValueError, match="no alphas_cumprod"):
        predict_x0(torch.zeros(1), torch.zeros(1), 0, object())
    euler = EulerDiscreteScheduler(prediction_type="epsilon")
    assert predict_x0(torch.zeros(1, 1), torch.ones(1, 1), 0, euler).shape == (1, 1)

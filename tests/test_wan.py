"""Wan 2.1 and the motionlora method, on a tiny Wan of the real classes in the real folder layout, loaded through
the code a Hub id takes; the sampler against diffusers' own WanPipeline; real sizes on the meta device."""

import json
import re

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline
from real_scale import (
    WAN_T2V_1_3B,
    WAN_T2V_14B,
    lora_parameter_count,
    meta_wan,
    motionlora_official,
    parameter_count,
    wan_transformer,
)
from transformers import AutoTokenizer

from sma.backbones.wan import WanModel
from sma.errors import SmaError
from sma.methods import build_method
from sma.methods.motionlora import MotionLoRA, shifted_sigmas
from sma.recipes import load_config
from sma.runs import make_accelerator, transfer
from sma.spectral import SpectralMotionAlignment
from sma.video import MovingObject, read_video, synthetic_video, write_video
from tiny_models import build_text_to_video
from tiny_wan import build_wan

WORDS = ("a", "red", "blue", "circle", "square")
NEGATIVE = "static, blurred &amp; gray"  # an HTML entity: both sides must clean the prompt the same way


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    return build_wan(tmp_path_factory.mktemp("wan") / "model", words=WORDS)


def wan_config(folder, **overrides):
    values = {"method": "motionlora", "model": str(folder), "video.frames": 9, "video.height": 32, "video.width": 32}
    values |= {"generate.sampler": "unipc", "generate.steps": 4, "generate.guidance_scale": 5.0}
    values |= {"generate.negative_prompt": NEGATIVE, "sma.levels": 1}
    return load_config(overrides=values | overrides)


def test_the_written_umt5_tokenizer_loads_as_the_hubs_does(wan_folder):
    tokenizer = AutoTokenizer.from_pretrained(wan_folder / "tokenizer")
    tokens = tokenizer("a red circle", padding="max_length", max_length=8, return_attention_mask=True)
    assert tokenizer.convert_ids_to_tokens(tokens.input_ids[:4]) == ["\u2581a", "\u2581red", "\u2581circle", "</s>"]
    assert tokens.attention_mask == [1, 1, 1, 1, 0, 0, 0, 0]
    assert tokenizer.decode(tokenizer("a zebra").input_ids, skip_special_tokens=True) == "a zebra"  # by letters


@pytest.mark.parametrize("sampler", ["unipc", "flow-euler"])
def test_generation_equals_diffusers_wan_pipeline(wan_folder, sampler):
    """Same initial noise, prompts and settings: latents and decoded frames as WanPipeline's (float32 on the CPU;
    sma batches the conditional and unconditional passes, the pipeline runs them apart: 1e-4 absolute)."""
    config = wan_config(wan_folder, **{"generate.sampler": sampler, "motionlora.sample_shift": 2.0})
    method = build_method(config)
    assert isinstance(method.model, WanModel)
    reference = torch.zeros(1, 4, 3, 4, 4)
    latents = method.generate(reference, "a blue square", seed=3)
    pipeline = WanPipeline.from_pretrained(wan_folder)
    if sampler == "flow-euler":
        pipeline.scheduler = FlowMatchEulerDiscreteScheduler(shift=2.0)
    else:
        pipeline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config, flow_shift=2.0)
    options = {"prompt": "a blue square", "negative_prompt": NEGATIVE, "height": 32, "width": 32, "num_frames": 9}
    options |= {"num_inference_steps": 4, "guidance_scale": 5.0, "latents": method.fresh_noise(reference, 3)}
    expected = pipeline(**options, output_type="latent").frames
    assert latents.abs().max() > 0.5
    torch.testing.assert_close(latents, expected, atol=1e-4, rtol=0)
    # the untuned baseline (no LoRA yet) samples the same way, from noise shaped by `video.*`
    torch.testing.assert_close(method.generate_untuned("a blue square", 3), expected, atol=1e-4, rtol=0)
    frames = pipeline(**options, output_type="pt").frames  # (b, f, 3, h, w) in [0, 1]
    decoded = method.model.decode_latents(latents)  # (b, 3, f, h, w) in [-1, 1]
    assert decoded.shape == (1, 3, 9, 32, 32)
    torch.testing.assert_close((decoded.permute(0, 2, 1, 3, 4) + 1) / 2, frames, atol=1e-4, rtol=0)


def test_training_noise_levels_follow_the_shifted_logit_normal():
    """musubi-tuner's "shift" sampling: s = k u / (1 + (k - 1) u), u = sigmoid(n); its quartiles for k = 3."""
    sigmas = shifted_sigmas(40_000, 3.0, torch.Generator().manual_seed(0))
    quartile = torch.sigmoid(torch.tensor(0.6745))  # the upper quartile of u
    expected = [3 * u / (1 + 2 * u) for u in (1 - quartile, torch.tensor(0.5), quartile)]
    torch.testing.assert_close(
        sigmas.quantile(torch.tensor([0.25, 0.5, 0.75])), torch.stack(expected), atol=6e-3, rtol=0
    )
    assert sigmas.min() > 0 and sigmas.max() < 1


@pytest.mark.parametrize("first_frame", [False, True])
def test_loss_is_flow_matching_plus_sma_on_the_denoised_latents(wan_folder, first_frame):
    """Written out from the convention: x_t = (1 - s) x0 + s eps, target eps - x0, x0_hat = x_t - s v_hat; SMA leaves
    latent frame 0 (the first video frame alone) out unless asked."""
    method = build_method(wan_config(wan_folder, **{"motionlora.sma_first_latent_frame": first_frame}))
    method.prepare()
    model = method.model
    latents = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    text = model.encode_prompts(["a red circle"])
    terms = method.loss(latents, text, torch.Generator().manual_seed(5))
    draws = torch.Generator().manual_seed(5)
    noise = torch.randn(latents.shape, generator=draws)
    u = torch.randn(1, generator=draws).sigmoid()
    s = 3 * u / (1 + 2 * u)
    noisy = (1 - s) * latents + s * noise
    with torch.no_grad():
        velocity = model.unet(noisy, s * 1000, text).sample
    torch.testing.assert_close(terms["flow"], ((velocity - (noise - latents)) ** 2).mean())
    kept = slice(0 if first_frame else 1, None)
    sma = SpectralMotionAlignment(global_weight=0.4, local_weight=0.2, levels=1)
    torch.testing.assert_close(terms["sma"], sma(latents[:, :, kept], (noisy - s * velocity)[:, :, kept]))


def test_transfer_end_to_end_with_appearance_debiasing(wan_folder, tmp_path):
    clip = synthetic_video(MovingObject("circle", "red", "zigzag"), num_frames=12, height=32, width=32)
    reference = write_video(tmp_path / "reference.mp4", clip.frames)
    overrides = {"prompt": "a red circle", "targets": ["a blue square"], "train.steps": 3, "train.checkpoint_every": 3}
    overrides |= {"motionlora.appearance_debiasing": True, "motionlora.appearance_dropout": 0.0}
    overrides |= {"motionlora.feed_forward": True, "train.gradient_checkpointing": True, "motionlora.lora_rank": 2}
    run = transfer(wan_config(wan_folder, **overrides), reference, tmp_path / "run")
    assert len(read_video(run / "videos" / "00-a-blue-square.mp4")) == 9
    losses = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert {"appearance", "motion", "sma", "loss"} <= set(losses[-1])
    about = json.loads((run / "adapter" / "adapter.json").read_text())
    assert about["tensors"] == 2 * 2 * 10 * 2  # sets x blocks x (8 attention + 2 feed-forward layers) x (A, B)


def prepared(folder, **overrides) -> MotionLoRA:
    method = build_method(wan_config(folder, **overrides))
    torch.manual_seed(0)  # peft draws the LoRA down-projections from the global generator
    method.prepare()
    for name, parameter in method.trainable.items():  # LoRA up-projections start at zero: make them act
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5, generator=torch.Generator().manual_seed(len(name)))
    return method


def test_generation_uses_the_motion_set_alone(wan_folder):
    method = prepared(wan_folder, **{"motionlora.appearance_debiasing": True})
    method.set_conditions(method.condition_on(torch.rand(1, 3, 9, 32, 32) * 2 - 1))
    assert method.frame_latents.shape == (9, 4, 1, 4, 4)  # each frame alone: one latent frame
    latents, text, t = torch.randn(1, 4, 3, 4, 4), method.model.encode_prompts(["a red circle"]), torch.tensor([500.0])
    method.prepare_generation()
    with torch.no_grad():
        both_off_but_motion = method.model.predict(latents, t, text)
        for name, parameter in method.trainable.items():
            if ".appearance." in name and "lora_B" in name:
                parameter.zero_()
        without_appearance = method.model.predict(latents, t, text)
        method.use(appearance=False, motion=False)
        base = method.model.predict(latents, t, text)
    torch.testing.assert_close(both_off_but_motion, without_appearance)
    assert (both_off_but_motion - base).abs().max() > 1e-3
    groups = method.loss_groups(method.loss(latents, text, torch.Generator().manual_seed(0)))
    names = {id(p): n for n, p in method.trainable.items()}
    assert [sorted({names[id(p)].split(".lora_")[1].split(".")[1] for p in ps}) for _, ps in groups] == [
        ["appearance"],
        ["motion"],
    ]


def test_gradient_checkpointing_and_bf16_frozen_weights(wan_folder):
    latents, generator = torch.randn(1, 4, 3, 4, 4), lambda: torch.Generator().manual_seed(2)
    gradients = []
    for checkpointing in (False, True):
        method = prepared(wan_folder)
        if checkpointing:
            method.model.enable_gradient_checkpointing()
        method.model.unet.train()
        text = method.model.encode_prompts(["a red circle"])
        method.loss(latents, text, generator())["loss"].backward()
        gradients.append(torch.cat([p.grad.flatten() for p in method.trainable.values()]))
    torch.testing.assert_close(gradients[0], gradients[1])
    method.model.cast_frozen(torch.bfloat16)
    dtypes = {name: p.dtype for name, p in method.model.unet.named_parameters()}
    assert dtypes["blocks.0.attn1.to_q.base_layer.weight"] == torch.bfloat16
    assert all(dtype == torch.float32 for name, dtype in dtypes.items() if "lora_" in name or "scale_shift" in name)
    accelerator = make_accelerator(wan_config(wan_folder, **{"train.mixed_precision": "bf16"}))
    method.model.unet.zero_grad()
    with accelerator.autocast():
        loss = method.loss(latents, text, generator())["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in method.trainable.values()
    )


def test_wan_models_go_to_motionlora_and_motionlora_to_wan(wan_folder, tmp_path):
    with pytest.raises(SmaError, match="is a Wan model: the method that trains on it is motionlora"):
        build_method(load_config(overrides={"method": "vmc", "model": str(wan_folder)}))
    unet3d = build_text_to_video(tmp_path / "zeroscope")
    with pytest.raises(SmaError, match=re.escape("is a TextToVideoSDPipeline, not a Wan text- or image-to-video")):
        build_method(wan_config(unet3d))
    with pytest.raises(SmaError, match=r"`generate.guidance_scale_2` guides Wan 2.2 A14B's low-noise expert; .* one"):
        build_method(wan_config(wan_folder, **{"generate.guidance_scale_2": 3.0}))
    with pytest.raises(SmaError, match=r"motionlora.experts chooses among Wan 2.2 A14B's two experts"):
        build_method(wan_config(wan_folder, **{"motionlora.experts": "high"})).prepare()
    with pytest.raises(SmaError, match=r"Wan takes 4k\+1 frames, got 8 .*: try 5 or 9"):
        wan_config(wan_folder, **{"video.frames": 8})
    with pytest.raises(SmaError, match=re.escape("`generate.sampler` must be one of unipc, dpmsolver++, flow-euler")):
        wan_config(wan_folder, **{"generate.sampler": "ddim"})
    with pytest.raises(SmaError, match=re.escape("`sma.levels` 3 is too many for 4 latent frames")):
        wan_config(wan_folder, **{"video.frames": 17, "sma.levels": 3})


@pytest.mark.parametrize(
    ("config", "feed_forward", "count", "inject"),
    [
        (WAN_T2V_1_3B, False, 23_592_960, True),  # 30 blocks x 8 projections x r (1536 + 1536), r = 32
        (WAN_T2V_1_3B, True, 43_745_280, True),  # + 30 x 2 x r (1536 + 8960)
        (WAN_T2V_14B, False, 104_857_600, False),  # 40 x 8 x r (5120 + 5120); the layers only (peft is slow here)
        (WAN_T2V_14B, True, 153_354_240, False),  # + 40 x 2 x r (5120 + 13824)
    ],
)
def test_real_size_lora_layers_follow_the_trainers_rule(config, feed_forward, count, inject):
    transformer = wan_transformer(config)
    assert len(transformer.blocks) == config["num_layers"]
    assert transformer.blocks[0].attn1.to_q.in_features == config["num_attention_heads"] * 128
    overrides = {"method": "motionlora", "video.frames": 33, "motionlora.feed_forward": feed_forward}
    method = MotionLoRA(meta_wan(transformer), load_config(overrides=overrides))
    official = motionlora_official(transformer, feed_forward)
    assert set(method.lora_targets()) == official
    assert lora_parameter_count(transformer, official) == count
    if inject:
        trainable = method.prepare()
        assert parameter_count(transformer, set(trainable)) == count
        assert all(parameter.requires_grad == (name in trainable) for name, parameter in transformer.named_parameters())

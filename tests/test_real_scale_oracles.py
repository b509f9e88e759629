"""The official trainable sets of tests/real_scale.py, on real-size models built on the meta device.

Expected counts are worked out by hand from the block widths (d = 320, 640, 1280): the
cross-attention blocks of an SD-style UNet hold 5 transformer blocks at 320, 5 at 640 and
6 at 1280 (mid block included), so sum d^2 = 12,390,400 and sum d = 12,480.
"""

import pytest
from real_scale import (
    controlvideo_official,
    dmt_official_features,
    lora_parameter_count,
    modelscope_unet,
    motiondirector_official,
    parameter_count,
    sd15_controlnet_depth,
    sd15_unet,
    tuneavideo_official,
    vmc_official,
    zeroscope_unet,
)

WIDTHS = [320] * 5 + [640] * 5 + [1280] * 6
SUM_D2 = sum(d * d for d in WIDTHS)
SUM_D = sum(WIDTHS)


@pytest.fixture(scope="module")
def zeroscope():
    return zeroscope_unet()


@pytest.fixture(scope="module")
def sd15():
    return sd15_unet(), sd15_controlnet_depth()


def test_models_have_their_real_size(zeroscope, sd15):
    models = {"zeroscope": zeroscope, "sd15": sd15[0], "controlnet": sd15[1]}
    sizes = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    print(sizes)
    assert sizes["sd15"] == 859_520_964  # the published SD-1.5 UNet size
    assert 1.40e9 < sizes["zeroscope"] < 1.42e9
    assert 3.6e8 < sizes["controlnet"] < 3.62e8
    assert sum(p.numel() for p in modelscope_unet().parameters()) == sizes["zeroscope"]


def test_vmc_trains_qkv_of_both_temporal_self_attentions(zeroscope):
    names = vmc_official(zeroscope)
    print("vmc", len(names), parameter_count(zeroscope, names))
    assert len(names) == 16 * 2 * 3  # 16 temporal transformers, attn1 and attn2, q/k/v weights (no bias)
    assert parameter_count(zeroscope, names) == 6 * SUM_D2 == 74_342_400
    assert not any(name.startswith("transformer_in") for name in names)


def test_motiondirector_lora_targets(zeroscope):
    targets = motiondirector_official(zeroscope)
    counts = {adapter: lora_parameter_count(zeroscope, names) for adapter, names in targets.items()}
    print("motiondirector", {adapter: len(names) for adapter, names in targets.items()}, counts)
    assert len(targets["spatial"]) == 16 * 6  # attn1 q/k/v/out + ff.net.0.proj + ff.net.2
    assert len(targets["temporal"]) == 17 * 10  # 16 temp_attentions + transformer_in; attn1, attn2 (4 each), ff (2)
    assert "transformer_in.transformer_blocks.0.ff.net.0.proj" in targets["temporal"]
    assert "up_blocks.3.temp_attentions.2.transformer_blocks.0.attn2.to_out.0" in targets["temporal"]
    assert not any(".attn2." in name for name in targets["spatial"])
    assert not any("proj_in" in name or "proj_out" in name for name in targets["spatial"] | targets["temporal"])
    # rank 32 on a d x d projection: 64 d; GEGLU in d -> 8 d: 32 * 9 d; ff out 4 d -> d: 32 * 5 d
    assert counts["spatial"] == 32 * (4 * 2 + 9 + 5) * SUM_D
    assert counts["temporal"] == 32 * (8 * 2 + 9 + 5) * (SUM_D + 512)  # transformer_in is 512 wide


def test_tuneavideo_trains_queries_and_temporal_attention(sd15):
    unet, _ = sd15
    trainable = tuneavideo_official(unet)
    total = trainable.count({"unet": unet})
    print("tuneavideo", total)
    assert total == 6 * SUM_D2 + SUM_D == 74_354_880
    assert not any("norm_temp" in name for name in trainable.added)


def test_controlvideo_trains_out_projections_and_temporal_layers(sd15):
    unet, controlnet = sd15
    trainable = controlvideo_official(unet, controlnet)
    total = trainable.count({"unet": unet, "controlnet": controlnet})
    controlnet_part = sum(1 for name in trainable.existing if name.startswith("controlnet.")) // 2
    print("controlvideo", total, "controlnet blocks", controlnet_part)
    no_mid_d2, no_mid_d = SUM_D2 - 1280**2, SUM_D - 1280
    controlnet_d2, controlnet_d = 2 * 320**2 + 2 * 640**2 + 3 * 1280**2, 2 * 320 + 2 * 640 + 3 * 1280
    expected = (SUM_D2 + SUM_D) + (5 * no_mid_d2 + 2 * no_mid_d) + (controlnet_d2 + controlnet_d)
    assert total == expected == 72_130_240
    assert controlnet_part == 7
    assert not any(name.startswith("unet.mid_block") for name in trainable.added)


def test_dmt_features_exist_in_zeroscope(zeroscope):
    assert list(dmt_official_features(zeroscope)) == [
        "up_blocks.1.upsamplers.0",
        "up_blocks.1.resnets.1",
        "up_blocks.1.temp_convs.1",
    ]

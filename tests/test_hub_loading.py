"""Loading what the Hub holds: .bin weights read safely, fp16 variants, shards, revisions of a Hub id.

Each layout is written the way a Hub repository holds it (diffusers' and transformers'
`save_pretrained`; transformers 5 writes safetensors only, so its .bin files are written
with `torch.save` of the state dict, as transformers 4 did) and loaded through sma's loaders.
The expected weights come from the original safetensors files, read by the libraries directly.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from diffusers import AutoencoderKL, ControlNetModel, ModelMixin, UNet2DConditionModel, UNet3DConditionModel
from safetensors.torch import load_file
from transformers import CLIPModel, CLIPTextModel

from sma.backbones.hub import ModelNotFoundError
from sma.backbones.text_to_image import TextToImageModel
from sma.backbones.text_to_video import TextToVideoModel
from sma.methods.tuneavideo import TuneAVideo
from sma.metrics.clip import ClipUnavailableError, load_clip
from tiny_models import build_controlnet, build_text_to_image, build_text_to_video, build_tiny_clip

TEXT_TO_VIDEO = {"unet": UNet3DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}
TEXT_TO_IMAGE = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}
# layout: (half precision, variant, safetensors, sharded)
LAYOUTS = {
    "bin": (False, None, False, False),
    "fp16-bin": (True, None, False, False),  # fp16 tensors under the plain .bin names, as ZeroScope holds them
    "fp16-variant": (True, "fp16", True, False),
    "fp16-variant-bin": (True, "fp16", False, False),
    "sharded": (False, None, True, True),
    "sharded-bin": (False, None, False, True),
    "sharded-fp16-variant": (True, "fp16", True, True),
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


def save_network(network: torch.nn.Module, folder: Path, layout: str) -> None:
    half, variant, safetensors, sharded = LAYOUTS[layout]
    if half:
        network = network.half()
    shard_size = "20KB" if sharded else "10GB"
    if isinstance(network, ModelMixin) or safetensors:
        network.save_pretrained(folder, safe_serialization=safetensors, variant=variant, max_shard_size=shard_size)
        return
    network.config.dtype = network.dtype
    network.config.save_pretrained(folder)
    suffix = f".{variant}.bin" if variant else ".bin"
    state = network.state_dict()
    if not sharded:
        torch.save(state, folder / f"pytorch_model{suffix}")
        return
    names = list(state)
    shards = {f"pytorch_model-0000{i + 1}-of-00002{suffix}": names[i::2] for i in range(2)}
    for file, keys in shards.items():
        torch.save({key: state[key] for key in keys}, folder / file)
    weight_map = {key: file for file, keys in shards.items() for key in keys}
    (folder / f"pytorch_model{suffix}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def resave(original: Path, folder: Path, networks: dict, layout: str) -> Path:
    """`original` with each of `networks` (subfolder: class) saved again in `layout` instead of safetensors."""
    shutil.copytree(original, folder)
    for subfolder, cls in networks.items():
        for path in (folder / subfolder).glob("*.safetensors*"):
            path.unlink()
        save_network(cls.from_pretrained(original / subfolder), folder / subfolder, layout)
    return folder


def expected_weights(original: Path, networks: dict, half: bool = False) -> dict[str, dict[str, torch.Tensor]]:
    """The original float32 weights, rounded through float16 when `half`."""
    weights = {}
    for subfolder, cls in networks.items():
        state = cls.from_pretrained(original / subfolder, use_safetensors=True).state_dict()
        weights[subfolder] = {key: value.half().float() if half else value for key, value in state.items()}
    return weights


def assert_weights(network: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = network.state_dict()
    for key, value in expected.items():
        assert state[key].dtype == torch.float32, key
        assert torch.equal(state[key], value), key


def weight_files(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir() if path.suffix in (".bin", ".safetensors")}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_text_to_video_loads_every_layout(model_dir, layout, tmp_path):
    folder = resave(model_dir, tmp_path / "model", TEXT_TO_VIDEO, layout)
    _, variant, safetensors, sharded = LAYOUTS[layout]
    for subfolder in TEXT_TO_VIDEO:
        files = weight_files(folder / subfolder)
        assert all(name.endswith(".safetensors" if safetensors else ".bin") for name in files), files
        assert all((".fp16" in name) == (variant is not None) for name in files), files
        assert (len(files) > 1) == sharded, files
    if layout == "fp16-bin":  # as ZeroScope's: transformers 5 would load it in float16 without being told
        assert json.loads((folder / "text_encoder" / "config.json").read_text())["dtype"] == "float16"
    model = TextToVideoModel.from_pretrained(str(folder))
    for subfolder, weights in expected_weights(model_dir, TEXT_TO_VIDEO, LAYOUTS[layout][0]).items():
        assert_weights(getattr(model, subfolder), weights)


@pytest.mark.parametrize("layout", ["fp16-bin", "sharded-bin"])
def test_text_to_image_and_controlnet_load_bin_weights(layout, tmp_path):
    image_model = build_text_to_image(tmp_path / "sd")
    controlnet = build_controlnet(tmp_path / "controlnet")
    folder = resave(image_model, tmp_path / "sd-resaved", TEXT_TO_IMAGE, layout)
    controlnet_folder = resave(controlnet, tmp_path / "controlnet-resaved", {"": ControlNetModel}, layout)
    assert weight_files(controlnet_folder) and all(name.endswith(".bin") for name in weight_files(controlnet_folder))
    model = TextToImageModel.from_pretrained(str(folder), TuneAVideo.inflation, controlnet=str(controlnet_folder))
    for subfolder, weights in expected_weights(image_model, TEXT_TO_IMAGE, LAYOUTS[layout][0]).items():
        assert_weights(getattr(model, subfolder), weights)
    assert_weights(model.controlnet, expected_weights(controlnet, {"": ControlNetModel}, LAYOUTS[layout][0])[""])


@pytest.mark.parametrize("layout", ["bin", "fp16-variant", "sharded-bin"])
def test_clip_loads_bin_variant_and_sharded_weights(tiny_clip, layout, tmp_path):
    folder = resave(tiny_clip, tmp_path / "clip", {"": CLIPModel}, layout)
    assert not (folder / "model.safetensors").exists()
    scorer = load_clip(folder)
    assert_weights(scorer.model, expected_weights(tiny_clip, {"": CLIPModel}, LAYOUTS[layout][0])[""])


def test_safetensors_before_bin_and_full_precision_before_fp16(model_dir, tmp_path):
    folder = shutil.copytree(model_dir, tmp_path / "model")
    other = build_text_to_video(tmp_path / "other", seed=1)
    for subfolder in ("unet", "text_encoder"):  # a diffusers and a transformers network
        network = TEXT_TO_VIDEO[subfolder].from_pretrained(other / subfolder)
        save_network(network, folder / subfolder, "bin")
        save_network(network, folder / subfolder, "fp16-variant")
    model = TextToVideoModel.from_pretrained(str(folder))
    original = expected_weights(model_dir, TEXT_TO_VIDEO)
    assert_weights(model.unet, original["unet"])
    assert_weights(model.text_encoder, original["text_encoder"])

    for subfolder in ("unet", "text_encoder"):  # without the safetensors, the .bin of the other model loads
        for path in (folder / subfolder).glob("*.safetensors"):
            if ".fp16." not in path.name:
                path.unlink()
    model = TextToVideoModel.from_pretrained(str(folder))
    replaced = expected_weights(other, TEXT_TO_VIDEO)
    assert_weights(model.unet, replaced["unet"])
    assert_weights(model.text_encoder, replaced["text_encoder"])


class WritesMarker:
    """Unpickled, it creates the file `marker`: what a malicious .bin could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_malicious_bin(folder: Path, name: str, marker: Path) -> Path:
    """Replace the safetensors in `folder` with a .bin holding the same tensors and a WritesMarker."""
    state = {}
    for path in folder.glob("*.safetensors"):
        state.update(load_file(path))
        path.unlink()
    path = folder / name
    torch.save({**state, "payload": WritesMarker(marker)}, path)
    torch.load(path, weights_only=False)  # the payload works: an unsafe loader would run it
    assert marker.exists()
    marker.unlink()
    return path


@pytest.mark.parametrize(
    "subfolder, name", [("unet", "diffusion_pytorch_model.bin"), ("text_encoder", "pytorch_model.bin")]
)
def test_a_bin_that_would_run_code_is_refused(model_dir, subfolder, name, tmp_path):
    folder = shutil.copytree(model_dir, tmp_path / "model")
    marker = tmp_path / "marker"
    write_malicious_bin(folder / subfolder, name, marker)
    with pytest.raises(ModelNotFoundError) as caught:
        TextToVideoModel.from_pretrained(str(folder))
    message = str(caught.value)
    assert f"cannot load {subfolder}/ of {folder}" in message and name in message and "weights_only" in message
    assert "\n" not in message
    assert not marker.exists()


def test_clip_refuses_a_bin_that_would_run_code(tiny_clip, tmp_path):
    folder = shutil.copytree(tiny_clip, tmp_path / "clip")
    marker = tmp_path / "marker"
    write_malicious_bin(folder, "pytorch_model.bin", marker)
    with pytest.raises(ClipUnavailableError, match=r"weights_only=True\) refuses pytorch_model.bin") as caught:
        load_clip(folder)
    assert "\n" not in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("files", [["model.ckpt", "weights.pt"], ["text2video_pytorch_model.pth"], []])
def test_a_folder_without_readable_weights_says_what_it_found_and_what_sma_reads(model_dir, files, tmp_path):
    folder = shutil.copytree(model_dir, tmp_path / "model")
    state = UNet3DConditionModel.from_pretrained(folder / "unet").state_dict()
    for path in (folder / "unet").glob("*.safetensors"):
        path.unlink()
    for name in files:
        torch.save(state, folder / "unet" / name)
    with pytest.raises(ModelNotFoundError) as caught:
        TextToVideoModel.from_pretrained(str(folder))
    message = str(caught.value)
    found = ", ".join(sorted(["config.json", *files]))
    assert f"cannot load unet/ of {folder}: no weights sma reads there (found {found})" in message
    assert "safetensors or PyTorch .bin weights" in message and "\n" not in message


def hub_cache(cache: Path, repo_id: str, revisions: dict[str, Path]) -> dict[str, str]:
    """Put each folder into a Hugging Face cache as branch `name` of `repo_id`, files linked to blobs as
    huggingface_hub does; returns the commit of each branch."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    commits = {}
    for branch, folder in revisions.items():
        commits[branch] = commit = hashlib.sha1(branch.encode()).hexdigest()
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                blob = storage / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
                blob.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, blob)
                link = storage / "snapshots" / commit / path.relative_to(folder)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(os.path.relpath(blob, link.parent))
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / branch).write_text(commit)
    return commits


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, used by huggingface_hub and sma, with the Hub switched off."""
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # read when huggingface_hub loads
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_a_revision_of_a_hub_id_loads_from_the_cache(model_dir, offline_cache, tmp_path):
    other = build_text_to_video(tmp_path / "other", seed=1)
    zeroscope_like = resave(other, tmp_path / "zeroscope", TEXT_TO_VIDEO, "fp16-bin")
    commits = hub_cache(offline_cache, "sma-tests/tiny-t2v", {"main": model_dir, "other": zeroscope_like})
    # the cache is one huggingface_hub itself reads
    config = huggingface_hub.hf_hub_download("sma-tests/tiny-t2v", "unet/config.json", revision="other")
    assert f"snapshots/{commits['other']}/unet/config.json" in config

    main = expected_weights(model_dir, TEXT_TO_VIDEO)
    changed = expected_weights(other, TEXT_TO_VIDEO, half=True)
    for revision, expected in [(None, main), ("main", main), ("other", changed), (commits["other"], changed)]:
        model = TextToVideoModel.from_pretrained("sma-tests/tiny-t2v", revision=revision)
        for subfolder, weights in expected.items():
            assert_weights(getattr(model, subfolder), weights)

    with pytest.raises(ModelNotFoundError) as caught:
        TextToVideoModel.from_pretrained("sma-tests/tiny-t2v", revision="nowhere")
    message = str(caught.value)
    assert "'sma-tests/tiny-t2v' at revision 'nowhere' is not in the local Hugging Face cache" in message
    assert "hf download sma-tests/tiny-t2v --revision nowhere" in message and "\n" not in message


def test_text_to_image_and_controlnet_revisions(offline_cache, tmp_path):
    models = {seed: build_text_to_image(tmp_path / f"sd-{seed}", seed=seed) for seed in (0, 1)}
    controlnets = {seed: build_controlnet(tmp_path / f"controlnet-{seed}", seed=seed) for seed in (0, 1)}
    hub_cache(offline_cache, "sma-tests/tiny-sd", {"main": models[0], "v1": models[1]})
    hub_cache(offline_cache, "sma-tests/tiny-controlnet", {"main": controlnets[0], "v1": controlnets[1]})
    model = TextToImageModel.from_pretrained(
        "sma-tests/tiny-sd", TuneAVideo.inflation, controlnet="sma-tests/tiny-controlnet", controlnet_revision="v1"
    )
    assert_weights(model.unet, expected_weights(models[0], TEXT_TO_IMAGE)["unet"])
    assert_weights(model.controlnet, expected_weights(controlnets[1], {"": ControlNetModel})[""])
    model = TextToImageModel.from_pretrained("sma-tests/tiny-sd", TuneAVideo.inflation, revision="v1")
    assert_weights(model.unet, expected_weights(models[1], TEXT_TO_IMAGE)["unet"])


def test_clip_revision(tiny_clip, offline_cache, tmp_path):
    other = build_tiny_clip(tmp_path / "other", seed=1)
    hub_cache(offline_cache, "sma-tests/tiny-clip", {"main": tiny_clip, "other": other})
    expected = {
        name: expected_weights(folder, {"": CLIPModel})[""] for name, folder in [("main", tiny_clip), ("other", other)]
    }
    assert_weights(load_clip("sma-tests/tiny-clip").model, expected["main"])
    assert_weights(load_clip("sma-tests/tiny-clip", revision="other").model, expected["other"])

"""Text-to-video latent diffusion models with diffusers' UNet3DConditionModel (ZeroScope, ModelScope).

diffusers deprecated `TextToVideoSDPipeline`, so `sma` loads the components itself and
keeps here only what the methods need: encode a video and prompts, predict, and name the
temporal layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from diffusers import UNet3DConditionModel

from sma.backbones.hub import load_component
from sma.backbones.latent_video import LatentVideoModel, load_text_and_vae, lora_target_patterns
from sma.errors import SmaError


class _FeaturesRecorded(Exception):
    """Ends a UNet forward early: every feature asked for has been recorded."""


@dataclass
class TextToVideoModel(LatentVideoModel):
    unet: UNet3DConditionModel
    # VMC's rule (official code): modules whose name contains "temp_attentions" and ends in to_q, to_k or to_v;
    # `transformer_in` is not among them.
    temporal_attention_pattern = re.compile(r".*temp_attentions.*(to_q|to_k|to_v)")
    # The temporal transformers are `temp_attentions.M` and `transformer_in`.
    lora_patterns = lora_target_patterns(r"temp_attentions\.\d+|transformer_in")

    @classmethod
    def from_pretrained(
        cls, source: str, device: str | torch.device = "cpu", revision: str | None = None
    ) -> TextToVideoModel:
        """Load every component in float32 from a Hub id (at `revision`) or a local folder in diffusers layout."""
        unet = load_component(UNet3DConditionModel, source, "unet", revision)
        return cls(unet=unet, **load_text_and_vae(source, revision)).freeze().to(device)

    @classmethod
    def pretrained_weights(cls, source: str, revision: str | None = None, **sources: str) -> dict[str, torch.Tensor]:
        return load_component(UNet3DConditionModel, source, "unet", revision).state_dict()

    @classmethod
    def comfyui_lora_keys(cls, layer: str) -> tuple[str, str]:
        raise SmaError(
            "ComfyUI has no loader for ZeroScope or ModelScope (diffusers UNet3D) LoRAs: export for diffusers instead"
        )

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        return self.unet(latents, timesteps, encoder_hidden_states=text_embeddings.to(latents.dtype)).sample

    def features(
        self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor, module_names: list[str]
    ) -> dict[str, torch.Tensor]:
        """Outputs of the named UNet modules, from a forward that stops once they have all run.

        The layers after them are never run, so backward keeps nothing of them. UNet3D folds
        frames into the batch: a block's output is (b * f, c, h, w).
        """
        modules = dict(self.unet.named_modules())
        with self.capture_features(module_names) as features:

            def stop_when_complete(_module, _inputs, _output):
                if len(features) == len(set(module_names)):
                    raise _FeaturesRecorded

            # registered after the recorders, so each module records its output before this runs
            handles = [modules[name].register_forward_hook(stop_when_complete) for name in set(module_names)]
            try:
                self.predict(latents, timesteps, text_embeddings)
            except _FeaturesRecorded:
                pass
            finally:
                for handle in handles:
                    handle.remove()
        return features

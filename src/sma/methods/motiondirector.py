"""MotionDirector: dual-path LoRA, appearance on single frames, motion on the clip."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer

from sma.methods.base import TrainedMethod
from sma.objectives import motiondirector_spatial_loss, motiondirector_temporal_loss, with_sma

ATTENTION_PROJECTIONS = r"transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"
# peft matches the whole module name; spatial transformers are `attentions`, temporal ones `temp_attentions`
TARGETS = {
    "spatial": rf"(.*\.)?attentions\.\d+\.{ATTENTION_PROJECTIONS}",
    "temporal": rf"(.*\.)?temp_attentions\.\d+\.{ATTENTION_PROJECTIONS}",
}


@dataclass
class MotionDirectorOptions:
    lora_rank: int = 32
    spatial_dropout: float = 0.2  # chance to drop the spatial LoRA in the temporal path


class MotionDirector(TrainedMethod):
    """MotionDirector (Zhao et al.): spatial and temporal LoRA on the attention projections.

    Spatial path: MSE on one random frame with the temporal LoRA off. Temporal path: MSE
    on the clip plus the appearance-debiased term (+ SMA), with the spatial LoRA dropped
    at random. Only the temporal LoRA is applied when generating a new appearance.
    """

    name = "motiondirector"
    Options = MotionDirectorOptions

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        unet = self.model.unet
        rank = self.options.lora_rank
        with warnings.catch_warnings():  # peft warns that a second adapter is added: that is the design
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            for adapter, pattern in TARGETS.items():
                config = LoraConfig(r=rank, lora_alpha=rank, target_modules=pattern, init_lora_weights=True)
                inject_adapter_in_model(config, unet, adapter_name=adapter)
        return self.train_only({name: parameter for name, parameter in unet.named_parameters() if "lora_" in name})

    def set_path(self, spatial: bool, temporal: bool) -> None:
        """Switch each LoRA on (scale 1) or off (scale 0), as MotionDirector does."""
        for module in self.model.unet.modules():
            if isinstance(module, LoraLayer):
                for adapter, enabled in (("spatial", spatial), ("temporal", temporal)):
                    module.set_scale(adapter, 1.0 if enabled else 0.0)

    def loss(self, latents: torch.Tensor, text: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        frames = latents.shape[2]
        frame = int(torch.randint(0, frames, (1,), generator=generator))
        anchor = int(torch.randint(0, frames, (1,), generator=generator))
        drop_spatial = float(torch.rand((), generator=generator)) < self.options.spatial_dropout

        self.set_path(spatial=True, temporal=False)
        single = latents[:, :, frame : frame + 1]
        noise, timesteps, noisy = self.noised(single, generator)
        output = self.model.predict(noisy, timesteps, text)
        spatial = motiondirector_spatial_loss(output, self.regression_target(single, noise, timesteps))

        self.set_path(spatial=not drop_spatial, temporal=True)
        noise, timesteps, noisy = self.noised(latents, generator)
        output = self.model.predict(noisy, timesteps, text)
        target = self.regression_target(latents, noise, timesteps)
        terms = {"spatial": spatial, "temporal": motiondirector_temporal_loss(output, target, anchor)}
        self.set_path(spatial=True, temporal=True)
        return with_sma(terms, self.sma_terms(latents, output, noisy, timesteps))

    def prepare_generation(self) -> None:
        self.set_path(spatial=False, temporal=True)

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """LoRA tensors in peft naming; spatial and temporal layers have disjoint names."""
        state = {}
        for adapter in TARGETS:
            state.update(get_peft_model_state_dict(self.model.unet, adapter_name=adapter))
        return {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}

    def copy_adapter(self, state: dict[str, torch.Tensor]) -> None:
        for adapter in TARGETS:
            temporal = adapter == "temporal"
            part = {name: tensor for name, tensor in state.items() if ("temp_attentions" in name) == temporal}
            set_peft_model_state_dict(self.model.unet, part, adapter_name=adapter)

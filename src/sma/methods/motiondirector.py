"""MotionDirector: dual-path LoRA, appearance on single frames, motion on the clip.

As the official code (showlab/MotionDirector, docs/methods.md) builds it: a spatial LoRA on
`attn1` and the feed-forward of every spatial transformer, a temporal LoRA on `attn1`, `attn2`
and the feed-forward of every temporal transformer (UNet3D: `transformer_in` included;
AnimateDiff: the motion modules), as the backbone names them (`lora_targets`); rank 32,
scale 1, dropout on the LoRA output; each adapter trained only by its own loss.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer

from sma.config import TransferConfig
from sma.errors import SmaError
from sma.methods.base import TrainedMethod
from sma.objectives import motiondirector_spatial_loss, motiondirector_temporal_loss, with_sma


class MotionDirector(TrainedMethod):
    """MotionDirector (Zhao et al.): spatial and temporal LoRA.

    One noisy clip per step. Spatial path (skipped when the spatial LoRA is dropped): one
    random frame of it, temporal LoRA off, MSE. Temporal path: the clip, spatial LoRA on unless
    dropped, MSE plus the appearance-debiased term (+ SMA). The spatial loss trains only the
    spatial LoRA, the temporal loss and SMA only the temporal one (the official code's two
    optimizers). Only the temporal LoRA acts when generating a new appearance.
    """

    name = "motiondirector"
    takes_motion_adapter = True
    targets: dict[str, list[str]]  # the backbone's spatial and temporal LoRA layers, by name (set in `prepare`)

    @classmethod
    def validate(cls, config: TransferConfig) -> None:
        options = config.options
        if options.lora_rank < 1:
            raise SmaError(f"motiondirector.lora_rank must be >= 1, got {options.lora_rank}")
        for name in ("lora_dropout", "spatial_dropout"):
            if not 0.0 <= getattr(options, name) < 1.0:
                raise SmaError(f"motiondirector.{name} must be in [0, 1), got {getattr(options, name)}")

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        unet, rank = self.model.unet, self.options.lora_rank
        with warnings.catch_warnings():  # peft warns that a second adapter is added: that is the design
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            self.targets = self.model.lora_targets()  # named before peft wraps the layers
            for adapter, targets in self.targets.items():
                config = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights="gaussian")
                inject_adapter_in_model(config, unet, adapter_name=adapter)
        for module in unet.modules():
            if isinstance(module, LoraLayer):
                module.set_adapter(list(module.lora_A))  # each layer holds one adapter: keep it active
                for lora_b in module.lora_B.values():
                    lora_b.register_forward_hook(self._dropout_output)
        unet.train(unet.training)  # new LoRA modules start in training mode whatever the UNet's
        return self.train_only({name: parameter for name, parameter in unet.named_parameters() if "lora_" in name})

    def _dropout_output(self, module: torch.nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
        return F.dropout(output, self.options.lora_dropout, module.training)

    def adapter_parameters(self, adapter: str) -> list[torch.nn.Parameter]:
        return [parameter for name, parameter in self.trainable.items() if f".{adapter}." in name]

    def set_path(self, spatial: bool, temporal: bool) -> None:
        """Switch each LoRA on (scale 1) or off (scale 0), as MotionDirector does."""
        for module in self.model.unet.modules():
            if isinstance(module, LoraLayer):
                for adapter, enabled in (("spatial", spatial), ("temporal", temporal)):
                    module.set_scale(adapter, 1.0 if enabled else 0.0)

    def loss(self, latents: torch.Tensor, text: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        device, frames = generator.device, latents.shape[2]
        drop_spatial = bool(torch.rand((), generator=generator, device=device) < self.options.spatial_dropout)
        frame, anchor = torch.randint(0, frames, (2,), generator=generator, device=device).tolist()
        noise, timesteps, noisy = self.noised(latents, generator)
        target = self.regression_target(latents, noise, timesteps)
        terms = {}
        if not drop_spatial:
            self.set_path(spatial=True, temporal=False)
            one = slice(frame, frame + 1)
            output = self.model.predict(noisy[:, :, one], timesteps, text)
            terms["spatial"] = motiondirector_spatial_loss(output, target[:, :, one])
        self.set_path(spatial=not drop_spatial, temporal=True)
        output = self.model.predict(noisy, timesteps, text)
        terms["temporal"] = motiondirector_temporal_loss(output, target, anchor)
        self.set_path(spatial=True, temporal=True)
        return with_sma(terms, self.sma_terms(latents, output, noisy, timesteps), self.sma_share)

    def loss_groups(self, terms: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, list[torch.nn.Parameter]]]:
        motion = terms["temporal"] + terms["sma"] if "sma" in terms else terms["temporal"]
        groups = [(terms["spatial"], self.adapter_parameters("spatial"))] if "spatial" in terms else []
        return [*groups, (motion, self.adapter_parameters("temporal"))]

    def prepare_generation(self) -> None:
        self.set_path(spatial=False, temporal=True)

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """LoRA tensors in peft naming; spatial and temporal layers have disjoint names."""
        state = {}
        for adapter in self.targets:
            state.update(get_peft_model_state_dict(self.model.unet, adapter_name=adapter))
        return {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}

    def copy_adapter(self, state: dict[str, torch.Tensor]) -> None:
        temporal = set(self.targets["temporal"])
        for adapter in self.targets:
            part = {
                name: tensor
                for name, tensor in state.items()
                if (name.split(".lora_")[0] in temporal) == (adapter == "temporal")
            }
            set_peft_model_state_dict(self.model.unet, part, adapter_name=adapter)

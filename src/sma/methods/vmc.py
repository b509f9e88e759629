"""VMC: train the q/k/v projections of the temporal attention on residual-noise alignment."""

from __future__ import annotations

import torch

from sma.methods.base import MotionMethod
from sma.objectives import vmc_loss


class VMC(MotionMethod):
    """Video Motion Customization (Jeong et al.): exactly the authors' trainable set.

    Generation starts from the DDIM inversion of the reference (noise_prior 1 by default).
    """

    name = "vmc"

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        self.trainable = {
            f"{module_name}.{parameter_name}": parameter
            for module_name, module in self.model.temporal_attention_projections().items()
            for parameter_name, parameter in module.named_parameters()
        }
        for parameter in self.trainable.values():
            parameter.requires_grad_(True)
        return self.trainable

    def loss(self, latents: torch.Tensor, text: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        noise, timesteps, noisy = self.noised(latents, generator)
        output = self.model.predict(noisy, timesteps, text)
        terms = {"vmc": vmc_loss(output, self.regression_target(latents, noise, timesteps))}
        return self.with_sma(terms, latents, output, noisy, timesteps)

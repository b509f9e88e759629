"""VMC: train the q/k/v projections of the temporal attention on residual-noise alignment."""

from __future__ import annotations

import torch

from sma.methods.base import TrainedMethod
from sma.objectives import vmc_loss


class VMC(TrainedMethod):
    """Video Motion Customization (Jeong et al.): exactly the authors' trainable set.

    Generation starts from the DDIM inversion of the reference (noise_prior 1 by default).
    """

    name = "vmc"
    takes_motion_adapter = True

    objective_name = "vmc"
    objective = staticmethod(vmc_loss)

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        return self.train_only(
            {
                f"{module_name}.{parameter_name}": parameter
                for module_name, module in self.model.temporal_attention_projections().items()
                for parameter_name, parameter in module.named_parameters()
            }
        )

"""What every motion-distillation method shares: noising, the SMA term, adapter tensors."""

from __future__ import annotations

import dataclasses

import torch

from sma.backbones.latent_video import LatentVideoModel
from sma.backbones.text_to_video import TextToVideoModel
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.motion import predict_x0
from sma.sampling import ddim_invert, guided, make_scheduler, noise_prior, sample
from sma.spectral import SpectralMotionAlignment


class MotionMethod:
    """A method trains some parameters of a backbone with its base loss (+ SMA).

    Subclasses set `name`, choose the trainable parameters in `prepare` and define `loss`.
    A zero-shot method sets `trains = False` and does its work in `generate`.
    """

    name = ""
    trains = True

    @classmethod
    def load_model(cls, config: TransferConfig, device: str | torch.device = "cpu") -> LatentVideoModel:
        """The backbone this method runs on, loaded from `config.model`."""
        return TextToVideoModel.from_pretrained(config.model, device=device)

    def __init__(self, model: LatentVideoModel, config: TransferConfig) -> None:
        self.model = model
        self.config = config
        options = dataclasses.asdict(config.sma)
        self.sma = SpectralMotionAlignment(**options) if options.pop("enabled") else None
        self.trainable: dict[str, torch.nn.Parameter] = {}
        self.guidance_log: list[dict[str, float]] = []  # a guided `generate`'s losses per iteration (DMT)

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        """Make the method's parameters trainable (adding adapters if it has any); return them by name."""
        raise NotImplementedError

    objective_name = ""

    def objective(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The method's base loss between the model output and its regression target."""
        raise NotImplementedError

    def loss(self, latents: torch.Tensor, text: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Loss terms of one step; "loss" is the total to minimise."""
        noise, timesteps, noisy = self.noised(latents, generator)
        output = self.model.predict(noisy, timesteps, text)
        terms = {self.objective_name: self.objective(output, self.regression_target(latents, noise, timesteps))}
        return self.with_sma(terms, latents, output, noisy, timesteps)

    def condition_on(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the model is conditioned on besides text, from the reference pixels (1, 3, f, h, w) in [-1, 1].
        Most methods need nothing; ControlVideo returns the depth of each frame. Saved with the adapter.
        """
        return {}

    def set_conditions(self, conditions: dict[str, torch.Tensor]) -> None:
        """Condition the model on what `condition_on` returned (when training, or loaded with the adapter)."""

    def train_only(self, parameters: dict[str, torch.nn.Parameter]) -> dict[str, torch.nn.Parameter]:
        """Make exactly these parameters trainable (the backbone is frozen when loaded)."""
        self.trainable = parameters
        for parameter in parameters.values():
            parameter.requires_grad_(True)
        return parameters

    def prepare_generation(self) -> None:
        """Switch the trained model to how the method generates new appearances."""

    @torch.no_grad()
    def generate(self, reference_latents: torch.Tensor, target: str, seed: int) -> torch.Tensor:
        """One new appearance: DDIM inversion of the reference, the method's start, guided sampling."""
        model, settings = self.model, self.config.generate
        self.prepare_generation()
        reference_latents = reference_latents.to(model.device, model.dtype)
        empty = model.encode_prompts([""])
        inverted = ddim_invert(
            guided(model.predict, empty, empty, 1.0),
            reference_latents,
            model.scheduler.config,
            settings.inversion_steps,
        )[-1]
        generator = torch.Generator(device=reference_latents.device).manual_seed(seed)
        noise = torch.randn(reference_latents.shape, generator=generator, device=reference_latents.device)
        start = self.initial_latents(inverted, noise.to(model.dtype))
        condition = model.encode_prompts([target])
        negative = model.encode_prompts([settings.negative_prompt])
        denoise = guided(model.predict, condition, negative, settings.guidance_scale)
        return sample(denoise, start, make_scheduler(settings.sampler, model.scheduler.config), settings.steps)

    def initial_latents(self, inverted: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Where sampling starts, from the DDIM inversion of the reference and fresh noise."""
        return noise_prior(inverted, noise, self.config.generate.noise_prior)

    def noised(self, latents: torch.Tensor, generator: torch.Generator):
        """Noise, timesteps uniform in [0, T) and the noisy latents of one training step."""
        scheduler = self.model.scheduler
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        timesteps = torch.randint(
            0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator, device=latents.device
        )
        return noise, timesteps, scheduler.add_noise(latents, noise, timesteps)

    def regression_target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the model should output: the noise, or the velocity for v-prediction models."""
        kind = self.model.scheduler.config.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            return self.model.scheduler.get_velocity(latents, noise, timesteps)
        raise SmaError(f"{self.name} trains epsilon or v-prediction models; this one predicts {kind!r}")

    def with_sma(
        self,
        terms: dict[str, torch.Tensor],
        latents: torch.Tensor,
        output: torch.Tensor,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Add SMA between the clean latents and the denoised estimate; total everything into "loss"."""
        if self.sma is not None:
            sma_terms = self.sma.terms(latents, predict_x0(output, noisy, timesteps, self.model.scheduler))
            terms["sma"] = sma_terms.total
            for name in ("global_motion", "local_amplitude", "local_phase"):
                value = getattr(sma_terms, name)
                if value is not None:
                    terms[f"sma_{name}"] = value.detach()
        terms["loss"] = sum(value for name, value in terms.items() if not name.startswith("sma_"))
        return terms

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The trained tensors only, on the CPU."""
        return {name: parameter.detach().cpu().contiguous() for name, parameter in self.trainable.items()}

    def load_adapter(self, state: dict[str, torch.Tensor]) -> None:
        """Put saved adapter tensors into the prepared model; names and shapes must match exactly."""
        expected = self.adapter_state()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise SmaError(
                f"the adapter does not fit this {self.name} model: {len(missing)} tensors missing, "
                f"{len(unexpected)} unexpected (e.g. {(missing or unexpected)[0]!r}); "
                "was it made by another method or for another base model?"
            )
        for name, tensor in expected.items():
            if tensor.shape != state[name].shape:
                raise SmaError(
                    f"adapter tensor {name} has shape {tuple(state[name].shape)}, needs {tuple(tensor.shape)}"
                )
        self.copy_adapter(state)

    def copy_adapter(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, parameter in self.trainable.items():
                parameter.copy_(state[name])

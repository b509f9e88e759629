"""What every method shares: a backbone, its own settings, and generation from the reference.

`TrainedMethod` distills the motion into some parameters (VMC, MotionDirector, Tune-A-Video,
ControlVideo); `ZeroShotMethod` trains nothing and steers sampling instead (DMT).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from sma.backbones.dispatch import load_text_to_video
from sma.backbones.latent_video import LatentVideoModel
from sma.config import TransferConfig
from sma.errors import SmaError
from sma.motion import predict_x0
from sma.objectives import weighted_terms, with_sma
from sma.phases import Phases
from sma.sampling import DIFFUSION_SAMPLERS, ddim_invert, gaussian_like, guided, make_scheduler, noise_prior, sample


class Method:
    """A motion-transfer method on a backbone.

    Subclasses set `name` (its registry key) and check their settings in `validate`; their own recipe
    section, under their name, is a dataclass in `sma.methods.options`.
    """

    name: ClassVar[str] = ""
    trains: ClassVar[bool] = True
    takes_motion_adapter: ClassVar[bool] = False  # runs on AnimateDiff (an SD-1.x model + `motion_adapter`)
    takes_images: ClassVar[bool] = False  # starts each video from an image on an image-to-video model (`image`)
    samplers: ClassVar[tuple[str, ...]] = DIFFUSION_SAMPLERS  # `generate.sampler` values its models take
    sample_dtype: ClassVar[torch.dtype | None] = None  # dtype of the latents while sampling; None: the model's

    @classmethod
    def validate(cls, config: TransferConfig) -> None:
        """Raise SmaError for settings this method cannot run with."""

    @classmethod
    def uses_sma(cls, config: TransferConfig) -> bool:
        """Whether these settings put SMA in the method's loss."""
        return config.sma.enabled

    @classmethod
    def sma_switch(cls, enabled: bool) -> dict[str, Any]:
        """The recipe keys that turn SMA on or off for this method: what one "SMA" switch (the demo's, the page's)
        sets."""
        return {"sma.enabled": enabled}

    @classmethod
    def check_references(cls, config: TransferConfig, count: int) -> None:
        """Raise SmaError when this method cannot take `count` reference videos (a trained one takes any number:
        each training step draws one)."""

    @classmethod
    def motion_frames(cls, config: TransferConfig) -> tuple[int, str]:
        """How many frames SMA compares, and what they are (a latent frame may stand for several video frames)."""
        return config.video.frames, "frames"

    @classmethod
    def load_model(cls, config: TransferConfig, device: str | torch.device = "cpu") -> LatentVideoModel:
        """The backbone this method runs on, loaded from `config.model`: a diffusers UNet3D model,
        Show-1's base stage when its model_index.json says so, or AnimateDiff when `config.motion_adapter` is set."""
        return load_text_to_video(config.model, device, config.revision or None, config.motion_adapter or None)

    def __init__(self, model: LatentVideoModel, config: TransferConfig) -> None:
        if config.generate.guidance_scale_2 is not None and getattr(model, "boundary_timestep", None) is None:
            raise SmaError(
                f"`generate.guidance_scale_2` guides Wan 2.2 A14B's low-noise expert; {config.model} has one denoiser"
            )
        self.model = model
        self.config = config
        self.phases = Phases()  # seconds and peak memory of the generation phases (invert, sample)
        self.sma_share = config.sma.share_control()  # None: SMA at its fixed weights
        self.checkpointing_plan = None  # the layers recomputed under a memory budget (sma.memory_budget)

    @property
    def options(self) -> Any:
        return self.config.options

    def generate(self, reference_latents: torch.Tensor, target: str, seed: int) -> torch.Tensor:
        """Latents of one new video of `target` that moves like the reference."""
        raise NotImplementedError

    def condition_on(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the model is conditioned on besides text, from the reference pixels (1, 3, f, h, w) in [-1, 1].
        Most methods need nothing; ControlVideo returns the depth of each frame. Saved with the adapter.
        """
        return {}

    def set_conditions(self, conditions: dict[str, torch.Tensor]) -> None:
        """Condition the model on what `condition_on` returned (when training, or loaded with the adapter)."""

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The model output that sampling steps with."""
        return self.model.predict(latents, timesteps, text)

    def scheduler(self):
        """A fresh scheduler of `generate.sampler` with the model's noise schedule."""
        return make_scheduler(self.config.generate.sampler, self.model.scheduler.config)

    def guidance_scale(self) -> float | Callable[[torch.Tensor], float]:
        """`generate.guidance_scale`; on two experts (Wan 2.2 A14B) the low-noise expert's steps take
        `generate.guidance_scale_2` when set, as WanPipeline's `guidance_scale_2`."""
        settings = self.config.generate
        if settings.guidance_scale_2 is None:
            return settings.guidance_scale
        boundary = self.model.boundary_timestep
        return lambda t: settings.guidance_scale if t >= boundary else settings.guidance_scale_2

    def fresh_noise(self, like: torch.Tensor, seed: int) -> torch.Tensor:
        """Gaussian noise shaped like `like`, from a generator on its device seeded with `seed`."""
        return gaussian_like(like, torch.Generator(device=like.device).manual_seed(seed))

    def sample_from(self, start: torch.Tensor, target: str, phase: str = "sample") -> torch.Tensor:
        """Guided sampling of `target` from `start` with the method's settings (`generate.sampler`, steps,
        guidance, negative prompt), timed and reported as `phase`."""
        model, settings = self.model, self.config.generate
        condition = model.encode_prompts([target])
        negative = model.encode_prompts([settings.negative_prompt])
        denoise = guided(self.predict, condition, negative, self.guidance_scale())
        with self.phases(phase, steps=settings.steps):
            return sample(denoise, start, self.scheduler(), settings.steps, description=phase)

    @torch.no_grad()
    def generate_untuned(self, target: str, seed: int) -> torch.Tensor:
        """Latents of `target` as the backbone samples it by itself, from fresh noise: the baseline a transfer
        is compared with. Meant for a method as loaded (before `prepare` and any training)."""
        video, model = self.config.video, self.model
        shape = model.latent_shape(video.frames, video.height, video.width)
        like = torch.empty(shape, device=model.device, dtype=self.sample_dtype or model.dtype)
        return self.sample_from(self.fresh_noise(like, seed), target, "untuned")


class TrainedMethod(Method):
    """A method that trains some parameters with its base loss (+ SMA), then generates from the
    DDIM inversion of the reference.

    Subclasses choose the trainable parameters in `prepare` and define `objective` (or `loss`).
    """

    objective_name: ClassVar[str] = ""

    def __init__(self, model: LatentVideoModel, config: TransferConfig) -> None:
        super().__init__(model, config)
        self.sma = config.sma.build()
        self.trainable: dict[str, torch.nn.Parameter] = {}
        self._inversion: tuple[torch.Tensor, tuple, torch.Tensor] | None = None

    def prepare(self) -> dict[str, torch.nn.Parameter]:
        """Make the method's parameters trainable (adding adapters if it has any); return them by name."""
        raise NotImplementedError

    def objective(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The method's base loss between the model output and its regression target."""
        raise NotImplementedError

    def loss(self, latents: torch.Tensor, text: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Loss terms of one step; "loss" is the total to minimise."""
        noise, timesteps, noisy = self.noised(latents, generator)
        output = self.model.predict(noisy, timesteps, text)
        terms = {self.objective_name: self.objective(output, self.regression_target(latents, noise, timesteps))}
        return with_sma(terms, self.sma_terms(latents, output, noisy, timesteps), self.sma_share)

    def loss_groups(self, terms: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, list[torch.nn.Parameter]]]:
        """Which loss trains which parameters, as (loss, parameters) pairs; by default the total trains all."""
        return [(terms["loss"], list(self.trainable.values()))]

    def sma_terms(self, latents: torch.Tensor, output: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor):
        """SMA between the clean latents and the model's denoised estimate (none when SMA is off)."""
        if self.sma is None:
            return []
        scheduler = self.model.scheduler
        predicted = predict_x0(output, noisy, timesteps, scheduler)

        def abar() -> torch.Tensor:  # asked only when SMA is weighted by timestep
            return scheduler.alphas_cumprod.to(latents.device)[timesteps.long()]

        return [self.weighted_sma(latents, predicted, abar)]

    def weighted_sma(self, latents: torch.Tensor, predicted: torch.Tensor, signal: Callable[[], torch.Tensor]):
        """SMA's terms, each sample's weighted by its share of signal (`signal()`: abar_t, or (1 - s)^2 in flow
        matching; asked only then) when `sma.timestep_weight` is alpha_bar: the estimate divides the noise error by
        sqrt(abar_t), so without it the noisiest steps dominate SMA's gradient."""
        if self.config.sma.timestep_weight == "none":
            return self.sma.terms(latents, predicted)
        return weighted_terms(self.sma, latents, predicted, signal())

    def train_only(self, parameters: dict[str, torch.nn.Parameter]) -> dict[str, torch.nn.Parameter]:
        """Make exactly these parameters trainable (the backbone is frozen when loaded)."""
        self.trainable = parameters
        for parameter in parameters.values():
            parameter.requires_grad_(True)
        return parameters

    def prepare_generation(self) -> None:
        """Switch the trained model to how the method generates new appearances."""

    def invert(self, reference_latents: torch.Tensor, prompt: str = "") -> torch.Tensor:
        """DDIM inversion of the reference latents with `prompt`: the noise DDIM maps back to them."""
        model = self.model
        text = model.encode_prompts([prompt])
        steps = self.config.generate.inversion_steps
        return ddim_invert(guided(model.predict, text, text, 1.0), reference_latents, model.scheduler.config, steps)[-1]

    @torch.no_grad()
    def generate(self, reference_latents: torch.Tensor, target: str, seed: int) -> torch.Tensor:
        """One new appearance: DDIM inversion of the reference, the method's start, guided sampling."""
        self.prepare_generation()
        inverted = self.inverted_reference(reference_latents)
        return self.sample_from(self.initial_latents(inverted, self.fresh_noise(inverted, seed)), target)

    def inverted_reference(self, reference: torch.Tensor) -> torch.Tensor:
        """The DDIM inversion of `reference`, computed once for all targets: again only when the reference
        tensor, the model's device or precision, the inversion settings or the trained weights have changed."""
        model, steps = self.model, self.config.generate.inversion_steps
        state = (model.device, model.dtype, self.inversion_prompt(), steps, reference._version)
        state += tuple(parameter._version for parameter in self.trainable.values())
        if self._inversion is None or self._inversion[0] is not reference or self._inversion[1] != state:
            with self.phases("invert", steps=steps):
                inverted = self.invert(reference.to(model.device, model.dtype), self.inversion_prompt())
            self._inversion = (reference, state, inverted)
        return self._inversion[2]

    def inversion_prompt(self) -> str:
        """The prompt the reference is DDIM-inverted with: empty, unless the method inverts with the source prompt."""
        return ""

    def initial_latents(self, inverted: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Where sampling starts, from the DDIM inversion of the reference and fresh noise."""
        return noise_prior(inverted, noise, self.config.generate.noise_prior)

    def noised(self, latents: torch.Tensor, generator: torch.Generator):
        """Noise, timesteps uniform in [0, T) and the noisy latents of one training step.

        Random draws happen on the generator's device, which the training loop puts with the latents.
        """
        scheduler = self.model.scheduler
        device = generator.device
        noise = gaussian_like(latents, generator)
        timesteps = torch.randint(
            0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator, device=device
        ).to(latents.device)
        return noise, timesteps, scheduler.add_noise(latents, noise, timesteps)

    def regression_target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the model should output: the noise, or the velocity for v-prediction models."""
        kind = self.model.scheduler.config.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            return self.model.scheduler.get_velocity(latents, noise, timesteps)
        raise SmaError(f"{self.name} trains epsilon or v-prediction models; this one predicts {kind!r}")

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


class ZeroShotMethod(Method):
    """A method that trains nothing: it steers sampling toward the reference's motion.

    `guidance_log` holds the losses of the last `generate`, one record per optimisation step.
    """

    trains = False

    @classmethod
    def check_references(cls, config: TransferConfig, count: int) -> None:
        if count > 1:
            raise SmaError(f"{cls.name} guides generation with one reference video, got {count}: give one")

    def __init__(self, model: LatentVideoModel, config: TransferConfig) -> None:
        super().__init__(model, config)
        self.guidance_log: list[dict[str, float]] = []

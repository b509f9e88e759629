"""Show-1's base stage (showlab/show-1-base): 8 keyframes at 40x64 pixels from T5 text.

A pixel-space model of the DeepFloyd IF family, so there is no VAE: "latents" are the
pixels themselves in [-1, 1]. The later stages of Show-1's cascade are in
`sma.backbones.show1_cascade`; training is on the keyframes only.

- Text: T5 (`T5EncoderModel`, XXL on the Hub: ~4.7 B parameters), prompts lower-cased and
  padded to 77 tokens with their attention mask, as the authors' pipeline does. Embeddings
  are cached per prompt; `release_text_encoder` frees T5 once every prompt is encoded, and
  until then T5 waits on the CPU and visits the UNet's device only to encode.
- Output: 6 channels, the noise and a learned variance. The Hub scheduler (DPM-Solver++,
  `variance_type` fixed_small) does not use the variance, and the authors' pipeline, DDIM
  inversion and training split it off; `predict` returns the noise channels only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import DPMSolverMultistepScheduler
from transformers import T5EncoderModel, T5Tokenizer

from sma.backbones.hub import load_component
from sma.backbones.latent_video import encode_prompts_once, warn_cut_prompts
from sma.backbones.show1_unet import Show1UNet3DConditionModel
from sma.backbones.text_to_video import TextToVideoModel
from sma.errors import SmaError

PIPELINE = "TextToVideoIFPipeline"
MAX_PROMPT_TOKENS = 77  # what the authors' pipeline pads and truncates T5 input to


@dataclass
class Show1Model(TextToVideoModel):
    unet: Show1UNet3DConditionModel
    vae: None
    text_encoder: T5EncoderModel | None
    tokenizer: T5Tokenizer
    scheduler: DPMSolverMultistepScheduler
    source: str
    prompt_embeddings: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def from_pretrained(
        cls, source: str, device: str | torch.device = "cpu", revision: str | None = None
    ) -> Show1Model:
        """The UNet (float32, on `device`), T5 and its tokenizer and the scheduler, from a Hub id or a folder."""
        unet, report = load_component(Show1UNet3DConditionModel, source, "unet", revision, output_loading_info=True)
        check_strict(report, source)
        model = cls(
            unet=unet,
            vae=None,
            text_encoder=load_component(T5EncoderModel, source, "text_encoder", revision),
            tokenizer=load_component(T5Tokenizer, source, "tokenizer", revision),
            scheduler=invertible(load_component(DPMSolverMultistepScheduler, source, "scheduler", revision)),
            source=source,
        )
        return model.freeze().to(device)

    @classmethod
    def diffusers_lora_keys(cls, layer: str) -> tuple[str, str]:
        raise SmaError("Show-1 LoRAs load nowhere outside sma: the authors' pipeline (showone) has no LoRA loader")

    comfyui_lora_keys = diffusers_lora_keys

    def networks(self) -> list[torch.nn.Module]:
        return [self.unet] if self.text_encoder is None else [self.unet, self.text_encoder]

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> Show1Model:
        """Move the UNet; T5 stays on the CPU between encodings."""
        self.unet.to(device, dtype)
        return self

    @property
    def vae_scale_factor(self) -> int:
        return 1

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
        """Pixels (b, 3, f, h, w) in [-1, 1] are already the model's space: float32, on the model's device."""
        return video.to(self.device, torch.float32)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
        return latents.float().clamp(-1, 1).cpu()

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """T5 states (b, 77, d) on the model's device, each prompt encoded once."""
        return encode_prompts_once(self, prompts, "T5")

    def run_text_encoder(self, prompts: list[str]) -> torch.Tensor:
        """T5 on the UNet's device for one call, then back to the CPU; states returned on the CPU in float32."""
        prompts = [prompt.lower().strip() for prompt in prompts]
        warn_cut_prompts(self.tokenizer, prompts, MAX_PROMPT_TOKENS)
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=MAX_PROMPT_TOKENS,
            truncation=True,
            return_tensors="pt",
        )
        self.text_encoder.to(self.device)
        try:
            states = self.text_encoder(
                tokens.input_ids.to(self.device), attention_mask=tokens.attention_mask.to(self.device)
            ).last_hidden_state
        finally:
            self.text_encoder.to("cpu")
        return states.float().cpu()

    def release_text_encoder(self) -> None:
        """Free T5; prompts encoded so far stay available."""
        self.text_encoder = None

    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """The predicted noise (b, 3, f, h, w): the learned-variance channels are dropped."""
        output = self.unet(latents, timesteps, encoder_hidden_states=text_embeddings.to(latents.dtype)).sample
        return output[:, : latents.shape[1]]


def invertible(scheduler: DPMSolverMultistepScheduler) -> DPMSolverMultistepScheduler:
    """The Hub's scheduler with "trailing" instead of "linspace" timesteps, which DDIM inversion cannot take.

    DPM-Solver's 75 steps then start at the same timestep (995) and stay within 5 training
    steps of the Hub's (its last are 35, 22, 8 instead of 40, 27, 13); the 75-step DDIM
    inversion ends at 999.
    """
    if scheduler.config.timestep_spacing != "linspace":
        return scheduler
    return DPMSolverMultistepScheduler.from_config(scheduler.config, timestep_spacing="trailing")


def check_strict(report: dict[str, list], source: str) -> None:
    """The checkpoint must hold exactly the UNet's parameters: diffusers only warns about extra ones."""
    problems = {kind: report.get(kind) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {kind: names for kind, names in problems.items() if names}
    if problems:
        kind, names = next(iter(problems.items()))
        raise SmaError(
            f"the unet/ of {source} is not a Show-1 UNet: {len(names)} {kind.replace('_', ' ')} (e.g. {names[0]!r})"
        )

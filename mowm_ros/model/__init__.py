"""Denoiser, diffusion schedule and sampler, memory experts, composition, LoRA."""

"""The model layer on diffusers/transformers/safetensors: loading, text encoding, samplers, VAE, memory."""

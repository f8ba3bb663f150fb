"""Opening checkpoints: Hugging Face-style directories, GGUF files, and their tokenizers."""

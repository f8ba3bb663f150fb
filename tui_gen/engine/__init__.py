"""The engine: model loading, architectures' KV-cached decoding, sampling. Imports no Textual."""

"""Developer tooling that is not installed with tui-gen: comparison benchmarks, kernel
microbenchmarks, quantization quality, the app's lag bench, the screenshot maker, and the demo
model's corpus and trainer (`dev/cooking`). Run from a checkout as `python -m dev.NAME`."""

"""What the command line decided for the app (tui_gen.cli builds it from the parsed flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tui_gen.app.params import Number


@dataclass
class AppConfig:
    """What the command line decided; see tui_gen.cli.dispatch.app_config."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    max_context: int | None = None
    quantize: str | None = None  #: --quantize int8|int4 (None: float weights)
    kv_cache_dtype: str = "auto"  #: --kv-cache-dtype
    activations: str = "fast"  #: --activations (GGUF blocks and int4)
    theme: str | None = None
    transcripts: str | None = None
    system: str | None = None
    sampling: dict[str, Number] = field(default_factory=dict)  #: slider values from flags
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    #: MODEL is an endpoint URL (tui_gen.remote.is_endpoint): the served model (--model), None
    #: for the first the server lists
    remote_model: str | None = None
    #: the endpoint's key (--api-key or TUI_GEN_API_KEY); kept out of repr, never saved
    api_key: str | None = field(default=None, repr=False)

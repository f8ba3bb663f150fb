"""What the command line decided for the app (built from tui_gen.cli's parsed arguments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tui_gen.app.params import BY_NAME, Number, clean_values


@dataclass
class AppConfig:
    """What the command line decided; see from_args."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    max_context: int | None = None
    quantize: str | None = None  #: --quantize int8|int4 (None: float weights)
    theme: str | None = None
    transcripts: str | None = None
    system: str | None = None
    sampling: dict[str, Number] = field(default_factory=dict)  #: slider values from flags
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    @classmethod
    def from_args(cls, args: Any) -> AppConfig:
        """Build from tui_gen.cli's Namespace (flags that were not given are None)."""
        from tui_gen.cli import sampling_overrides

        overrides = sampling_overrides(args)
        sampling = clean_values({k: v for k, v in overrides.items() if k in BY_NAME})
        if overrides.get("do_sample") is False:
            sampling["temperature"] = 0.0  # --greedy: the slider shows it, and can undo it
        return cls(
            model=str(args.model),
            device=getattr(args, "device", "auto") or "auto",
            dtype=getattr(args, "dtype", "auto") or "auto",
            max_context=getattr(args, "max_context", None),
            quantize=getattr(args, "quantize", None),
            theme=getattr(args, "theme", None),
            transcripts=getattr(args, "transcripts", None),
            system=getattr(args, "system", None),
            sampling=sampling,
            stop=list(overrides.get("stop_strings", [])),
            seed=overrides.get("seed"),
        )

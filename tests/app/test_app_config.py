"""From the command line to the app: flags, themes, the system prompt, a model with no chat
template (real engine), and run_app's exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine, isolated_dirs, make_app, model_prompt, ready, reply

from tui_gen.app import run_app
from tui_gen.app.app import TuiGenApp
from tui_gen.cli.dispatch import app_config
from tui_gen.cli.parser import build_main_parser

pytestmark = pytest.mark.usefixtures("isolated_dirs")
__all__ = ["isolated_dirs"]
SIZE = (120, 40)


def test_from_args_maps_every_flag() -> None:
    args = build_main_parser().parse_args(
        [
            "models/cooking", "--temperature", "0.5", "--top-k", "7", "--top-p", "0.8",
            "--min-p", "0.1", "--repetition-penalty", "1.2", "--max-new-tokens", "99",
            "--seed", "3", "--stop", "END", "--system", "Be brief.", "--theme", "basil",
            "--transcripts", "/tmp/t", "--device", "cpu", "--dtype", "float32",
            "--max-context", "512", "--quantize", "int8", "--kv-cache-dtype", "bfloat16",
        ]
    )  # fmt: skip
    config = app_config(args)
    assert config.sampling == {
        "temperature": 0.5, "top_k": 7, "top_p": 0.8, "min_p": 0.1,
        "repetition_penalty": 1.2, "max_new_tokens": 99,
    }  # fmt: skip
    assert (config.seed, config.stop, config.system) == (3, ["END"], "Be brief.")
    assert (config.theme, config.transcripts, config.device) == ("basil", "/tmp/t", "cpu")
    assert (config.dtype, config.max_context, config.model) == ("float32", 512, "models/cooking")
    assert (config.quantize, config.kv_cache_dtype) == ("int8", "bfloat16")


def test_greedy_flag_sets_temperature_zero() -> None:
    config = app_config(build_main_parser().parse_args(["m", "--greedy"]))
    assert config.sampling == {"temperature": 0.0} and config.seed is None


async def test_flags_reach_the_engine(tmp_path: Path) -> None:
    fake = FakeEngine()
    app = make_app(tmp_path, fake, sampling={"top_k": 7}, seed=3, stop=["END"], system="Be brief.")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.history.system == "Be brief."
        await reply(pilot, "hi")
        params = fake.calls[-1]["params"]
        assert params["top_k"] == 7 and params["seed"] == 4  # seed + reply number
        assert "END" in params["stop_strings"]
        assert app.conversation.system == "Be brief."


async def test_theme_flag_setting_and_unknown_theme(tmp_path: Path) -> None:
    app = make_app(tmp_path, theme="saffron")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.theme == "saffron"
        app.theme = "basil"  # e.g. from the palette
        await pilot.pause()
        app.save_settings()
    assert json.loads((tmp_path / "config" / "settings.json").read_text())["theme"] == "basil"
    again = make_app(tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.theme == "basil"  # remembered
    odd = make_app(tmp_path, theme="no-such-theme")
    async with odd.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.pause()
        assert odd.theme == "tui-gen"
        assert any("unknown theme 'no-such-theme'" in n.message for n in odd._notifications)


async def test_user_themes_from_the_config_folder(tmp_path: Path) -> None:
    themes = tmp_path / "config" / "themes"
    themes.mkdir(parents=True)
    (themes / "mine.toml").write_text('name = "mine"\nprimary = "#FF00FF"\n')
    (themes / "bad.toml").write_text('name = "bad"\n')
    app = make_app(tmp_path, theme="mine")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.pause()
        assert app.theme == "mine"
        assert "saffron" in app.available_themes and "textual-dark" in app.available_themes
        assert any("bad.toml" in n.message for n in app._notifications)


async def test_a_model_without_chat_template_uses_the_plain_format(
    tmp_path: Path, tiny_byte: Path
) -> None:
    from tui_gen.engine.generator import Generator

    engine = Generator.load(tiny_byte, device="cpu")
    assert engine.chat_template is None
    app = make_app(tmp_path, engine, sampling={"max_new_tokens": 12})
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await reply(pilot, "Hello")
        assert model_prompt(app).startswith("User: Hello\nAssistant:")
        turn = app.conversation.turns[-1]
        assert turn.content == turn.content.strip()  # the plain format strips replies
        assert app.status.context_max == engine.max_context


def test_run_app_returns_the_exit_code_and_explains_a_load_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_run(self: TuiGenApp, **_: Any) -> int:
        self.load_error = "models/nope: no such directory"
        return 2

    monkeypatch.setattr(TuiGenApp, "run", fake_run)
    args = build_main_parser().parse_args(["models/nope"])
    assert run_app(app_config(args)) == 2
    assert capsys.readouterr().err == "tui-gen: error: models/nope: no such directory\n"


async def test_quantize_flag_loads_a_quantized_engine(tmp_path: Path, tiny_llama: Path) -> None:
    from tui_gen.app.settings import Settings

    args = build_main_parser().parse_args(
        [str(tiny_llama), "--device", "cpu", "--quantize", "int8", "--max-new-tokens", "4"]
    )
    config = app_config(args)
    config.transcripts = str(tmp_path / "transcripts")
    app = TuiGenApp(config, settings=Settings.load(tmp_path / "settings.json"))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.engine.loaded.quantization.startswith("int8")
        assert app.info.quantization == "int8"
        assert app.status.device.endswith("· int8")
        await reply(pilot, "hi")
        assert app.conversation.turns[-1].role == "assistant"

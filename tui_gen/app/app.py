"""The tui-gen chat application: layout, key bindings, actions, slash commands, settings.

Threads and ownership: the model loads and generates on Textual thread workers (worker.py) that
post messages (messages.py); only this class touches widgets, the History (history.py: the one
conversation, which the saved transcript and the prompt sent to the model both come from) and
the settings. A worker gets an immutable snapshot of the conversation and never changes app
state. The app always cancels and waits for the running worker before reset, regenerate, edit,
reopen or quit, because a Generator refuses a second concurrent generation (the reply
lifecycle itself is in generation.py).

Every action has a binding with an id, so it can be remapped in the settings file (Textual's
keymap), is listed in the help screen (F1), and has a command-palette entry (Ctrl+P).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import Footer

from tui_gen.app import commands, gcpause, slash
from tui_gen.app.atomic import why
from tui_gen.app.codeblocks import code_blocks
from tui_gen.app.config import AppConfig
from tui_gen.app.history import History
from tui_gen.app.inspection import InspectionMixin
from tui_gen.app.messages import EngineFailed, EngineLoaded, ModelInfo
from tui_gen.app.params import BY_NAME, PARAMS, Number, clean_values
from tui_gen.app.screens.help import HelpScreen
from tui_gen.app.screens.transcripts import TranscriptBrowser
from tui_gen.app.settings import Settings, data_dir
from tui_gen.app.themes import DEFAULT_THEME, load_themes
from tui_gen.app.transcripts.autosave import AutoSaver
from tui_gen.app.transcripts.store import (
    Conversation,
    TranscriptError,
    TranscriptStore,
    export_markdown,
    stats_line,
)
from tui_gen.app.widgets.chat_view import ChatView
from tui_gen.app.widgets.inspector import InspectorPanel
from tui_gen.app.widgets.prompt import PromptInput
from tui_gen.app.widgets.side_panel import SamplingPanel
from tui_gen.app.widgets.status import StatusBar
from tui_gen.app.worker import model_info, open_backend, warm_up_highlighting
from tui_gen.engine.protocol import ChatBackend, ChatEngine
from tui_gen.remote import is_endpoint
from tui_gen.sanitize import sanitize

#: how long quitting waits for a generation to stop before leaving its thread behind
QUIT_WAIT = 2.0
#: below this width the sampling panel starts hidden (F2 still shows it)
NARROW_WIDTH = 100
PLACEHOLDER = "Message the model · Enter sends · Ctrl+J newline · /help for commands"


class _NoWaitExecutor(ThreadPoolExecutor):
    """A thread pool whose shutdown never blocks (asyncio.run waits for the default one)."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=cancel_futures)


class TuiGenApp(InspectionMixin):
    """Chat with a local language model."""

    TITLE = "tui-gen"
    CSS_PATH = "app.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True, show=False),
        Binding("escape", "stop", "Stop", id="stop"),
        Binding("ctrl+r", "reset", "New chat", id="reset"),
        Binding("ctrl+g", "regenerate", "Regenerate", id="regenerate"),
        Binding("ctrl+l", "edit_last", "Edit last", id="edit_last", show=False),
        Binding("ctrl+o", "transcripts", "Transcripts", id="transcripts"),
        Binding("ctrl+s", "export", "Export", id="export", show=False),
        Binding("f1", "help", "Help", id="help"),
        Binding("f2", "toggle_panel", "Sliders", id="toggle_panel"),
        Binding("f4", "change_theme", "Theme", id="theme", show=False),
        Binding("f5", "copy_reply", "Copy reply", id="copy_reply", show=False),
        Binding("f3", "toggle_heatmap", "Heat map", id="heatmap", show=False),
        Binding("f9", "toggle_inspector", "Token inspector", id="inspector", show=False),
        Binding("ctrl+z", "unbranch", "Back to the original reply", id="unbranch", show=False),
        Binding("f8", "copy_code", "Copy code", id="copy_code", show=False),
        Binding(
            "ctrl+p",
            "command_palette",
            "Command palette",
            id="command_palette",
            priority=True,
            show=False,
        ),
    ]

    def __init__(
        self,
        config: AppConfig,
        *,
        engine_factory: Callable[[], ChatEngine] | None = None,
        settings: Settings | None = None,
        store: TranscriptStore | None = None,
        flush_interval: float | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.settings = settings or Settings.load()
        self.store = store or TranscriptStore(
            Path(config.transcripts) if config.transcripts else data_dir() / "transcripts",
            save_tokens=self.settings.save_tokens,
        )
        #: tests give a stand-in engine; otherwise worker.open_backend decides local or remote
        self._engine_factory = engine_factory
        self._flush_interval = flush_interval
        self.engine: ChatEngine | None = None
        self.chat: ChatBackend | None = None
        self.info: ModelInfo | None = None
        self.load_error: str | None = None
        self.history = History(Conversation.new(self._model_label(), config.system))
        # slider values: flags beat remembered values beat the model's defaults
        self._explicit = {**self.settings.sampling, **config.sampling}
        self.sampling: dict[str, Number] = {p.name: p.default for p in PARAMS} | self._explicit
        self._gen_counter = 0
        self._queued: str | None = None  # a prompt sent while the model was still loading
        self.autosaver = AutoSaver(self.store, self._run_save, self._save_failed)
        self._narrow = False
        self.engine_stuck = False  #: quit left a generation thread that would not stop
        self._settings_timer: Timer | None = None
        self._startup_notes: list[str] = list(self.settings.problems)
        found, problems = load_themes()
        self._startup_notes += problems
        for theme in found.values():
            self.register_theme(theme)
        wanted = config.theme or self.settings.theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            self._startup_notes.append(
                f"unknown theme {wanted!r}; available: {', '.join(sorted(self.available_themes))}"
            )
            wanted = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = wanted

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Textual's notify, but plain text by default: notices quote file names, model output
        and user input, none of which may be read as console markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def action_help_quit(self) -> None:
        for key, active in self.active_bindings.items():
            if active.binding.action in ("quit", "app.quit"):
                self.notify(f"Press {key} to quit the app", title="Do you want to quit?")
                return

    # --- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="chat-column"):
                yield ChatView(id="chat")
                yield InspectorPanel(id="inspector")
                yield PromptInput(placeholder=PLACEHOLDER, id="prompt")
            yield SamplingPanel(self.sampling, id="side-panel")
        yield StatusBar(id="status")
        yield Footer(compact=True)

    @property
    def panel(self) -> SamplingPanel:
        return self.query_one(SamplingPanel)

    def on_mount(self) -> None:
        # thread workers run on the loop's default executor; this one does not make the loop's
        # shutdown wait for a thread stuck in the engine (see action_quit)
        asyncio.get_running_loop().set_default_executor(_NoWaitExecutor())
        if self.settings.keymap:
            unknown = sorted(set(self.settings.keymap) - set(commands.binding_ids(self.BINDINGS)))
            if unknown:
                self._startup_notes.append(f"keymap: unknown binding id(s) {', '.join(unknown)}")
            self.set_keymap(self.settings.keymap)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.status.model = self._model_label()
        self._narrow = self.size.width < NARROW_WIDTH
        self.panel.display = self.settings.side_panel and not self._narrow
        self.prompt.focus()
        for note in self._startup_notes:
            self.notify(note, title="Settings", severity="warning", timeout=10)
        self.run_worker(self._load_engine, thread=True, group="load", exit_on_error=False)

    def on_key(self, event: events.Key) -> None:
        """A character typed where nothing takes text (the chat pane, a slider) goes to the
        prompt box instead of being dropped."""
        if (
            event.is_printable
            and event.character
            and self.screen is self.screen_stack[0]
            and self.focused is not self.prompt
        ):
            event.stop()
            prompt = self.prompt
            prompt.focus()
            prompt.insert(event.character)

    def on_resize(self, event: events.Resize) -> None:
        narrow = event.size.width < NARROW_WIDTH
        if narrow != self._narrow:
            self._narrow = narrow
            self.panel.display = self.settings.side_panel and not narrow

    def _model_label(self) -> str:
        if self.info is not None:
            return self.info.name
        return self._placeholder()

    def _placeholder(self) -> str:
        """What the model is called until it is loaded: a path's last part, or the URL."""
        if is_endpoint(self.config.model):
            return self.config.model
        return Path(self.config.model).name or self.config.model

    # --- loading the model ---------------------------------------------------------------------
    def _load_engine(self) -> None:
        """Worker thread: load the model (torch is imported here, not before first paint)."""
        try:
            engine: ChatEngine | None
            chat: ChatBackend
            if self._engine_factory is not None:
                engine = self._engine_factory()
                from tui_gen.engine.chat import ChatSession

                chat, info = ChatSession(engine), model_info(engine)
            else:
                engine, info, chat = open_backend(self.config)
            warm_up_highlighting()
            gcpause.freeze_startup_objects()  # torch and the model: see gcpause.py
            self.post_message(EngineLoaded(engine, info, chat))
        except Exception as e:  # a TuiGenError has a one-line message; anything else too
            message = str(e) if e.__class__.__module__.startswith("tui_gen") else repr(e)
            self.post_message(EngineFailed(message))

    async def on_engine_loaded(self, message: EngineLoaded) -> None:
        self.engine, self.info, self.chat = message.engine, message.info, message.chat
        info = message.info
        if self.conversation.model in ("", self._placeholder()):  # not a reopened conversation
            self.history.set_model(info.name)
        status = self.status
        status.model = info.name
        status.device = " · ".join(p for p in (info.device, info.dtype, info.quantization) if p)
        status.context_max = info.max_context
        status.context_note = info.context_note
        if info.context_note:  # recurrent (BDH): no limit; a bar only against a trained length
            status.context_max = info.trained_context
        status.state = "ready"
        self.panel.set_maximum("max_new_tokens", max(1, min(4096, info.max_context)))
        self.sampling["max_new_tokens"] = self.panel.slider("max_new_tokens").value
        for name, value in clean_values(info.defaults).items():
            if name not in self._explicit:
                self.set_param(name, value, explicit=False)
        self.chat_view.welcome.show(
            f"{info.name} is ready",
            "Type a message and press Enter. Ctrl+J adds a newline, /help lists commands, "
            "F1 lists keys, Ctrl+P opens the command palette.",
        )
        if self._queued is not None:
            text, self._queued = self._queued, None
            await self._start("send", text)  # the message is already the history's last turn

    def on_engine_failed(self, message: EngineFailed) -> None:
        self.load_error = message.error
        self.status.state = "error"
        self.chat_view.welcome.show(
            "Could not load the model",
            f"{message.error}\n\nCtrl+O browses saved conversations; Ctrl+Q quits.",
        )
        self.notify(message.error, title="Model", severity="error", timeout=30)
        if self._queued is not None:
            self._queued = None
            self.call_later(self._unsend_last)

    # --- sending -------------------------------------------------------------------------------
    async def on_prompt_input_submitted(self, message: PromptInput.Submitted) -> None:
        text = message.text
        if slash.is_command(text):
            message.prompt.accept()
            await self.run_slash(text)
            return
        await self.send(slash.message_text(text))

    async def send(self, text: str) -> bool:
        """Send a message (the prompt box is cleared only when it was taken)."""
        if self.generating or self._queued is not None:
            self.notify("A reply is on its way; Esc stops it.", severity="warning", timeout=3)
            return False
        if self.load_error is not None:
            self.notify(f"No model: {self.load_error}", severity="error")
            return False
        self.prompt.accept()
        self.history.add_user(text)
        await self.chat_view.add_user(text)
        if self.chat is None:
            self._queued = text
            self.notify("The model is still loading; your message goes as soon as it is ready.")
            return True
        await self._start("send", text)
        return True

    # --- actions -------------------------------------------------------------------------------
    async def action_stop(self) -> None:
        """Stop the reply being generated (keeps the partial text); otherwise focus the prompt.

        Only sets the cancel event: the engine checks it before every model step, so decoding
        halts within one step, and the final message wraps up as usual."""
        g = self._generation
        if g is not None:
            g.job.cancel.set()
            self.status.state = "stopping"
        elif self._queued is not None:
            self._queued = None
            await self._unsend_last()
        else:
            self.prompt.focus()

    async def action_reset(self) -> None:
        """Start a new conversation: clear the turns and the model's KV cache."""
        if not await self._stop_and_wait():
            return
        self._queued = None
        if self.chat is not None:
            self.chat.reset()
        had_turns = bool(self.conversation.turns)
        self._save()  # e.g. after Ctrl+L took back its only exchange: the file must agree
        self.history.start_new(self._model_label())
        await self.chat_view.clear_turns()
        self.status.context_used = 0
        self.status.speed = ""
        if self.chat is not None:
            self.status.state = "ready"
        self.prompt.focus()
        saved = f" (the previous one is saved in {self.store.folder})" if had_turns else ""
        self.notify(f"New conversation{saved}.", title="Reset", timeout=3)

    async def action_regenerate(self) -> None:
        """Generate the last reply again (with the current slider values)."""
        if self.chat is None:
            self.notify("The model is not loaded yet.", severity="warning")
            return
        if not await self._stop_and_wait():
            return
        turns = self.conversation.turns
        if not turns or turns[-1].role != "assistant":
            self.notify("There is no reply to regenerate yet.", severity="warning")
            return
        await self._start("regenerate")

    async def action_edit_last(self) -> None:
        """Take back the last message (and its reply) into the prompt box to edit and resend."""
        if not await self._stop_and_wait():
            return
        if self._queued is not None:
            self._queued = None
            await self._unsend_last()
            return
        taken = self.history.take_back_last_exchange()
        if taken is None:
            self.notify("There is no message to edit yet.", severity="warning")
            return
        text, removed = taken
        await self.chat_view.remove_last(removed)
        self.prompt.set_text(text)
        self.prompt.focus()
        self._status_from_history()
        self._save()

    def _status_from_history(self) -> None:
        """The status bar as of the conversation's last reply (after a turn was taken back)."""
        status = self.status
        last = self.conversation.last("assistant")
        stats = (last.stats or {}) if last is not None else {}
        tps = stats.get("decode_tokens_per_second")
        ttft = stats.get("time_to_first_token")
        numbers = isinstance(tps, (int, float)) and isinstance(ttft, (int, float))
        status.speed = f"{tps:.1f} tok/s · first token {ttft:.2f} s" if numbers else ""
        used = [stats.get("prompt_tokens"), stats.get("generated_tokens")]
        status.context_used = sum(used) if all(isinstance(n, int) for n in used) else 0  # type: ignore[arg-type]
        if self.chat is not None:
            status.state = "ready"

    async def _unsend_last(self) -> None:
        """Put a message that was never answered back into the prompt box."""
        text = self.history.unsend_last()
        if text is not None:
            await self.chat_view.remove_last(1)
            if not self.prompt.text:
                self.prompt.set_text(text)

    def action_copy_reply(self) -> None:
        """Copy the last reply to the clipboard (OSC 52: works over SSH in most terminals)."""
        turn = self.conversation.last("assistant")
        if turn is None:
            self.notify("There is no reply to copy yet.", severity="warning")
            return
        text = sanitize(turn.content)
        self.copy_to_clipboard(text)
        self.notify(f"Copied the last reply ({len(text)} characters).", timeout=3)

    def action_copy_code(self, index: int = -1) -> None:
        """Copy a code block of the last reply (the last one by default)."""
        turn = self.conversation.last("assistant")
        blocks = code_blocks(sanitize(turn.content)) if turn else []
        if not blocks:
            self.notify("The last reply has no code block.", severity="warning")
            return
        block = blocks[index] if -len(blocks) <= index < len(blocks) else blocks[-1]
        self.copy_to_clipboard(block.code)
        self.notify(f"Copied a code block ({block.describe()}).", timeout=3)

    def action_export(self, path: str = "", tokens: bool | None = None) -> None:
        """Write the conversation as Markdown (default: <transcripts>/exports/<id>.md), with a
        per-token probability table after each reply when `tokens` (default: the setting)."""
        if not self.conversation.turns:
            self.notify("Nothing to export yet.", severity="warning")
            return
        target = Path(path).expanduser() if path else self.store.export_path(self.conversation)
        if path and not target.parent.is_dir():  # a typo must not create folders
            self.notify(
                f"Cannot export to {target}: the folder {target.parent} does not exist "
                "(create it first, or give another path).",
                title="Export failed",
                severity="error",
            )
            return
        try:
            with_tokens = self.settings.export_tokens if tokens is None else tokens
            written = export_markdown(self.conversation, target, tokens=with_tokens)
        except TranscriptError as e:
            self.notify(str(e), title="Export failed", severity="error")
            return
        self.notify(f"Saved {written}", title="Markdown export", timeout=6)

    def action_help(self) -> None:
        self.push_screen(
            HelpScreen(self.binding_rows(), str(self.settings.path), self.command_synopses())
        )

    def command_synopses(self) -> dict[str, tuple[str, str]]:
        """The slash commands, with the ranges this model allows (max tokens: its context)."""
        out = dict(slash.COMMANDS)
        for spec in PARAMS:
            _, description = out[spec.slash]
            out[spec.slash] = (f"[{self._range(spec.name)}]", description)
        return out

    def _range(self, name: str) -> str:
        spec, slider = BY_NAME[name], self.panel.slider(name)
        return f"{spec.format(slider.minimum)}-{spec.format(slider.maximum)}"

    def action_toggle_panel(self) -> None:
        panel = self.panel
        panel.display = not panel.display
        if not self._narrow:
            self.settings.side_panel = bool(panel.display)
            self._save_settings_later()
        if panel.display:
            panel.slider(PARAMS[0].name).focus()
        elif self.focused is None or panel in self.focused.ancestors:
            self.prompt.focus()

    async def action_transcripts(self) -> None:
        """Browse saved conversations; the chosen one is reopened to continue."""
        self._save()

        async def chosen(conv_id: str | None) -> None:
            if conv_id:
                await self.open_conversation(conv_id)

        await self.push_screen(TranscriptBrowser(self.store, self.conversation.id), chosen)

    async def open_conversation(self, conv_id: str) -> bool:
        """Reopen a saved conversation to continue it (with the model that is loaded)."""
        try:
            conv = self.store.load(conv_id)
        except TranscriptError as e:
            self.notify(str(e), severity="error")
            return False
        if not await self._stop_and_wait():
            return False
        self._queued = None
        self._save()
        self.history.replace(conv)
        if self.chat is not None:
            self.chat.reset()  # the KV cache holds the other conversation
        await self._render_conversation()
        self.status.context_used = 0
        self.status.speed = ""
        if self.chat is not None:
            self.status.state = "ready"
        note = ""
        if self.info is not None and conv.model and conv.model != self.info.name:
            note = f" (it was recorded with {sanitize(conv.model)}; {self.info.name} continues it)"
        self.notify(f"Reopened “{conv.display_title()}”{note}.", title="Transcripts", timeout=5)
        self.prompt.focus()
        return True

    def on_transcript_browser_deleted(self, message: TranscriptBrowser.Deleted) -> None:
        if message.conv_id == self.conversation.id:
            # the open conversation was deleted: keep showing it, but never write it back
            self.history.forget_saved(self._model_label())
            self.call_later(self._render_conversation)
            if self.chat is not None and not self.generating:
                self.chat.reset()

    async def _render_conversation(self) -> None:
        view = self.chat_view
        await view.clear_turns()
        for turn in self.conversation.turns:
            if turn.role == "user":
                await view.add_user(turn.content)
            else:
                await view.add_reply(
                    turn.model or self.conversation.model,
                    turn.content,
                    stats_line(turn),
                    stopped=turn.stopped or turn.finish_reason == "interrupted",
                    tokens=turn.tokens or (),
                )
        view.scroll_end(animate=False)

    # --- slash commands ------------------------------------------------------------------------
    async def run_slash(self, text: str) -> None:
        """Run a /command typed in the prompt box (a bad one explains itself in a notice)."""
        try:
            cmd = slash.parse(text)
        except slash.SlashError as e:
            self.notify(str(e), title="Command", severity="error")
            return
        if cmd.param is not None:
            spec = BY_NAME[cmd.param]
            if cmd.value is None:
                self.notify(
                    f"{spec.label} is {spec.format(self.sampling[cmd.param])} "
                    f"(/{spec.slash} VALUE changes it).",
                    timeout=4,
                )
                return
            slider = self.panel.slider(cmd.param)
            if not slider.minimum <= cmd.value <= slider.maximum:
                limit = " (this model's context)" if cmd.param == "max_new_tokens" else ""
                self.notify(
                    f"{spec.label} must be between {spec.format(slider.minimum)} and "
                    f"{spec.format(slider.maximum)}{limit}, got {spec.format(cmd.value)}.",
                    title="Command",
                    severity="error",
                )
                return
            value = self.set_param(cmd.param, cmd.value, explicit=True)
            self.notify(f"{spec.label} = {spec.format(value)} for the next reply.", timeout=3)
        elif cmd.name == "system":
            self._set_system(cmd.arg)
        elif cmd.name == "reset":
            await self.action_reset()
        elif cmd.name == "save":
            self.action_export(cmd.arg)
        elif cmd.name == "theme":
            if not cmd.arg:
                self.notify("Themes: " + ", ".join(sorted(self.available_themes)), timeout=8)
            elif cmd.arg in self.available_themes:
                self.theme = cmd.arg
            else:
                self.notify(f"No theme called {cmd.arg!r}; /theme lists them.", severity="error")
        elif cmd.name == "help":
            self.action_help()

    def _set_system(self, arg: str) -> None:
        if not arg:
            current = self.conversation.system
            self.notify(
                f"System prompt: {sanitize(current)}" if current else "No system prompt is set.",
                timeout=6,
            )
            return
        value = None if arg == "-" else arg
        self.history.set_system(value)  # every request reads it: a running reply keeps its own
        self.notify("System prompt cleared." if value is None else "System prompt set.", timeout=3)
        self._save()

    # --- sliders and settings ------------------------------------------------------------------
    def set_param(self, name: str, value: Number, *, explicit: bool) -> Number:
        """Set a sampling value (and its slider). `explicit`: the user chose it, so it is
        remembered in the settings and beats the model's defaults next time."""
        value = self.panel.slider(name).snap(value)
        self.sampling[name] = value
        if explicit:
            self._explicit[name] = value
            self.settings.sampling[name] = value
            self._save_settings_later()
        self.panel.set_value(name, value)  # its Changed message then matches and is ignored
        self._sampling_changed()
        return value

    def on_sampling_panel_changed(self, message: SamplingPanel.Changed) -> None:
        if self.sampling.get(message.name) != message.value:
            self.set_param(message.name, message.value, explicit=True)  # the user moved it

    def _theme_changed(self, theme: Theme) -> None:
        if self.settings.theme != theme.name:
            self.settings.theme = theme.name
            self._save_settings_later()

    def _save_settings_later(self) -> None:
        if self._settings_timer is not None:
            self._settings_timer.stop()
        self._settings_timer = self.set_timer(0.5, self.save_settings)

    def save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as e:
            self.notify(
                f"Could not save the settings to {self.settings.path}: {why(e)}; "
                "the app works on without remembering them.",
                title="Settings",
                severity="error",
            )

    # --- autosave ------------------------------------------------------------------------------
    def _save(self, partial_reply: str | None = None) -> None:
        """Autosave the conversation (off the UI thread; see autosave.py)."""
        self.autosaver.save(self.conversation, partial_reply)

    def _run_save(self, write: Callable[[], None]) -> None:
        self.run_worker(write, thread=True, group="autosave", exit_on_error=False)

    def _save_failed(self, error: str) -> None:
        """Called on the saving thread."""
        self.notify(error, title="Autosave", severity="error", timeout=15)  # thread-safe

    async def action_quit(self) -> None:
        """Quit promptly, saving the conversation, even if the engine thread is stuck."""
        g = self._generation
        partial_reply = None
        if not await self._stop_and_wait(timeout=QUIT_WAIT):
            # the engine did not stop within a step: keep what it wrote, and let run_app end
            # the process without waiting for the thread
            self.engine_stuck = True
            partial_reply = g.reply.streamed_text if g is not None else None
        error = self.autosaver.save_now(self.conversation, partial_reply)
        if error:
            self.notify(error, title="Autosave", severity="error")
        if self._settings_timer is not None:
            self._settings_timer.stop()
        self.save_settings()
        code = 2 if self.load_error else 0
        self.exit(code, return_code=code)

    def on_unmount(self) -> None:
        g = self._generation
        if g is not None:
            g.job.cancel.set()  # e.g. the terminal closed: let the thread end within a step
        gcpause.restore()

    # --- keys, help and the command palette ----------------------------------------------------
    def binding_rows(self) -> list[tuple[str, str, str]]:
        return commands.binding_rows(self.BINDINGS, self.settings.keymap)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if screen is self.screen_stack[0]:  # not over the transcript browser or help
            yield from commands.chat_commands(self)

    def reset_sampling(self) -> None:
        """Sliders back to the model's defaults (or the built-in ones before it loads)."""
        defaults = {p.name: p.default for p in PARAMS}
        if self.info is not None:
            defaults |= clean_values(self.info.defaults)
        defaults |= self.config.sampling
        self._explicit = dict(self.config.sampling)
        self.settings.sampling = {}
        for name, value in defaults.items():
            self.set_param(name, value, explicit=False)
        self._save_settings_later()
        self.notify("Sampling values reset to the model's defaults.", timeout=3)

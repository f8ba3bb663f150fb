"""Start the server: bind the socket first (a port in use is one line, exit 2), answer /health
with 503 while the model loads on a thread of its own, then serve.

`Server` is what the command and the tests share: `serve_forever()` on the main thread (Ctrl-C
stops it), or `start()` / `stop()` on a background thread for a test.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from tui_gen.errors import TuiGenError

#: seconds uvicorn lets open streams finish when told to stop
GRACEFUL_SECONDS = 3


def check_extra() -> None:
    """One line naming the install command when fastapi or uvicorn is missing."""
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise TuiGenError(
            f"tui-gen serve needs {' and '.join(missing)}; install them with "
            "pip install 'tui-gen[serve]'"
        )


def served_name(model: str) -> str:
    """The model id /v1/models lists: the directory's name, or a file's stem (as the loader)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve().name
    if path.suffix.lower() == ".gguf":
        return path.stem
    return path.resolve().parent.name or path.stem


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise TuiGenError(f"--host {host!r}: cannot resolve it ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise TuiGenError(
            f"cannot listen on {host}:{port} ({e.strerror}); choose another --port or --host"
        ) from None
    return sock


class Server:
    """uvicorn serving create_app(state) on a socket bound up front."""

    def __init__(self, state: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        from tui_gen.server.app import create_app

        self.state = state
        self.sock = bind(host, port)
        self.host = host
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(state),
            log_level="warning",
            access_log=False,  # the app logs one line per request itself (middleware.py)
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
        self.uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def serve_forever(self) -> None:
        try:
            self.uvicorn.run(sockets=[self.sock])
        finally:
            self.close()

    def start(self) -> Server:
        """Serve on a background thread (tests); returns once uvicorn has started."""
        self._thread = threading.Thread(target=self.serve_forever, name="tui-gen-http")
        self._thread.start()
        for _ in range(500):  # at most 5 s
            if self.uvicorn.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self.uvicorn.started:
            self.stop()
            raise RuntimeError("the server did not start")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        self.state.close()
        self.sock.close()


def load_into(state: Any, server: Server, load: Any) -> threading.Thread:
    """Load the model on a thread; on failure record the one-line reason and stop serving."""

    def run() -> None:
        try:
            gen = load()
            state.ready(gen)
            print(f"tui-gen serve: ready: {state.model_name} at {server.url}", file=sys.stderr)
        except TuiGenError as e:
            state.load_error = str(e)
            server.uvicorn.should_exit = True
        except Exception as e:  # a bug: keep the reason, stop the server, exit non-zero
            state.load_error = f"loading the model failed ({type(e).__name__}: {e})"
            server.uvicorn.should_exit = True

    t = threading.Thread(target=run, name="tui-gen-load", daemon=True)
    t.start()
    return t


def run_serve(args: Any) -> int:
    """`tui-gen serve MODEL ...` (flags from cli/parser.py)."""
    check_extra()
    from tui_gen.server.app import ServerState

    name = args.model_name or served_name(args.model)
    state = ServerState(name, api_key=args.api_key, max_batch=args.max_batch)
    server = Server(state, args.host, args.port)

    def load() -> Any:
        from tui_gen.engine.generator import Generator

        return Generator.load(
            args.model,
            device=args.device,
            dtype=args.dtype,
            max_context=args.max_context,
            quantize=None if args.quantize in (None, "none") else args.quantize,
            kv_cache_dtype=args.kv_cache_dtype,
            activations=getattr(args, "activations", "fast"),
        )

    print(f"tui-gen serve: loading {args.model}; listening on {server.url}", file=sys.stderr)
    # the request lines go to stderr, nothing else does; undone at the end (in-process callers)
    log = logging.getLogger("tui_gen.server")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        load_into(state, server, load)
        server.serve_forever()
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]
    if state.load_error:
        raise TuiGenError(state.load_error)
    return 0

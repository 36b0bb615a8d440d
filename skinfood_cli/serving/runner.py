"""Running the server: bind the socket first, serve with uvicorn, drain on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

import uvicorn

from skinfood_cli.errors import UsageError
from skinfood_cli.serving.config import ServeConfig
from skinfood_cli.serving.server import create_app
from skinfood_cli.serving.state import State

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def lan_address() -> str | None:
    """This machine's address on the local network (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return None


def bind(host: str, port: int):
    """A listening socket, so a taken port is our clear error, not the server's traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (pick another --port)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(cfg: ServeConfig, host: str, port: int, announce, *, access_log: bool = True) -> None:
    """Load and warm the model, bind, serve until Ctrl-C or SIGTERM, drain, return.

    `announce(state, sock)` is called once the socket accepts connections.
    """
    state = State(cfg)
    state.load()  # a bad model fails here, as one clear line, before anything listens
    sock = bind(host, port)
    app = create_app(cfg, state)

    class Server(uvicorn.Server):
        # uvicorn re-raises the signal that stopped it once it has shut down, so the
        # process would die of SIGTERM (exit 143) after a clean drain. A graceful
        # stop is a success: remember the signal, don't re-raise it.
        def handle_exit(self, sig, frame):
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=access_log,
        timeout_graceful_shutdown=None,
        lifespan="on",
        server_header=False,
    )
    # uvicorn's own start-up chatter stays quiet; the access log (method, path,
    # status: never a photo) is on unless --no-access-log.
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)
    server = Server(config)

    async def main():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            announce(state, sock)
        await task

    try:
        asyncio.run(main())
    finally:
        state.stop()
        sock.close()

"""Serving the studio beside Dagster's UI, in a thread of `wan-lora ui`."""

from __future__ import annotations

import errno
import socket
import threading

import uvicorn

from wan_lora_dagster.project import Project
from wan_lora_dagster.studio.app import create_app
from wan_lora_dagster.studio.security import Access, is_local, new_token


def studio_address(host: str, port: int, token: str | None) -> str:
    """What to open in a browser: the studio's address, with its token when it needs one."""
    return f"http://{host}:{port}/captions" + (f"?token={token}" if token else "")


def start_studio(
    project: Project, host: str, port: int, dagster_url: str
) -> tuple[str, uvicorn.Server]:
    """Serve the studio on `host:port` in a daemon thread (it ends with `wan-lora ui`).

    Bound to another address than this machine's, it makes a token every request must carry.
    Returns the address to open (a free port's if `port` is taken: the studio never keeps
    Dagster's UI from starting), and the server (`should_exit = True` stops it).
    """
    token = None if is_local(host) else new_token()
    app = create_app(project, Access.for_bind(host, token), dagster_url)
    app.state.captions.warm_up()
    listening = _bound(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, args=([listening],), name="studio", daemon=True).start()
    return studio_address(host, listening.getsockname()[1], token), server


def _bound(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        listening.bind((host, 0))
    return listening

"""Serving the studio beside Dagster's UI, in a thread of `wan-lora ui`."""

from __future__ import annotations

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
    Returns the address to open, and the server (`should_exit = True` stops it).
    """
    token = None if is_local(host) else new_token()
    app = create_app(project, Access.for_bind(host, token), dagster_url)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    socket = config.bind_socket()  # here: a port in use fails `wan-lora ui` at once, named
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, args=([socket],), name="studio", daemon=True).start()
    return studio_address(host, port, token), server

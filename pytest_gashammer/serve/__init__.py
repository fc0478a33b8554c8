"""The live API: an HTTP server in the hive's process for the session (``--gashammer-serve``).

:class:`~pytest_gashammer.serve.board.LiveBoard` is what the hive writes its figures and events
to; :class:`~pytest_gashammer.serve.server.LiveServer` serves it (JSON, Server-Sent Events,
Prometheus metrics, a live page). Nothing here is imported unless the option is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_gashammer.serve.bind import Bind, parse_bind
from pytest_gashammer.serve.board import LiveBoard

if TYPE_CHECKING:
    from pytest_gashammer.serve.server import LiveServer

__all__ = ["Bind", "LiveBoard", "parse_bind", "start_server"]


def start_server(bind: str, token: str | None = None) -> tuple[LiveBoard, LiveServer]:
    """A board and its server, listening on ``bind`` (``[HOST:]PORT``); the server's ``url`` says where."""
    from pytest_gashammer.serve.server import LiveServer

    board = LiveBoard()
    server = LiveServer(board, parse_bind(bind), token=token).start()
    return board, server

"""A real SMTP server on 127.0.0.1 (aiosmtpd) for the email tests, with failures on demand.

The handler records every accepted envelope and can be told to answer the next DATA commands
with a temporary failure (421, 451), to refuse a recipient at RCPT (always or for the next few
attempts), and to check logins. ``self_signed_cert`` makes a certificate with the ``openssl``
command, so TLS needs no network and no extra package.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from collections import deque
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    """One message the server accepted, with what it knew of the session."""

    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    login: str | None

    def message(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class Handler:
    """aiosmtpd hooks; the test thread sets the behaviour, the server thread follows it."""

    users: dict[str, str] = field(default_factory=dict)
    auth_reply: str | None = None  # the reply to a failed login, instead of aiosmtpd's 535
    received: list[Received] = field(default_factory=list)
    _data_replies: deque[str] = field(default_factory=deque)
    _rcpt_replies: dict[str, deque[str] | str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_data(self, reply: str, times: int = 1) -> None:
        """Answer the next ``times`` DATA commands with ``reply`` (``"451 4.3.0 Try later"``)."""
        with self._lock:
            self._data_replies.extend([reply] * times)

    def refuse(self, recipient: str, reply: str, times: int | None = None) -> None:
        """Answer RCPT for ``recipient`` with ``reply``: always, or ``times`` times."""
        with self._lock:
            self._rcpt_replies[recipient] = reply if times is None else deque([reply] * times)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self._lock:
            reply = self._rcpt_replies.get(address)
            if isinstance(reply, deque):
                reply = reply.popleft() if reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            reply = self._data_replies.popleft() if self._data_replies else None
        if reply:
            return reply
        data = envelope.original_content or envelope.content or b""
        assert isinstance(data, bytes)
        login = session.login_data.decode() if isinstance(session.login_data, bytes) else None
        self.received.append(
            Received(
                sender=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                data=data,
                tls=_encrypted(server, session),
                login=login,
            )
        )
        return "250 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if login in self.users and self.users[login] == password:
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False, message=self.auth_reply)


def _encrypted(server: SMTP, session: Session) -> bool:
    """Whether the session is under TLS: upgraded by STARTTLS, or implicit from the start."""
    transport = server.transport
    return session.ssl is not None or (
        transport is not None and transport.get_extra_info("ssl_object") is not None
    )


class _BoundController(Controller):
    """A Controller serving on a socket bound beforehand to port 0, so tests never collide."""

    def __init__(self, handler: Handler, sock: socket.socket, **kwargs: Any) -> None:
        super().__init__(
            handler,
            hostname="127.0.0.1",
            port=sock.getsockname()[1],
            server_hostname="localhost",
            **kwargs,
        )
        self._sock = sock

    def _create_server(self) -> Awaitable[Any]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    handler: Handler


@contextmanager
def smtp_server(
    *,
    users: dict[str, str] | None = None,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
) -> Iterator[Server]:
    """Serve SMTP on 127.0.0.1 until the block ends. ``tls_context`` offers STARTTLS (required,
    as is TLS before AUTH), or with ``implicit_tls`` wraps the whole connection; ``users`` turns
    on AUTH with those logins and passwords."""
    handler = Handler(users=dict(users or {}))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    kwargs: dict[str, Any] = {}
    if implicit_tls:
        kwargs["ssl_context"] = tls_context
    elif tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=True)
    if users is not None:
        kwargs.update(authenticator=handler.authenticate, auth_require_tls=True)
    controller = _BoundController(handler, sock, **kwargs)
    try:
        controller.start()
    except BaseException:
        sock.close()
        raise
    try:
        yield Server("127.0.0.1", sock.getsockname()[1], handler)
    finally:
        controller.stop()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate and nothing else."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed_cert(directory: Path) -> Certificate | None:
    """A certificate for 127.0.0.1 and localhost, or None when ``openssl`` is not installed."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)

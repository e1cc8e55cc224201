"""nginx serving a folder on loopback, for the ``pgdocs`` scenario: a real web server in front of
a real site, beside the benchmark's own :mod:`bench.server`.

:class:`NginxServer` writes a config into a temporary folder (``daemon off``, one process:
``master_process off``, its pid file, error and access logs and temporary files all in that
folder), listens on ``127.0.0.2:<port>`` with ``root`` = the folder, ``index.html`` for folders
and ``autoindex off``, and stops nginx when done, whatever happens. One process, so that its
CPU is that of one pid, as for :class:`bench.server.ServerProcess`: it has the same ``port``,
``pid`` and context manager. Keep-alive connections are kept for the whole crawl
(``keepalive_requests``), as :mod:`bench.server` keeps them.

:func:`ensure_nginx` finds the binary, installing ``nginx-light`` (or ``nginx``) with apt-get
when it is missing and running as root (:mod:`bench.apt`).
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bench.apt import ensure_command

NGINX_PACKAGES = ("nginx-light", "nginx")
SYSTEM_MIME_TYPES = Path("/etc/nginx/mime.types")

# what a docs site holds, when the system's mime.types is missing
_MIME_TYPES = """
        text/html html htm;
        text/css css;
        text/plain txt;
        text/xml xml;
        application/javascript js;
        application/json json;
        image/png png;
        image/gif gif;
        image/jpeg jpg jpeg;
        image/svg+xml svg svgz;
        image/x-icon ico;
        font/woff woff;
        font/woff2 woff2;
        application/pdf pdf;
        application/zip zip;
"""


def ensure_nginx() -> tuple[str | None, str]:
    """The nginx binary, installed with apt-get if missing and root; else None and why."""
    return ensure_command("nginx", NGINX_PACKAGES)


def nginx_config(folder: Path, root: Path, host: str, port: int) -> str:
    """The whole nginx.conf: one process in the foreground, every file it writes in
    ``folder``, serving ``root`` on ``host:port``."""
    if SYSTEM_MIME_TYPES.is_file():
        types = f"include {SYSTEM_MIME_TYPES};"
    else:
        types = "types {" + _MIME_TYPES + "    }"
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
worker_rlimit_nofile 16384;
events {{
    worker_connections 8192;
}}
http {{
    {types}
    default_type application/octet-stream;
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    sendfile on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    server_tokens off;
    server {{
        listen {host}:{port};
        server_name _;
        root {root};
        index index.html;
        autoindex off;
    }}
}}
"""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies, however it dies (nginx has
    no time limit of its own, unlike bench.server's ``--max-seconds``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NginxServer:
    """nginx serving ``root`` on ``host``; ``port`` and ``pid`` once started; stopped on exit."""

    def __init__(self, binary: str, root: Path, host: str = "127.0.0.2") -> None:
        if not host.startswith("127."):
            raise ValueError(f"nginx is only run on loopback, not {host}")
        self.binary = binary
        self.root = root
        self.host = host
        self.folder: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, attempts: int = 20, timeout_s: float = 10) -> NginxServer:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        problem = "nginx did not start"
        for _ in range(attempts):
            port = _free_port(self.host)
            conf = self.folder / "nginx.conf"
            conf.write_text(nginx_config(self.folder, self.root, self.host, port))
            log = (self.folder / "stderr.log").open("ab")
            try:
                self.proc = subprocess.Popen(
                    [self.binary, "-p", str(self.folder), "-c", str(conf),
                     "-e", str(self.folder / "error.log")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                )  # fmt: skip
            finally:
                log.close()
            if self._wait_listening(port, timeout_s):
                self.port = port
                return self
            problem = self._stop_proc() or problem
        self.stop()
        raise RuntimeError(problem)

    def _wait_listening(self, port: int, timeout_s: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            conn = http.client.HTTPConnection(self.host, port, timeout=2)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
                return True
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.05)
        return False

    def _stop_proc(self) -> str | None:
        """Stop nginx; what its logs said when it had exited by itself."""
        if self.proc is None:
            return None
        exited = self.proc.poll() is not None
        if not exited:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not exited or self.folder is None:
            return None
        said = []
        for name in ("stderr.log", "error.log"):
            path = self.folder / name
            if path.is_file():
                said += path.read_text(errors="replace").strip().splitlines()[-2:]
        return "nginx exited: " + " | ".join(said) if said else "nginx exited"

    def requests(self) -> int:
        """Requests nginx logged so far (lines of its access log)."""
        if self.folder is None:
            return 0
        path = self.folder / "access.log"
        return path.read_bytes().count(b"\n") if path.is_file() else 0

    def stop(self) -> None:
        self._stop_proc()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

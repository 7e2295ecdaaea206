"""The page server: files for the browser, on 127.0.0.1 only.

It serves a fixed set of folders under URL prefixes (the backend's own pages, onnxruntime-web,
the exported model) and nothing else: no listing, no path outside a folder, GET and HEAD only.
Every answer is cross-origin isolated (COOP ``same-origin``, COEP ``require-corp``), which
threaded WebAssembly needs for ``SharedArrayBuffer``, and carries the MIME types that module
scripts and streaming WebAssembly compilation require.
"""

from __future__ import annotations

import mimetypes
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".html": "text/html; charset=utf-8", ".onnx": "application/octet-stream",
         ".json": "application/json"}
HEADERS = {"Cross-Origin-Opener-Policy": "same-origin",
           "Cross-Origin-Embedder-Policy": "require-corp",
           "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff"}
_CHUNK = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    """Answers GET/HEAD for files under the server's mounted folders."""

    def __init__(self, *args: object, mounts: dict[str, Path], **kwargs: object):
        self.mounts = mounts
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Keep requests out of the job's log."""

    def _file(self) -> Path | None:
        path = unquote(urlsplit(self.path).path)
        prefix, _, rest = path.lstrip("/").partition("/")
        root = self.mounts.get(prefix)
        if root is None or not rest:
            return None
        target = (root / rest).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
        return target

    def _answer(self, body: bool) -> None:
        target = self._file()
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        kind = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] \
            or "application/octet-stream"
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(target.stat().st_size))
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            with open(target, "rb") as source:
                while chunk := source.read(_CHUNK):
                    self.wfile.write(chunk)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        """Send the file."""
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
        """Send the headers only."""
        self._answer(body=False)


class PageServer:
    """An HTTP server on 127.0.0.1 (a free port) for the mounted folders; a context manager.

    :param mounts: URL prefix -> folder; ``{"ort": Path(...)}`` serves ``/ort/<file>``.
    """

    def __init__(self, mounts: dict[str, Path]):
        self.mounts = {name: Path(folder).resolve() for name, folder in mounts.items()}
        self._server = ThreadingHTTPServer((HOST, 0), partial(_Handler, mounts=self.mounts))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="hwaccel-web-pages", daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self._server.server_address[1]}"

    def url(self, prefix: str, name: str) -> str:
        """The URL of file ``name`` in the folder mounted at ``prefix``."""
        return f"{self.origin}/{prefix}/{name}"

    def mount(self, prefix: str, folder: Path) -> None:
        """Serve ``folder`` under ``/prefix/`` from now on."""
        self.mounts[prefix] = Path(folder).resolve()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The real site the extractor tests and the bench's ``docs`` scenario read: the Python 3.11 HTML
docs of Debian's ``python3.11-doc`` (``make docs-site`` installs it), served on 127.0.0.2."""

from __future__ import annotations

from pathlib import Path

DOCS_PACKAGE = "python3.11-doc"
DOCS_ROOT = Path("/usr/share/doc/python3.11/html")
DOCS_HOST = "127.0.0.2"

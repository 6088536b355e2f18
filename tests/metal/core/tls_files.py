"""A self-signed certificate for 127.0.0.1 and localhost, made with openssl, for TLS tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def self_signed(d: Path) -> tuple[Path, Path]:
    """``(cert, key)`` PEM files in ``d``; the certificate is its own CA."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - openssl ships with every supported system
        raise RuntimeError("openssl is not installed (apt-get install openssl)")
    cert, key = d / "metald.crt", d / "metald.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=metald",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key

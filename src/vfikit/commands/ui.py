"""``vfikit ui``: a local web page for interpolation (Gradio; the ``ui`` extra). See docs/ui.md."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from vfikit.errors import MissingDependencyError, VfikitError
from vfikit.ui import DEFAULT_MAX_UPLOAD_MB

INSTALL_HINT = 'the web page needs Gradio: pip install "vfikit[ui]"'
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 opens it to the network, "
                        "with no login)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one, printed)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest accepted upload in MB (default {DEFAULT_MAX_UPLOAD_MB})")
    p.add_argument("--device", default="auto", help="device for the preview: cpu, cuda or auto (jobs use auto)")
    p.add_argument("--keep-jobs", type=int, default=3, help="finished jobs whose results are kept (default 3)")


def free_port(host: str) -> int:
    """A port that is free on ``host`` right now; a host that cannot be listened on is a VfikitError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise VfikitError(f"--host {host} is not an IP address or a host name this computer knows "
                          "(e.g. 127.0.0.1, or 0.0.0.0 for the network)") from None
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])
    except OSError as exc:
        raise VfikitError(f"cannot listen on {host}: {exc.strerror or exc} (not an address of this computer?)") \
            from None


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise MissingDependencyError(INSTALL_HINT)
    if args.max_upload_mb <= 0:
        raise VfikitError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if args.keep_jobs < 1:
        raise VfikitError(f"--keep-jobs must be at least 1, got {args.keep_jobs}")
    if not 0 <= args.port < 65536:
        raise VfikitError(f"--port must be from 0 to 65535, got {args.port}")
    free_port(args.host)  # an unusable --host is said before anything starts
    root = Path(tempfile.mkdtemp(prefix="vfikit-ui-"))  # mode 0700: private to this user
    # Gradio reads its upload folder from the environment when it is imported: keep uploads in ours.
    os.environ["GRADIO_TEMP_DIR"] = str(root / "uploads")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        return _serve(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _serve(args: argparse.Namespace, root: Path) -> int:
    from vfikit.runtime import resolve_device
    from vfikit.ui.app import CSS, build_app
    from vfikit.ui.core import Previewer
    from vfikit.ui.jobs import JobManager

    device = str(resolve_device(args.device))
    max_bytes = int(args.max_upload_mb * 2**20)
    manager = JobManager(root / "jobs", keep=args.keep_jobs)
    demo = build_app(manager, staging=root / "inputs", upload_root=root / "uploads", max_bytes=max_bytes,
                     previewer=Previewer(device), device=device)
    port = args.port or free_port(args.host)
    try:
        demo.queue(default_concurrency_limit=1)
        demo.launch(server_name=args.host, server_port=port, prevent_thread_lock=True, quiet=True, show_error=False,
                    max_file_size=max_bytes, inbrowser=args.open, ssr_mode=False, css=CSS,
                    footer_links=["gradio", "settings"])  # no "Use via API": the page offers no API
    except OSError as exc:
        manager.close()
        raise VfikitError(f"cannot listen on {args.host}:{port}: {exc}") from None
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"vfikit ui: serving on http://{shown}:{port}/ (Ctrl+C to stop)", flush=True)
    print(f"vfikit ui: uploads and results live in {root} and are deleted on exit", flush=True)
    if args.host not in LOOPBACK:
        print("vfikit ui: warning: the page is reachable from other computers and has no login", flush=True)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("vfikit ui: stopping", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        manager.close()
        demo.close()
    return 0

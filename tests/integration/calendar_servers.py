"""Real calendar servers for tests: Radicale (CalDAV) on a free loopback port.

Started from a temporary directory in the foreground, as ../shared/SERVICES.md
section 1 describes; ``with Radicale(tmp_path) as srv:`` yields a running server whose
users are ``alice:alicepw`` and ``bob:bobpw`` (htpasswd, plain) and whose rights are
``owner_write`` by default (everyone authenticated reads, only the owner writes).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

USERS = {"alice": "alicepw", "bob": "bobpw"}


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Radicale:
    def __init__(self, directory: Path, rights: str = "owner_write") -> None:
        self.dir = directory
        self.rights = rights
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "users").write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
        self.port = free_tcp_port()
        (self.dir / "config").write_text(
            f"[server]\nhosts = 127.0.0.1:{self.port}\n"
            f"[auth]\ntype = htpasswd\nhtpasswd_filename = {self.dir / 'users'}\n"
            "htpasswd_encryption = plain\ndelay = 0\n"
            f"[rights]\ntype = {self.rights}\n"
            f"[storage]\nfilesystem_folder = {self.dir / 'collections'}\n"
            "[logging]\nlevel = warning\nmask_passwords = True\n")
        with open(self.dir / "radicale.log", "wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(self.dir / "config")],
                                         cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"radicale exited: {(self.dir / 'radicale.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("radicale did not start within 20 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- a plain client to prepare data (the code under test has its own)
    def client(self, user: str = "alice") -> httpx.Client:
        return httpx.Client(base_url=self.base, auth=(user, USERS[user]), timeout=10)

    def make_calendar(self, path: str, user: str = "alice") -> str:
        """MKCALENDAR /user/path/; returns its URL."""
        with self.client(user) as c:
            c.request("PROPFIND", f"/{user}/", headers={"Depth": "0"})  # creates the principal
            r = c.request("MKCALENDAR", f"/{user}/{path}/")
            assert r.status_code == 201, (r.status_code, r.text)
        return f"{self.base}/{user}/{path}/"

    def put(self, url: str, name: str, ics: str, user: str = "alice") -> None:
        with self.client(user) as c:
            r = c.put(url.rstrip("/") + "/" + name, content=ics.encode(),
                      headers={"Content-Type": "text/calendar; charset=utf-8"})
            assert r.status_code in (201, 204), (r.status_code, r.text)

    def delete(self, url: str, name: str, user: str = "alice") -> None:
        with self.client(user) as c:
            r = c.delete(url.rstrip("/") + "/" + name)
            assert r.status_code in (200, 204), (r.status_code, r.text)

    def get(self, url: str, name: str, user: str = "alice") -> httpx.Response:
        with self.client(user) as c:
            return c.get(url.rstrip("/") + "/" + name)

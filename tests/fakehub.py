"""A stand-in for the Hugging Face Hub on 127.0.0.1, shared by the tests that need one.

`FakeHub` answers the routes huggingface_hub's download client calls
(`/api/models/{repo}/revision/{rev}`, HEAD and GET `/{repo}/resolve/{rev}/{file}`)
with the headers the real Hub sends (X-Repo-Commit, ETag, X-Linked-Etag,
X-Linked-Size). `PublishingApi` stands in for `huggingface_hub.HfApi` on the way
up: what `skinfood push` uploads lands in a `FakeHub`, so a test can push a model
and then use it as `hf://ORG/NAME`. No request leaves the machine.

Used by tests/backends/test_hub.py and tests/test_surfaces.py (`from fakehub import FakeHub`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves repositories {repo_id: {filename: bytes}} the way huggingface.co does, on 127.0.0.1."""

    LFS = (".safetensors", ".onnx")

    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.corrupt: dict[tuple[str, str], bytes] = {}  # served instead of the listed bytes
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hub.handle(self, body=True)

            def do_HEAD(self):
                hub.handle(self, body=False)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add(self, repo_id: str, files: dict[str, bytes]):
        self.repos[repo_id] = files

    def handle(self, req, body: bool):
        path = req.path.split("?")[0]
        self.requests.append((req.command, path))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            repo_id = "/".join(parts[2:4])
            revision = parts[5] if len(parts) > 5 and parts[4] == "revision" else "main"
            return self._info(req, repo_id, revision)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._file(req, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
        self._send(req, 404, {}, b"")

    def _info(self, req, repo_id, revision):
        files = self.repos.get(repo_id)
        if files is None:
            return self._send(req, 401, {"X-Error-Code": "RepoNotFound"}, b'{"error":"Repository not found"}')
        if revision not in ("main", COMMIT):
            return self._send(req, 404, {"X-Error-Code": "RevisionNotFound"}, b'{"error":"Invalid rev id"}')
        siblings = []
        for name, data in files.items():
            entry = {"rfilename": name, "size": len(data), "blobId": _git_blob_id(data)}
            if name.endswith(self.LFS):
                entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
            siblings.append(entry)
        info = {"id": repo_id, "sha": COMMIT, "private": False, "siblings": siblings}
        self._send(req, 200, {"Content-Type": "application/json"}, json.dumps(info).encode())

    def _file(self, req, repo_id, revision, name, body):
        files = self.repos.get(repo_id)
        if files is None:
            return self._send(req, 401, {"X-Error-Code": "RepoNotFound"}, b"")
        if revision not in ("main", COMMIT):
            return self._send(req, 404, {"X-Error-Code": "RevisionNotFound"}, b"")
        if name not in files:
            return self._send(req, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, b"")
        data = files[name]
        headers = {"X-Repo-Commit": COMMIT, "Content-Type": "application/octet-stream"}
        if name.endswith(self.LFS):  # the Hub names LFS files by their sha256
            sha = hashlib.sha256(data).hexdigest()
            headers.update({"ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))})
        else:
            headers["ETag"] = f'"{_git_blob_id(data)}"'
        self._send(req, 200, headers, self.corrupt.get((repo_id, name), data), body=body)

    @staticmethod
    def _send(req, status, headers, data, body=True):
        req.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            req.send_header(key, value)
        req.end_headers()
        if body and data:
            req.wfile.write(data)


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def reload_hub_constants():
    """huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when `constants` loads: reload it."""
    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)


def set_hub_env(m, endpoint: str, home: Path, offline: bool = False):
    m.setenv("HF_ENDPOINT", endpoint)
    m.setenv("HF_HOME", str(home))
    m.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    m.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    m.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_ETAG_TIMEOUT"):
        m.delenv(name, raising=False)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PublishingApi:
    """Stands in for huggingface_hub.HfApi: an upload lands in `hub` (a FakeHub), nothing else is sent.

    Use `PublishingApi.to(hub)` as the class to patch in for `HfApi`; `uploads` lists (repo_id, files).
    """

    hub: FakeHub
    uploads: list

    @classmethod
    def to(cls, hub: FakeHub) -> type:
        return type("PublishingApi", (cls,), {"hub": hub, "uploads": []})

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, repo_id, **kw):
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kw):
        pass

    def upload_folder(self, *, repo_id, folder_path, allow_patterns, **kw):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir() if p.name in allow_patterns}
        self.uploads.append((repo_id, sorted(files)))
        self.hub.add(repo_id, files)
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/{COMMIT}"})()

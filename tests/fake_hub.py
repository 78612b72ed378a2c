"""A local HTTP server standing in for the Hugging Face Hub, for push tests (no network).

It answers just the requests `HfApi.whoami`, `create_repo` and `upload_folder` make: `GET /api/whoami-v2`,
`POST /api/repos/create`, `POST /api/validate-yaml`, `POST /api/models/<repo>/preupload/<rev>` (every file is
"regular", so no LFS or Xet upload follows) and `POST /api/models/<repo>/commit/<rev>` (NDJSON with base64 files).
Every request is recorded (method, path, whether it carried the right bearer token); commits are recorded as
path -> bytes. `failures={"create": 1, "commit": 1}` answers the first such requests (`whoami`, `create`,
`preupload`, `commit`) with `fail_status`, to exercise retries. Anything else gets a 404 and is listed in
`unexpected`.

Point a subprocess at it with `HF_ENDPOINT=<hub.url>` (huggingface_hub reads the variable when it is imported).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_REPO = r"/api/models/(?P<repo>[^/]+/[^/]+)"


@dataclass
class Commit:
    repo_id: str
    summary: str
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    has_authorization: bool
    authorized: bool
    status: int = 0


class FakeHub:
    """Run with `with FakeHub(token) as hub:`; `hub.url` is the endpoint."""

    def __init__(self, token: str, user: str = "tester", failures: dict[str, int] | None = None, fail_status=503):
        self.token = token
        self.user = user
        self.failures = dict(failures or {})
        self.fail_status = fail_status
        self.requests: list[Request] = []
        self.repos: dict[str, dict] = {}
        self.commits: list[Commit] = []
        self.unexpected: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # noqa: A002 - the base class's signature
                pass

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def _dispatch(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                header = self.headers.get("Authorization")
                record = Request(method, self.path.split("?")[0], header is not None, header == f"Bearer {hub.token}")
                with hub._lock:
                    hub.requests.append(record)
                    status, payload = hub._answer(method, record, body)
                record.status = status
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _answer(self, method: str, request: Request, body: bytes) -> tuple[int, dict]:
        path = request.path
        if method == "POST" and path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        if not request.authorized:
            return 401, {"error": "Invalid credentials in Authorization header"}
        kind = _kind(method, path)
        if self.failures.get(kind, 0) > 0:
            self.failures[kind] -= 1
            return self.fail_status, {"error": f"injected failure of {kind}"}
        if kind == "whoami":
            return 200, {"type": "user", "name": self.user, "orgs": [], "auth": {"type": "access_token"}}
        if kind == "create":
            values = json.loads(body)
            repo_id = f"{values.get('organization') or self.user}/{values['name']}"
            if repo_id in self.repos:
                return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}
            self.repos[repo_id] = {"visibility": values.get("visibility")}
            return 200, {"url": f"{self.url}/{repo_id}", "name": repo_id}
        if kind == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if kind == "commit":
            match = re.fullmatch(_REPO + r"/commit/[^/]+", path)
            if match["repo"] not in self.repos:
                return 404, {"error": "Repository not found"}
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            commit = Commit(match["repo"], lines[0]["value"]["summary"])
            for line in lines[1:]:
                if line["key"] != "file" or line["value"].get("encoding") != "base64":
                    self.unexpected.append(f"commit operation {line['key']}")
                    continue
                commit.files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            self.commits.append(commit)
            oid = hashlib.sha1(repr(sorted(commit.files.items())).encode()).hexdigest()
            return 200, {"commitUrl": f"{self.url}/{match['repo']}/commit/{oid}", "commitOid": oid}
        self.unexpected.append(f"{method} {path}")
        return 404, {"error": f"the fake hub does not implement {method} {path}"}


def _kind(method: str, path: str) -> str | None:
    if method == "GET" and path == "/api/whoami-v2":
        return "whoami"
    if method == "POST" and path == "/api/repos/create":
        return "create"
    if method == "POST" and re.fullmatch(_REPO + r"/preupload/[^/]+", path):
        return "preupload"
    if method == "POST" and re.fullmatch(_REPO + r"/commit/[^/]+", path):
        return "commit"
    return None

"""A Hugging Face Hub stand-in on 127.0.0.1, for running the real huggingface_hub downloads offline.

It serves the few endpoints `snapshot_download` and `HfApi.repo_info` use (model info by revision, the
recursive tree of a commit, and each file's resolve URL, HEAD and GET), for repos built in memory, and logs
every request. Point a process at it with HF_ENDPOINT. Plain HTTP files only: no Xet, no LFS redirects.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = ""
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit

    def __post_init__(self) -> None:
        digest = hashlib.sha1(json.dumps(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in self.files.items()))
                              .encode()).hexdigest()
        self.commit = self.commit or digest
        self.branches.setdefault("main", self.commit)


class HubStandIn:
    def __init__(self, repos: dict[str, Repo]) -> None:
        self.repos = repos
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _resolve(self, repo_id: str, revision: str) -> tuple[Repo, str] | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None
        if revision == repo.commit:
            return repo, revision
        commit = repo.branches.get(revision)
        return (repo, commit) if commit == repo.commit else None

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      head: bool = False) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, payload) -> None:
                self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

            def _not_found(self, message: str, head: bool = False) -> None:
                # The Hub's own error header: huggingface_hub raises RepositoryNotFound/RevisionNotFound on it.
                self._send(404, json.dumps({"error": message}).encode(),
                           {"Content-Type": "application/json", "X-Error-Code": "RevisionNotFound",
                            "X-Error-Message": message}, head=head)

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                path = unquote(urlsplit(self.path).path)
                info = re.fullmatch(r"/api/models/(.+?)/revision/([^/]+)", path)
                tree = re.fullmatch(r"/api/models/(.+?)/tree/([^/]+)(/.*)?", path)
                resolve = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path)
                if info:
                    found = hub._resolve(info.group(1), info.group(2))
                    if found is None:
                        return self._not_found(f"{info.group(1)}@{info.group(2)} not found")
                    repo, commit = found
                    return self._json({"id": info.group(1), "modelId": info.group(1), "sha": commit, "private": False,
                                       "siblings": [{"rfilename": name} for name in sorted(repo.files)]})
                if tree:
                    found = hub._resolve(tree.group(1), tree.group(2))
                    if found is None:
                        return self._not_found(f"{tree.group(1)}@{tree.group(2)} not found")
                    repo, _ = found
                    return self._json([{"type": "file", "path": name, "size": len(data),
                                        "oid": hashlib.sha1(data).hexdigest()}
                                       for name, data in sorted(repo.files.items())])
                if resolve:
                    found = hub._resolve(resolve.group(1), resolve.group(2))
                    name = resolve.group(3)
                    if found is None or name not in found[0].files:
                        return self._not_found(f"{path} not found", head=head)
                    repo, commit = found
                    data = repo.files[name]
                    return self._send(200, data, {"Content-Type": "application/octet-stream",
                                                  "X-Repo-Commit": commit,
                                                  "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}, head=head)
                self._not_found(f"no route {path}")

            def log_message(self, *_args) -> None:
                pass

        return Handler

"""A stand-in for the parts of the modal SDK the deploy and the dispatch function call, recording every call.

Each entry point is checked against the installed SDK's own signature (inspect.signature(...).bind), so a call
the real `modal` would refuse (an unknown keyword, a missing argument) fails here too: the stand-in cannot
drift from the SDK that ships (functions/requirements.txt pins it). Nothing reaches Modal.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any


def _bind(real: Any, *args: Any, **kwargs: Any) -> inspect.BoundArguments:
    signature = inspect.signature(real)
    if next(iter(signature.parameters), None) == "cls":  # synchronicity shows some classmethods with their cls
        args = (None, *args)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return bound


@dataclass
class RecordingModal:
    """Patches modal.Cls.from_name and modal.FunctionCall.from_id (use `install(monkeypatch)`)."""

    calls: list[dict] = field(default_factory=list)
    # call id -> what FunctionCall.get(timeout=0) does: "pending" (builtin TimeoutError), "finished" (returns),
    # "failed" (raises a Modal error), "lost" (NotFoundError). Unknown ids are "pending".
    call_states: dict[str, str] = field(default_factory=dict)
    canceled: list[str] = field(default_factory=list)
    spawned: int = 0
    # Where Volume.from_name(name) reads: volumes[name] is a local directory laid out like the Volume.
    volumes: dict[str, Any] = field(default_factory=dict)
    # Token ids Modal refuses (AuthError on any call made with a client of theirs): a rotated-out token.
    refused_tokens: set[str] = field(default_factory=set)

    def install(self, monkeypatch) -> RecordingModal:
        import modal

        real_from_name, real_from_id = modal.Cls.from_name, modal.FunctionCall.from_id
        monkeypatch.setattr(modal.Cls, "from_name", self._from_name(real_from_name))
        monkeypatch.setattr(modal.FunctionCall, "from_id", self._from_id(real_from_id))
        monkeypatch.setattr(modal.Volume, "from_name", self._volume(modal.Volume.from_name))
        monkeypatch.setattr(modal.Client, "from_credentials", self._client(modal.Client.from_credentials))
        return self

    def _client(self, real):
        recorder = self

        def from_credentials(*args, **kwargs):
            bound = _bind(real, *args, **kwargs)
            recorder.calls.append({"kind": "client", "token_id": bound.arguments["token_id"]})
            return type("Client", (), {"token_id": bound.arguments["token_id"]})()

        return from_credentials

    def _check_token(self, client: Any) -> None:
        import modal.exception

        if client is not None and client.token_id in self.refused_tokens:
            raise modal.exception.AuthError(f"Token {client.token_id} is not valid")

    def _volume(self, real):
        recorder = self

        def from_name(*args, **kwargs):
            import modal
            import modal.exception
            from modal.types import FileEntry, FileEntryType

            bound = _bind(real, *args, **kwargs)
            name, environment = bound.arguments["name"], bound.arguments.get("environment_name")
            if name not in recorder.volumes:
                return real(*args, **kwargs)  # a lazy reference (the app's own mount): nothing is looked up
            recorder.calls.append({"kind": "volume", "name": name, "env": environment})
            root = recorder.volumes[name]

            class Volume:
                def _path(self, path: str):
                    target = root / path if root is not None else None
                    if target is None or not target.exists():
                        raise modal.exception.NotFoundError(f"No such file or directory: {path}")
                    return target

                def listdir(self, *args, **kwargs):
                    path = _bind(modal.Volume.listdir, self, *args, **kwargs).arguments["path"]
                    return [FileEntry(path=str(child.relative_to(root)), type=FileEntryType.FILE, mtime=0,
                                      size=child.stat().st_size if child.is_file() else 0)
                            for child in sorted(self._path(path).iterdir())]

                def read_file(self, *args, **kwargs):
                    path = _bind(modal.Volume.read_file, self, *args, **kwargs).arguments["path"]
                    yield self._path(path).read_bytes()

            return Volume()

        return from_name

    def of(self, kind: str) -> list[dict]:
        return [c for c in self.calls if c["kind"] == kind]

    def _from_name(self, real):
        recorder = self

        def from_name(*args, **kwargs):
            bound = _bind(real, *args, **kwargs)
            app_name, class_name = bound.arguments["app_name"], bound.arguments["name"]
            environment, client = bound.arguments.get("environment_name"), bound.arguments.get("client")

            class Instance:
                def __init__(self, **parameters) -> None:
                    self.parameters = parameters

                @property
                def generate(self):
                    instance = self

                    class Method:
                        @staticmethod
                        def spawn(payload: dict):
                            recorder._check_token(client)
                            recorder.spawned += 1
                            call_id = f"fc-{recorder.spawned}"
                            recorder.calls.append({"kind": "spawn", "app": app_name, "env": environment,
                                                   "class": class_name, "parameters": instance.parameters,
                                                   "payload": payload, "call_id": call_id})
                            return type("Call", (), {"object_id": call_id})()

                    return Method()

                def update_autoscaler(self, **settings) -> None:
                    import modal.cls

                    _bind(modal.cls.Obj.update_autoscaler, self, **settings)
                    recorder.calls.append({"kind": "autoscaler", "app": app_name, "env": environment,
                                           "class": class_name, "parameters": self.parameters,
                                           "settings": settings})

            recorder.calls.append({"kind": "lookup", "app": app_name, "env": environment, "class": class_name})
            return Instance

        return from_name

    def _from_id(self, real):
        recorder = self

        def from_id(*args, **kwargs):
            import modal
            import modal.exception

            bound = _bind(real, *args, **kwargs)
            call_id, client = bound.arguments["function_call_id"], bound.arguments.get("client")

            class Call:
                object_id = call_id

                def get(self, *args, **kwargs):
                    _bind(modal.FunctionCall.get, self, *args, **kwargs)
                    recorder._check_token(client)
                    state = recorder.call_states.get(call_id, "pending")
                    recorder.calls.append({"kind": "get", "call_id": call_id, "state": state})
                    if state == "pending":
                        raise TimeoutError()  # what FunctionCall.get raises while there is no output yet
                    if state == "failed":
                        raise modal.exception.FunctionTimeoutError("timed out")
                    if state == "lost":
                        raise modal.exception.NotFoundError(f"no function call {call_id}")

                def cancel(self, *args, **kwargs):
                    _bind(modal.FunctionCall.cancel, self, *args, **kwargs)
                    recorder._check_token(client)
                    recorder.canceled.append(call_id)

            return Call()

        return from_id

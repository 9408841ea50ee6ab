"""A moto server on loopback, in its own process: the stand-in for DynamoDB, SQS, S3 and Secrets Manager.

moto's server handles requests on threads, but its DynamoDB backend is not thread-safe: a transaction
snapshots whole tables and restores them when a condition fails, undoing other requests' writes. Real
DynamoDB is linearizable per item and per transaction, and Darkroom's guarantees (credits never
overspent, one transition wins) rest on that. So this server runs moto's own WSGI app behind one lock for
DynamoDB requests; SQS long polls and S3 transfers still run concurrently.

With a state directory (`darkroom dev` passes .darkroom/moto) the server keeps its state on disk, so a
restart, clean or SIGKILL, keeps every write it acknowledged:
- DynamoDB, S3 and Secrets Manager writes are appended to a journal before their response is sent (the
  request as received; moto applies them deterministically, so replaying the journal rebuilds the state);
- SQS state is written whole (a pickle of moto's SQS backend, atomically replaced) before a send, delete,
  purge or queue change is answered. Receives and visibility changes are not: after a crash a message that
  was received but not deleted is delivered again, which every handler tolerates (they are idempotent);
- at start the snapshots are loaded, the journal replayed, and both compacted into fresh snapshots.
Writes go to the OS (flushed, not fsynced): they survive the process being killed, not a power cut.
"""

from __future__ import annotations

import argparse
import collections
import copyreg
import functools
import io
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound, listening socket (port 0: one the OS picks). The parent holds it for the server's whole life
    and each server process serves on it, so the port can never be taken by another program between a
    choice and a bind, nor between a crash and a restart (connections wait in its backlog meanwhile)."""
    sock = socket.create_server((host, port), backlog=128)
    sock.set_inheritable(True)
    return sock


class MotoServer:
    """The server process. `state_dir` makes it persistent (see the module docstring); `release_inflight`
    makes messages that were received but not deleted visible again at start, for when their consumers
    died with the previous process."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, state_dir: Path | None = None) -> None:
        self.host = host
        self._socket = listening_socket(host, port or 0)
        self.port: int = self._socket.getsockname()[1]
        self.state_dir = state_dir
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30, *, release_inflight: bool = False) -> str:
        fd = self._socket.fileno()
        command = [sys.executable, "-m", "infra.local.moto_server", "--host", self.host, "--port", str(self.port),
                   "--fd", str(fd), "--parent-pid", str(os.getpid())]
        if self.state_dir is not None:
            command += ["--state-dir", str(self.state_dir)]
        if release_inflight:
            command.append("--release-inflight")
        log = subprocess.DEVNULL
        if self.state_dir is not None:
            # What the restore did, and anything that went wrong, stays readable next to the state.
            self.state_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.state_dir / "server.log", "ab")  # noqa: SIM115 - the child holds it open
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, pass_fds=(fd,))
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.endpoint}/moto-api/", timeout=1).status_code == 200:
                    return self.endpoint
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"moto server did not start on {self.endpoint} within {timeout}s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def reset(self) -> None:
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=10)

    def stop(self) -> None:
        """Stop the server process (start() may run it again, on the same socket)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def close(self) -> None:
        """Stop the server and give its port back."""
        self.stop()
        self._socket.close()


# ---- what a request is
JOURNALED = ("dynamodb", "s3", "secretsmanager", "ssm")
SNAPSHOTTED = ("sqs",)
_READ_PREFIXES = ("Get", "Query", "Scan", "Describe", "List", "BatchGet", "TransactGet")
# SQS calls whose loss after a crash would only mean a redelivery: not worth a snapshot each.
_SQS_UNSAVED = ("ReceiveMessage", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch")


def classify(environ: dict[str, Any], body: bytes | None) -> tuple[str, str, bool]:
    """(service, operation, whether it changes state) for one request."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    method = environ.get("REQUEST_METHOD", "GET")
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return "moto-api", environ.get("PATH_INFO", ""), False
    if target.startswith("DynamoDB"):
        op = target.rsplit(".", 1)[-1]
        return "dynamodb", op, not op.startswith(_READ_PREFIXES)
    for prefix, service in (("secretsmanager.", "secretsmanager"), ("AmazonSSM.", "ssm")):
        if target.startswith(prefix):
            op = target.rsplit(".", 1)[-1]
            return service, op, not op.startswith(_READ_PREFIXES)
    scope = _credential_service(environ.get("HTTP_AUTHORIZATION", ""))
    if target.startswith("AmazonSQS.") or scope == "sqs":
        op = target.rsplit(".", 1)[-1] if target else parse_qs((body or b"").decode(errors="replace")).get(
            "Action", [""])[0]
        return "sqs", op, not op.startswith(_READ_PREFIXES) and op not in _SQS_UNSAVED
    if scope in ("", "s3"):  # presigned POST uploads carry no Authorization header
        return "s3", method, method in ("PUT", "POST", "DELETE")
    return scope, method, False


def _credential_service(authorization: str) -> str:
    # "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/s3/aws4_request, ..."
    marker = "Credential="
    if marker not in authorization:
        return ""
    parts = authorization.split(marker, 1)[1].split(",", 1)[0].split("/")
    return parts[3] if len(parts) > 3 else ""


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so the app still finds it."""
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    data = stream.read(int(length)) if length else (stream.read() if environ.get("wsgi.input_terminated") else b"")
    environ["wsgi.input"] = io.BytesIO(data)
    return data


# ---- pickling moto's backends: their locks are recreated, not saved
def _picklable_factory(factory: Callable[[], Any] | None) -> Callable[[], Any] | None:
    """A default_factory that pickles and makes the same thing. moto builds nested maps with lambdas (SSM's
    tags: `defaultdict(lambda: defaultdict(dict))`), which pickle cannot name: rebuilt from what they make."""
    if factory is None or getattr(factory, "__name__", "") != "<lambda>":
        return factory
    made = factory()
    if isinstance(made, collections.defaultdict):
        return functools.partial(collections.defaultdict, _picklable_factory(made.default_factory))
    if type(made) in (dict, list, set, int, float, str) and not made:
        return type(made)
    raise pickle.PicklingError(f"cannot rebuild a defaultdict factory that makes {made!r}")


def _lock_reducers() -> dict[type, Callable[[Any], tuple]]:
    return {type(threading.Lock()): lambda _: (threading.Lock, ()),
            type(threading.RLock()): lambda _: (threading.RLock, ()),
            threading.Condition: lambda _: (threading.Condition, ()),
            collections.defaultdict: lambda d: (collections.defaultdict, (_picklable_factory(d.default_factory),),
                                                None, None, iter(d.items()))}


_BACKEND_DICT_OWN = {"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"}


def _backends(service: str) -> dict[tuple[str, str], Any]:
    from moto.backends import get_backend

    return {(account, region): backend for account, region, backend in get_backend(service).iter_backends()}


def _shared(service: str) -> dict[str, Any]:
    """State moto keeps beside the per-account backends (S3's bucket name → account registry)."""
    from moto.backends import get_backend

    return {k: v for k, v in vars(get_backend(service)).items() if k not in _BACKEND_DICT_OWN}


def _dump(obj: Any) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, **_lock_reducers()}
    pickler.dump(obj)
    return buffer.getvalue()


class StateStore:
    """The state directory: one snapshot per service and the journal of writes since the last compaction."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.dir / "journal.pickle"
        self._journal_lock = threading.Lock()
        self._journal = open(self.journal_path, "ab")  # noqa: SIM115 - lives as long as the server
        self._snapshot_lock = threading.Lock()
        self._changes = 0  # SQS writes answered so far
        self._saved = 0  # SQS writes covered by the snapshot on disk

    def snapshot_path(self, service: str) -> Path:
        return self.dir / f"{service}.pickle"

    # -- writes
    def journal(self, environ: dict[str, Any], body: bytes) -> None:
        headers = {k: v for k, v in environ.items() if k.startswith("HTTP_") or k in ("CONTENT_TYPE",)}
        record = (environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", ""),
                  headers, body)
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        with self._journal_lock:
            self._journal.write(data)
            self._journal.flush()

    def save(self, service: str) -> None:
        """Write `service`'s whole state, atomically. Concurrent callers share one write (group commit)."""
        with self._snapshot_lock:
            self._changes += 1
            wanted = self._changes
        with self._snapshot_lock:
            if self._saved >= wanted:
                return  # a snapshot taken after our change already covers it
            covered = self._changes
            self._write_snapshot(service)
            self._saved = covered

    def _write_snapshot(self, service: str) -> None:
        from moto import __version__ as moto_version

        for _ in range(10):
            try:
                data = _dump({"moto": moto_version, "backends": _backends(service), "shared": _shared(service)})
                break
            except RuntimeError:  # a concurrent receive changed a dict mid-pickle: take it again
                time.sleep(0.001)
        else:
            raise RuntimeError(f"could not snapshot {service}")
        tmp = self.snapshot_path(service).with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.snapshot_path(service))

    def wipe(self) -> None:
        """/moto-api/reset: the persisted state goes too."""
        with self._journal_lock, self._snapshot_lock:
            self._journal.truncate(0)
            for service in (*JOURNALED, *SNAPSHOTTED):
                self.snapshot_path(service).unlink(missing_ok=True)

    # -- start
    def restore(self, app: Callable[..., Iterable[bytes]], *, release_inflight: bool) -> dict[str, int]:
        """Load the snapshots, replay the journal through `app`, compact. Returns counts for the log."""
        from moto.backends import get_backend

        counts = {"services": 0, "replayed": 0, "failed": 0, "released": 0}
        for service in (*JOURNALED, *SNAPSHOTTED):
            path = self.snapshot_path(service)
            if not path.exists():
                continue
            try:
                # A snapshot from another moto version may still load; if it does not, it is kept aside.
                saved = pickle.loads(path.read_bytes())
                live = get_backend(service)
                for (account, region), backend in saved["backends"].items():
                    # Into the live backend object, not a new one: moto's responses may hold the object itself.
                    target = live[account][region]
                    target.__dict__.clear()
                    target.__dict__.update(backend.__dict__)
                for name, value in saved.get("shared", {}).items():
                    setattr(live, name, value)
                counts["services"] += 1
            except Exception as exc:  # noqa: BLE001 - keep the unreadable file for the user, start without it
                aside = path.with_suffix(f".unreadable-{int(time.time())}")
                os.replace(path, aside)
                print(f"moto state: {path.name} could not be loaded ({exc!r}); kept as {aside.name}",
                      file=sys.stderr)
        for record in self._records():
            status = _replay(app, record)
            counts["replayed" if status < 400 else "failed"] += 1
        if release_inflight:
            counts["released"] = _release_inflight()
        self.compact()
        return counts

    def _records(self) -> Iterable[tuple]:
        with open(self.journal_path, "rb") as journal:
            while True:
                try:
                    yield pickle.load(journal)
                except EOFError:
                    return
                except (pickle.UnpicklingError, ValueError, TypeError, AttributeError):
                    return  # a record cut short by a kill mid-write: its response was never sent

    def compact(self) -> None:
        """Everything into snapshots, journal emptied. Run before serving, so nothing races it."""
        for service in (*JOURNALED, *SNAPSHOTTED):
            self._write_snapshot(service)
        with self._journal_lock:
            self._journal.truncate(0)
            self._journal.seek(0)


def _replay(app: Callable[..., Iterable[bytes]], record: tuple) -> int:
    from werkzeug.test import EnvironBuilder

    method, path, query, headers, body = record
    builder = EnvironBuilder(method=method, path=path, query_string=query, data=body,
                             headers={k[5:].replace("_", "-").title(): v for k, v in headers.items()
                                      if k.startswith("HTTP_") and k not in ("HTTP_CONTENT_LENGTH",
                                                                              "HTTP_TRANSFER_ENCODING")},
                             content_type=headers.get("CONTENT_TYPE"))
    environ = builder.get_environ()
    status: list[int] = [0]

    def start_response(line: str, _headers: list, _exc: Any = None) -> Callable[[bytes], None]:
        status[0] = int(line.split(" ", 1)[0])
        return lambda _: None

    for _ in app(environ, start_response):
        pass
    return status[0]


def _release_inflight() -> int:
    """Messages received by consumers that died with the previous process: visible again now."""
    released = 0
    from moto.backends import get_backend

    for _, _, backend in get_backend("sqs").iter_backends():
        for queue in backend.queues.values():
            for message in queue._messages:
                if not message.visible:
                    message.visible_at = 0
                    released += 1
    return released


# ---- the WSGI app
def serve_app(app: Callable[..., Iterable[bytes]], store: StateStore | None) -> Callable[..., Iterable[bytes]]:
    """WSGI middleware: one DynamoDB request at a time (the response fully produced inside the lock), and,
    with a store, every acknowledged write made durable before its response leaves."""
    dynamodb_lock = threading.Lock()

    def run(environ: dict[str, Any], start_response: Callable[..., Any], service: str, body: bytes | None,
            persist: bool) -> Iterable[bytes]:
        captured: list[Any] = []
        written: list[bytes] = []

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
            captured[:] = [status, headers, exc_info]
            return written.append

        request = dict(environ)  # as received: the app may consume or change what it is given
        content = b"".join([*app(environ, capture)])
        if persist and store is not None and int(captured[0].split(" ", 1)[0]) < 400:
            if service in JOURNALED:
                store.journal(request, body or b"")
            else:
                store.save(service)
        start_response(*captured)
        return [b"".join(written) + content]

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = _read_body(environ) if store is not None and environ.get("REQUEST_METHOD") in (
            "POST", "PUT", "DELETE") else None
        service, op, writes = classify(environ, body)
        if store is not None and service == "moto-api" and op.startswith("/moto-api/reset"):
            store.wipe()
        persist = store is not None and writes
        if service == "dynamodb":
            with dynamodb_lock:
                return run(environ, start_response, service, body, persist)
        if persist:
            return run(environ, start_response, service, body, persist)
        return app(environ, start_response)

    return wrapped


def serialize_dynamodb(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The middleware without persistence (what tests' throwaway servers run)."""
    return serve_app(app, None)


def _exit_with_parent(parent_pid: int) -> None:
    # `darkroom dev` killed (even by SIGKILL) must not leave this server holding its port: every
    # acknowledged write is already on disk, so there is nothing to save on the way out.
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def _transactions_without_table_copies() -> None:
    """moto backs up every table a TransactWriteItems touches with a deepcopy of the whole table, so each
    transaction costs time in proportion to the table's size (a jobs table of a few hundred jobs: tens of
    ms, under the DynamoDB lock that serializes every request). Back up only the items the transaction
    names, and put exactly those back when it is canceled: the same all-or-nothing result."""
    import copy

    import moto.dynamodb.models as dynamodb
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    stock = dynamodb.DynamoDBBackend.transact_write_items
    real_deepcopy = copy.deepcopy

    def keys_of(backend: Any, op_type: str, op: dict[str, Any]) -> tuple[Table, DynamoType, DynamoType | None]:
        table = backend.get_table(op["TableName"])
        key = op["Item"] if op_type == "Put" else op["Key"]
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.has_range_key else None
        return table, hash_key, range_key

    def backups(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Table, Any, Any, Any]]:
        saved = []
        for entry in transact_items:
            try:
                op_type, op = next(iter(entry.items()))
                table, hash_key, range_key = keys_of(backend, op_type, op)
            except Exception:  # noqa: BLE001, S112 - malformed: moto itself refuses it, before or during the writes
                continue
            saved.append((table, hash_key, range_key, real_deepcopy(table.get_item(hash_key, range_key))))
        return saved

    def restore(saved: list[tuple[Table, Any, Any, Any]]) -> None:
        for table, hash_key, range_key, original in reversed(saved):
            if range_key is None:
                if original is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = original
            elif original is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = original

    class TablesKept:
        """copy as moto's transaction sees it: tables are not copied (the items are backed up instead)."""

        @staticmethod
        def deepcopy(value: Any, *args: Any) -> Any:
            return value if isinstance(value, Table) else real_deepcopy(value, *args)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = backups(self, transact_items)
        # DynamoDB requests run one at a time (serve_app's lock), so swapping the module's name is safe.
        dynamodb.copy = TablesKept
        try:
            return stock(self, transact_items)
        except Exception:
            restore(saved)
            raise
        finally:
            dynamodb.copy = copy

    dynamodb.DynamoDBBackend.transact_write_items = transact_write_items


def _attribute_values_serialized_directly() -> None:
    """moto's JSON serializer walks every DynamoDB AttributeValue against all ten of its members (S, N, B,
    SS, ..., M, L), and looks each one up through six alias providers: about 0.3 ms per attribute, so a
    GetItem of a job record (dozens of attributes, nested maps) spent ~10 ms serializing, under the
    DynamoDB lock. An AttributeValue here is already the wire dict (moto's dynamo_to_dict), so only the
    members it has are serialized, each by moto's own code: the same output (tests compare the two)."""
    from moto.core.serialize import BaseJSONSerializer

    stock = BaseJSONSerializer._serialize_type_structure

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name != "AttributeValue" or type(value) is not dict:
            return stock(self, serialized, value, shape, key)
        wrapper: Any = self.MAP_TYPE() if key else serialized
        for member_key, member_shape in shape.members.items():
            member_value = value.get(member_key)
            if member_value is not None:
                member_shape.parent = shape
                self._serialize(wrapper, member_value, member_shape, member_key)
        if key:
            self._default_serialize(serialized, wrapper, shape, key)
        return None

    BaseJSONSerializer._serialize_type_structure = _serialize_type_structure


def _oidc_client_ids() -> None:
    """IAM's AddClientIDToOpenIDConnectProvider, which moto 5 lacks: `darkroom deploy` adds Modal's audience to
    an OIDC provider that another stack made without it, and its tests run against this server. The semantics
    are IAM's: the id is appended unless present (idempotent), and an unknown provider is NoSuchEntity."""
    from moto.core.responses import EmptyResult
    from moto.iam.responses import IamResponse

    def add_client_id_to_open_id_connect_provider(self: Any) -> Any:
        provider = self.backend.get_open_id_connect_provider(self._get_param("OpenIDConnectProviderArn"))
        client_id = self._get_param("ClientID")
        if client_id not in provider.client_id_list:
            provider.client_id_list.append(client_id)
        return EmptyResult()

    IamResponse.add_client_id_to_open_id_connect_provider = add_client_id_to_open_id_connect_provider


def _lambda_account_settings() -> None:
    """Lambda's GetAccountSettings, which moto 5 lacks: `darkroom deploy`'s preflight reads the unreserved
    concurrency before reserving some for the functions that finish jobs, and its tests run against this server.
    The limit is moto's own (MOTO_LAMBDA_CONCURRENCY_QUOTA, 1,000 as AWS's default when unset), less what the
    functions reserve."""
    import moto.awslambda.urls as lambda_urls
    from moto.awslambda.responses import LambdaResponse

    def get_account_settings(self: Any) -> Any:
        limit = int(os.environ.get("MOTO_LAMBDA_CONCURRENCY_QUOTA", "1000"))
        reserved = sum(int(fn.reserved_concurrency or 0) for fn in self.backend.list_functions())
        return 200, {}, json.dumps({"AccountLimit": {
            "TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
            "ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": limit - reserved},
            "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(self.backend.list_functions())}})

    LambdaResponse.get_account_settings = get_account_settings
    lambda_urls.url_paths.setdefault(r"{0}/(?P<api_version>[^/]+)/account-settings/?$", LambdaResponse.dispatch)


def _dispatcher() -> Any:
    """moto's host -> backend dispatcher, with its per-request lookups cached. Stock moto lists its package
    directory (~200 stat calls) and tries every backend's URL patterns on each request, under one lock:
    about half the server's time for a GetItem. The listing never changes while the server runs, and the
    backend is a pure function of the host it infers, so both are computed once."""
    import moto.backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    _transactions_without_table_copies()
    _attribute_values_serialized_directly()
    _oidc_client_ids()
    _lambda_account_settings()
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules

    class CachedDispatcher(DomainDispatcherApplication):
        def __init__(self, create_app: Callable[..., Any]) -> None:
            super().__init__(create_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return CachedDispatcher(create_backend_app)


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(description="moto server with linearizable DynamoDB")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket (bound to --port)")
    parser.add_argument("--state-dir", type=Path, help="keep the state here across restarts")
    parser.add_argument("--release-inflight", action="store_true",
                        help="make received, undeleted messages visible again at start")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if args.parent_pid:
        # Ctrl-C reaches the whole process group, this server included. The stack still writes here while it
        # stops (pollers finishing a batch), and a dead server leaves those calls waiting in the socket's
        # backlog, which the parent holds: so the parent stops this server itself, last (LocalStack.stop).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    inner = _dispatcher()
    store = StateStore(args.state_dir) if args.state_dir else None
    if store is not None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # server.log keeps events, not every request
        started = time.monotonic()
        counts = store.restore(inner, release_inflight=args.release_inflight)
        failed = f" ({counts['failed']} failed)" if counts["failed"] else ""
        print(f"moto state: {counts['services']} snapshots loaded, {counts['replayed']} journaled writes replayed"
              f"{failed}, {counts['released']} in-flight messages released, in {time.monotonic() - started:.2f}s",
              file=sys.stderr)
    server = make_server(args.host, args.port, serve_app(inner, store), threaded=True,
                         request_handler=MotoRequestHandler, fd=args.fd)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""Workspace isolation, route by route, over the routes template.yaml declares.

Every route with a path parameter is either exercised here (another workspace's id → 404 in the route's
dialect, nothing changed; the owner's own request → not 404, so the case really names a resource) or listed
as exempt with the reason. A route added to the template with a `{…}` parameter and neither fails
`test_every_route_with_a_path_parameter_is_in_the_matrix`.

Admin routes (`/api/admin/workspaces/{workspace_id}/…`, `?workspace_id=` on the key routes) act on the
workspace they name: the `admin` scope is the operator's (README "Guarantees": admin keys are operator keys).
A key without it gets 403 and changes nothing; that is the isolation they have.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from functions.core import credits
from functions.core.jobs import JobStore
from functions.core.keys import DEFAULT_SCOPES, KeyStore
from functions.dialects import FAL, NATIVE, REPLICATE, dialect_for_path
from infra.local.template import http_routes, load

ROUTES = [(method, path) for method, path, _ in http_routes(load())]
PARAM_ROUTES = sorted({r for r in ROUTES if "{" in r[1]})

# Public or catalog routes: their parameter names nothing a workspace owns.
EXEMPT = {
    ("GET", "/shared/media/{share_id}"): "public by design for jobs made public (share id = job id + secret "
                                         "token); test_share_pages_are_reachable_only_when_shared covers it",
    ("GET", "/shared/media/{share_id}/{file}"): "a shared page's files, under the same share id; "
                                                "test_unsharing_ends_the_page_and_its_files_at_once covers it",
    ("GET", "/api/tools/{slug}"): "the tool catalog: the same for every workspace",
    ("GET", "/v1/models/{model}"): "the model catalog: the same for every workspace",
    **{route: "Replicate's model catalog (owner/name is a catalog alias): the same for every workspace; the "
              "prediction a create makes is the caller's"
       for route in (("GET", "/v1/models/{owner}/{name}"), ("GET", "/v1/models/{owner}/{name}/versions/{version}"),
                     ("POST", "/v1/models/{owner}/{name}/predictions"),
                     ("POST", "/v1/deployments/{owner}/{name}/predictions"))},
    ("GET", "/console/{file}"): "the web console's static files, public and the same for every workspace "
                                "(tests/e2e/test_console.py)",
    ("GET", "/media/{workspace_id}/{kind}/{item_id}/{name}"): "media links: the signature covers the whole key, "
                                                              "workspace included; "
                                                              "test_a_media_link_opens_only_its_own_file covers it",
    **{("POST", f"/fal/{host}/{{owner}}/{{app}}{path}"): "fal's endpoint id names a catalog model (the same for "
                                                         "every workspace); the request it makes is the caller's"
       for host in ("queue", "run") for path in ("", "/{path+}")},
}


@dataclass
class Owner:
    """Workspace B and what it owns: a finished job with a webhook, a spare key, a credit balance."""

    tenant: Any
    job_id: str
    spare_key_id: str
    spare_key: str
    lora_id: str | None = None  # set by the LoRA cases
    file_id: str | None = None  # set by the Replicate file cases


@dataclass
class Case:
    """How to aim one route at B's resource. `ids` fills the path; `body` is the JSON to send; `unchanged`
    proves B's state survived the intruders; `owner_status` is what B itself gets. `member` is what a key of
    another workspace without `admin` gets; `other_admin` what an admin key of another workspace gets (None:
    the route is an operator's and acts on the workspace it names, see the admin test below)."""

    ids: Callable[[Owner], dict[str, str]]
    owner_status: tuple[int, ...]
    unchanged: Callable[[Any, Owner], None]
    body: dict | None = None
    member: int = 404
    other_admin: int | None = 404


def _job_untouched(world, owner: Owner) -> None:
    job = JobStore().get(owner.job_id)
    assert job.status.value == "succeeded" and job.workspace_id == owner.tenant.workspace_id
    assert world.messages("WebhooksQueue") == []  # no redelivery was queued


def _job_not_shared(world, owner: Owner) -> None:
    _job_untouched(world, owner)
    # B's own call (last) shares it; until then the intruders' calls must not have.
    assert JobStore().get(owner.job_id).share_url is None


def _spare_key_works(world, owner: Owner) -> None:
    assert KeyStore().lookup(owner.spare_key) is not None


def _credits_untouched(world, owner: Owner) -> None:
    assert credits.balance(owner.tenant.workspace_id) == owner.tenant.credits_before


def _policy_untouched(world, owner: Owner) -> None:
    from functions.core import moderation

    assert moderation.workspace_policy(owner.tenant.workspace_id, fresh=True) == moderation.WorkspacePolicy()


def _a_lora(owner: Owner) -> dict[str, str]:
    """A LoRA of B's (registered through the core, against the fixture signatures of test_lora_registry)."""
    from unittest import mock

    from functions.core import lora_files, loras
    from tests.integration.test_lora_registry import LORA, SIGNATURES

    with mock.patch.object(lora_files, "_signatures", lambda: SIGNATURES):
        owner.lora_id = loras.register_bytes(owner.tenant.workspace_id, LORA, "a.safetensors").id
    return {"id": owner.lora_id}


def _lora_untouched(world, owner: Owner) -> None:
    from functions.core import loras

    assert loras.resolve(owner.tenant.workspace_id, owner.lora_id) is not None


def _fal_request(owner: Owner) -> dict[str, str]:
    """B's job as fal's queue names it (any endpoint id of its app: the request id alone decides)."""
    return {"owner": "fal-ai", "app": "flux", "id": owner.job_id}


def _a_file(owner: Owner) -> dict[str, str]:
    """A file of B's, as POST /v1/files stores it."""
    from functions.api.replicate import store_file

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    owner.file_id = store_file(owner.tenant.workspace_id, "b.png", "image/png", buf.getvalue(), {})["id"]
    return {"id": owner.file_id}


def _file_untouched(world, owner: Owner) -> None:
    from functions.api.replicate import _file_record

    assert _file_record(owner.tenant.workspace_id, owner.file_id) is not None


MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/v1/predictions/{id}"): Case(lambda o: {"id": o.job_id}, (200,), _job_untouched),
    ("POST", "/v1/predictions/{id}/cancel"): Case(lambda o: {"id": o.job_id}, (200,), _job_untouched),
    ("GET", "/v1/predictions/{id}/stream"): Case(lambda o: {"id": o.job_id}, (200,), _job_untouched),
    ("GET", "/v1/files/{id}"): Case(_a_file, (200,), _file_untouched),
    ("DELETE", "/v1/files/{id}"): Case(_a_file, (204,), _file_untouched),
    ("GET", "/fal/queue/{owner}/{app}/requests/{id}/status"): Case(_fal_request, (200,), _job_untouched),
    ("GET", "/fal/queue/{owner}/{app}/requests/{id}/status/stream"): Case(_fal_request, (200,), _job_untouched),
    ("GET", "/fal/queue/{owner}/{app}/requests/{id}"): Case(_fal_request, (200,), _job_untouched),
    ("PUT", "/fal/queue/{owner}/{app}/requests/{id}/cancel"): Case(_fal_request, (400,), _job_untouched),
    ("GET", "/api/loras/{id}"): Case(_a_lora, (200,), _lora_untouched),
    ("DELETE", "/api/loras/{id}"): Case(_a_lora, (200,), _lora_untouched),
    ("GET", "/api/generations/{id}"): Case(lambda o: {"id": o.job_id}, (200,), _job_untouched),
    ("POST", "/api/generations/{id}/cancel"): Case(lambda o: {"id": o.job_id}, (409,), _job_untouched),
    ("POST", "/api/generations/{id}/share"): Case(lambda o: {"id": o.job_id}, (200,), _job_not_shared,
                                                 body={"public": True}),
    ("GET", "/api/generations/{id}/deliveries"): Case(lambda o: {"id": o.job_id}, (200,), _job_untouched),
    ("POST", "/api/generations/{id}/deliveries/redeliver"): Case(lambda o: {"id": o.job_id}, (202,),
                                                                 _job_untouched, body={}),
    ("DELETE", "/api/keys/{key_id}"): Case(lambda o: {"key_id": o.spare_key_id}, (200,), _spare_key_works,
                                           member=403),
    ("POST", "/api/admin/workspaces/{workspace_id}/credits"): Case(
        lambda o: {"workspace_id": o.tenant.workspace_id}, (200,), _credits_untouched, body={"amount": 500},
        member=403, other_admin=None),
    ("GET", "/api/admin/workspaces/{workspace_id}/usage"): Case(
        lambda o: {"workspace_id": o.tenant.workspace_id}, (200,), _credits_untouched, member=403,
        other_admin=None),
    ("GET", "/api/admin/workspaces/{workspace_id}/moderation"): Case(
        lambda o: {"workspace_id": o.tenant.workspace_id}, (200,), _policy_untouched, member=403,
        other_admin=None),
    ("PUT", "/api/admin/workspaces/{workspace_id}/moderation"): Case(
        lambda o: {"workspace_id": o.tenant.workspace_id}, (200,), _policy_untouched,
        body={"max_level": 6, "allow_checker_off": True}, member=403, other_admin=None),
}


def test_every_route_with_a_path_parameter_is_in_the_matrix():
    assert PARAM_ROUTES, "template.yaml declares no routes with path parameters?"
    missing = [r for r in PARAM_ROUTES if r not in MATRIX and r not in EXEMPT]
    assert not missing, f"routes with a path parameter and no isolation case (add one to MATRIX or EXEMPT): {missing}"
    stale = [r for r in (*MATRIX, *EXEMPT) if r not in PARAM_ROUTES]
    assert not stale, f"matrix entries for routes the template no longer has: {stale}"
    assert not set(MATRIX) & set(EXEMPT)


def _finished_job(api, tenant, drain, **input_fields) -> str:
    body = {"tool": "create-image", "webhook": "http://127.0.0.1:9/hook",
            "input": {"prompt": "a red lighthouse", "size": "256x256", **input_fields}}
    resp = api.post("/api/run", json=body, headers=tenant.headers)
    assert resp.status_code == 202, resp.json
    drain("DispatchFunction", "JobsQueue")
    drain("CompleteFunction", "ResultsQueue")
    return resp.json["id"]


_OWNERS: dict[str, tuple[Any, str]] = {}


@pytest.fixture
def owner(world, api, new_tenant, dispatcher, drain) -> Owner:
    # Workspace B and its finished job are made once per moto server (its tables outlive each test); the
    # cases only read them, or change what the next test does not look at.
    if world.endpoint not in _OWNERS:
        b = new_tenant()
        _OWNERS[world.endpoint] = (b, _finished_job(api, b, drain))
    b, job_id = _OWNERS[world.endpoint]
    assert JobStore().get(job_id).status.value == "succeeded"
    spare_key, record = KeyStore().create(b.workspace_id, "spare")
    world.messages("WebhooksQueue")  # the completion event; the matrix checks nothing else is queued
    b.credits_before = credits.balance(b.workspace_id)
    return Owner(b, job_id, record.key_id, spare_key)


def _call(api, method: str, path: str, headers: dict, body: dict | None):
    return api.open(path, method=method, headers=headers, json=body) if body is not None else \
        api.open(path, method=method, headers=headers)


# The keys of each dialect's error body, for the routes that take an id.
ERROR_KEYS = {NATIVE: {"message", "errors"}, FAL: {"detail", "message"},
              REPLICATE: {"type", "title", "status", "detail", "code"}}


def _path(template_path: str, ids: dict[str, str]) -> str:
    path = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template_path)
    assert "{" not in path
    return path


@pytest.mark.parametrize("route", [r for r in PARAM_ROUTES if r in MATRIX], ids=" ".join)
def test_another_workspaces_id_is_not_found_or_forbidden(route, world, api, new_tenant, owner):
    method, template_path = route
    case = MATRIX[route]
    path = _path(template_path, case.ids(owner))
    shape = ERROR_KEYS[dialect_for_path(path)]  # the error shape of the route's dialect, checked below

    # A workspace key with every scope but admin: another workspace's id is indistinguishable from none.
    intruder = new_tenant(scopes=list(DEFAULT_SCOPES))
    resp = _call(api, method, path, intruder.headers, case.body)
    assert resp.status_code == case.member, (path, resp.status_code, resp.get_data(as_text=True))
    assert set(resp.json) == shape, resp.json
    case.unchanged(world, owner)

    if case.other_admin is not None:
        # Even an admin key of another workspace: ids are looked up inside the caller's workspace.
        admin = new_tenant()
        resp = _call(api, method, path, admin.headers, case.body)
        assert resp.status_code == case.other_admin, (path, resp.status_code, resp.get_data(as_text=True))
        assert set(resp.json) == shape, resp.json
        case.unchanged(world, owner)

    # The owner's own call is not a 404: the case names a real resource.
    mine = _call(api, method, path, owner.tenant.headers, case.body)
    assert mine.status_code in case.owner_status, (path, mine.status_code, mine.get_data(as_text=True))


def test_admin_routes_act_on_the_workspace_they_name_for_operator_keys_only(world, api, new_tenant, owner):
    """What isolation means for admin routes: a workspace key without `admin` gets 403; an `admin` key is an
    operator key and acts on any workspace it names (by path, or `?workspace_id=` / `workspace_id` on keys)."""
    b = owner.tenant
    operator = new_tenant()  # ALL_SCOPES: admin included
    before = credits.balance(b.workspace_id)
    resp = api.post(f"/api/admin/workspaces/{b.workspace_id}/credits", json={"amount": 5}, headers=operator.headers)
    assert resp.status_code == 200 and credits.balance(b.workspace_id) == before + 5
    assert api.get(f"/api/admin/workspaces/{b.workspace_id}/usage", headers=operator.headers).status_code == 200
    listed = api.get(f"/api/keys?workspace_id={b.workspace_id}", headers=operator.headers).json["data"]
    assert owner.spare_key_id in {k["key_id"] for k in listed}
    assert all("key_hash" not in k for k in listed)
    # Without ?workspace_id= the operator's own workspace is meant: B's key is not found there.
    assert api.delete(f"/api/keys/{owner.spare_key_id}", headers=operator.headers).status_code == 404
    assert KeyStore().lookup(owner.spare_key) is not None
    # Non-admin keys: 403 on every admin route and on key management, whatever workspace they name.
    member = new_tenant(scopes=list(DEFAULT_SCOPES))
    member_credits = credits.balance(member.workspace_id)
    for method, path, body in [
        ("GET", f"/api/keys?workspace_id={b.workspace_id}", None),
        ("GET", "/api/keys", None),
        ("POST", "/api/keys", {"name": "x", "workspace_id": b.workspace_id}),
        ("DELETE", f"/api/keys/{owner.spare_key_id}?workspace_id={b.workspace_id}", None),
        ("POST", "/api/admin/workspaces", {"id": "ws-new-by-member"}),
        ("POST", f"/api/admin/workspaces/{member.workspace_id}/credits", {"amount": 1000}),
        ("PUT", f"/api/admin/workspaces/{member.workspace_id}/moderation", {"allow_checker_off": True}),
    ]:
        resp = _call(api, method, path, member.headers, body)
        assert resp.status_code == 403, (method, path, resp.status_code)
    assert KeyStore().lookup(owner.spare_key) is not None
    assert credits.balance(member.workspace_id) == member_credits


# Every filter the native listing takes (functions/dialects/native.py STATUS_FILTER), and none.
LIST_FILTERS = ["", "?status=pending", "?status=processing", "?status=success", "?status=error",
                "?status=canceled", "?limit=100", "?offset=0&limit=1"]


def test_another_workspaces_jobs_never_appear_in_a_listing(world, api, new_tenant, dispatcher, drain):
    a, b = new_tenant(), new_tenant()
    b_jobs = {_finished_job(api, b, drain)}
    queued = api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "waits"}}, headers=b.headers)
    b_jobs.add(queued.json["id"])  # still queued
    canceled = api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "canceled"}}, headers=b.headers)
    b_jobs.add(canceled.json["id"])
    assert api.post(f"/api/generations/{canceled.json['id']}/cancel", headers=b.headers).status_code == 200
    a_job = api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "mine"}}, headers=a.headers).json["id"]

    seen_by_b: set[str] = set()
    for query in LIST_FILTERS:
        listed = api.get(f"/api/generations{query}", headers=a.headers)
        assert listed.status_code == 200, (query, listed.json)
        ids = {g["id"] for g in listed.json["data"]}
        assert not ids & b_jobs, query
        assert ids <= {a_job} and listed.json["pagination"]["total"] <= 1, query
        seen_by_b |= {g["id"] for g in api.get(f"/api/generations{query}", headers=b.headers).json["data"]}
    assert seen_by_b == b_jobs  # the filters do find B's jobs for B
    # The other listings are per caller too: keys and the account.
    key_workspaces = {k["workspace_id"] for k in api.get("/api/keys", headers=a.headers).json["data"]}
    assert key_workspaces == {a.workspace_id}
    assert api.get("/api/account", headers=a.headers).json["workspace"]["id"] == a.workspace_id


def test_share_pages_are_reachable_only_when_shared(world, api, new_tenant, dispatcher, drain):
    b = new_tenant()
    public = JobStore().get(_finished_job(api, b, drain, make_public=True))
    private_id = api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "private"}},
                          headers=b.headers).json["id"]
    private = JobStore().get(private_id)
    share_path = urlsplit(public.share_url).path
    assert api.get(share_path).status_code == 200  # no key: public by design
    token = share_path.rsplit("-", 1)[1]
    for path in (f"/shared/media/{private.id}-{token}",  # another job with the public job's token
                 f"/shared/media/{private.id}-guess", f"/shared/media/{private.id}",
                 "/shared/media/000000000000000000000000-unknown", "/shared/media/unknown",
                 f"/shared/media/{public.id}-{token[:-1]}"):
        resp = api.get(path)
        assert resp.status_code == 404, path
        assert set(resp.json) == {"message", "errors"}
    # A key of another workspace does not open the private job either way.
    a = new_tenant()
    assert api.get(f"/api/generations/{private.id}", headers=a.headers).status_code == 404


def test_a_media_link_opens_only_its_own_file(world, api, new_tenant, dispatcher, drain):
    a, b = new_tenant(), new_tenant()
    a_job = JobStore().get(_finished_job(api, a, drain))
    b_link = urlsplit(api.get(f"/api/generations/{_finished_job(api, b, drain)}", headers=b.headers).json["output"])
    assert api.get(f"{b_link.path}?{b_link.query}").status_code == 200
    # B's signature on A's file: the workspace, or the job, or both swapped in the path.
    for path in (b_link.path.replace(b.workspace_id, a.workspace_id),
                 re.sub(r"/generations/[^/]+/", f"/generations/{a_job.id}/", b_link.path),
                 f"/media/{a_job.outputs[0].key}"):
        resp = api.get(f"{path}?{b_link.query}", headers=a.headers)  # a key changes nothing: the link decides
        assert resp.status_code == 403, path
        assert resp.json["errors"][0]["field"] == "signature"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_another_workspaces_upload_reference_is_never_read(world, api, new_tenant, dispatcher, drain):
    """Refused at submit, naming the field: the reference resolves inside the caller's workspace, where no such
    upload exists (before, the job was accepted, paid for, and failed in the worker)."""
    b, a = new_tenant(), new_tenant()
    upload = api.post("/files", data={"file": (io.BytesIO(_png()), "b.png", "image/png")}, headers=b.headers,
                      content_type="multipart/form-data").json
    body = {"tool": "edit-image", "input": {"prompt": "steal it", "image_urls": [upload["reference"]],
                                            "size": "256x256"}}
    refused = api.post("/api/run", json=body, headers=a.headers)
    assert refused.status_code == 400, refused.json
    assert refused.json["errors"][0]["field"] == "input.image_urls.0"
    assert "not an upload of this workspace" in refused.json["errors"][0]["message"]
    assert JobStore().list_for_workspace(a.workspace_id)[1] == 0
    assert api.post("/api/run", json=body, headers=b.headers).status_code == 202  # the owner's own reference
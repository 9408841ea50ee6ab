"""Every route's scope comes from one table (functions/api/scopes.py), and the whole matrix holds: each route,
driven with a key of each single scope, is a 403 exactly when that scope is not the one it needs (admin keys
pass everywhere). Before: an image:generate-only key could cancel any job of its workspace (and read its state
from the 409), and a media:write key could read the webhook secret and rotate it with no grace.
"""

from __future__ import annotations

import pytest

from functions.api import scopes
from functions.core.keys import ALL_SCOPES
from infra.local.template import http_routes, load

ROUTES = [f"{method} {path}" for method, path, _ in http_routes(load())]
IMAGE = {"prompt": "a lighthouse", "size": "256x256"}
BODIES = {
    "POST /api/run": {"tool": "create-image", "input": IMAGE},
    "POST /api/generate": {"model": "flux-schnell", "input": IMAGE},
    "POST /v1/images/generations": {"model": "flux-schnell", **IMAGE, "n": 1},
    "POST /api/v1/images/generate": {"model": "flux-schnell", **IMAGE},
    "POST /api/v1/videos/generate": {"model": "ltx-video", "prompt": "waves", "resolution": "256p"},
    "POST /api/prompts/enhance": {"model": "flux-schnell", "prompt": "a lighthouse"},
    "POST /api/keys": {"name": "made-in-the-matrix", "scopes": ["media:read"]},
    "POST /api/admin/workspaces": {"id": "ws-matrix-made"},
    "POST /api/admin/workspaces/{workspace_id}/credits": {"amount": 1},
    "PUT /api/admin/workspaces/{workspace_id}/moderation": {"max_level": 3},
    "POST /api/generations/{id}/share": {"public": False},
    "POST /api/webhooks/secret/rotate": {"grace_seconds": 3600},
    "POST /api/uploads": {"filename": "a.png", "content_type": "image/png"},
    **{f"POST /fal/{host}/{{owner}}/{{app}}{path}": {"prompt": "a lighthouse",
                                                     "image_size": {"width": 256, "height": 256}}
       for host in ("queue", "run") for path in ("", "/{path+}")},
    **{f"POST {route}": {"input": {"prompt": "a lighthouse", "width": 256, "height": 256}}
       for route in ("/v1/models/{owner}/{name}/predictions", "/v1/deployments/{owner}/{name}/predictions")},
    "POST /v1/predictions": {"version": "black-forest-labs/flux-schnell", "input": {"prompt": "a lighthouse"}},
}
# Routes whose parameters name a model rather than a resource (fal's endpoint ids): the concrete path to drive.
CONCRETE = {
    "POST /fal/queue/{owner}/{app}": "/fal/queue/darkroom/flux-schnell",
    "POST /fal/queue/{owner}/{app}/{path+}": "/fal/queue/fal-ai/flux/schnell",
    "POST /fal/run/{owner}/{app}": "/fal/run/darkroom/flux-schnell",
    "POST /fal/run/{owner}/{app}/{path+}": "/fal/run/fal-ai/flux/schnell",
    # Replicate's owner/name is a model (catalog alias), the version one of its versions.
    "POST /v1/models/{owner}/{name}/predictions": "/v1/models/black-forest-labs/flux-schnell/predictions",
    "POST /v1/deployments/{owner}/{name}/predictions": "/v1/deployments/black-forest-labs/flux-schnell/predictions",
    "GET /v1/models/{owner}/{name}": "/v1/models/black-forest-labs/flux-schnell",
    "GET /v1/models/{owner}/{name}/versions/{version}": "/v1/models/black-forest-labs/flux-schnell/versions/0",
}


def test_every_route_has_exactly_one_scope_in_the_table():
    assert sorted(scopes.ROUTE_SCOPES) == sorted(ROUTES)
    allowed = {scopes.PUBLIC, scopes.ANY, scopes.GENERATE, *ALL_SCOPES}
    assert set(scopes.ROUTE_SCOPES.values()) <= allowed


def needed(route: str) -> set[str]:
    """The single scopes that pass this route (admin passes every route)."""
    scope = scopes.ROUTE_SCOPES[route]
    if scope == scopes.ANY:
        return set(ALL_SCOPES)
    if scope == scopes.GENERATE:
        return {"image:generate", "admin"}  # the bodies above name image models
    return {scope, "admin"}


@pytest.fixture
def short_sync_waits(monkeypatch):
    """Synchronous routes that are allowed would wait for a GPU nobody runs here: a 504 at once will do."""
    from functions.core import settings

    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.2")
    settings.get_settings.cache_clear()
    yield
    settings.get_settings.cache_clear()


@pytest.mark.parametrize("route", [r for r in ROUTES if scopes.ROUTE_SCOPES[r] != scopes.PUBLIC])
def test_each_route_refuses_exactly_the_scopes_it_does_not_name(world, api, new_tenant, route, short_sync_waits):
    owner = new_tenant()  # a job of the workspace for the {id} routes, made with an all-scope key
    job_id = api.post("/api/run", json=BODIES["POST /api/run"], headers=owner.headers).json["id"]
    method, path = route.split(" ", 1)
    concrete = CONCRETE.get(route) or (
        path.replace("{id}", job_id).replace("{owner}/{app}", "fal-ai/flux").replace("{key_id}", "key_missing")
        .replace("{workspace_id}", owner.workspace_id).replace("{model}", "flux-schnell")
                .replace("{slug}", "create-image"))
    from functions.core.keys import KeyStore

    for scope in ALL_SCOPES:
        secret, _ = KeyStore().create(owner.workspace_id, f"only-{scope}", scopes=[scope])
        response = api.open(concrete, method=method, json=BODIES.get(route) if method == "POST" else None,
                            headers={"Authorization": secret})
        refused = response.status_code == 403
        assert refused == (scope not in needed(route)), (route, scope, response.status_code,
                                                         response.get_data(as_text=True)[:200])
        if refused:
            assert "scope" in response.get_data(as_text=True)


def test_a_cancel_without_the_scope_learns_nothing_of_the_job(world, api, new_tenant):
    from functions.core.keys import KeyStore

    owner = new_tenant()
    job_id = api.post("/api/run", json=BODIES["POST /api/run"], headers=owner.headers).json["id"]
    secret, _ = KeyStore().create(owner.workspace_id, "maker", scopes=["image:generate"])
    for target in (job_id, "0" * 24):  # a job that exists, and one that does not: the same answer
        response = api.post(f"/api/generations/{target}/cancel", headers={"Authorization": secret})
        assert response.status_code == 403 and "media:write" in response.json["message"]
        assert "queued" not in response.get_data(as_text=True)

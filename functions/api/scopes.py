"""The scope each route needs: one table, enforced by the auth middleware before any handler reads anything.

Keys are template.yaml's routes ("METHOD /path", ApiFunction's Metadata: Routes); a test holds the two equal and
drives every route with a key of every single scope. `GENERATE` routes need `<type>:generate` for the type of
the model the request names, which only the handler knows: it checks that once the model is resolved. `ANY`
needs a valid key of any scope; `PUBLIC` none (functions/api/auth.py serves those without a key).
"""

from __future__ import annotations

import re
from functools import cache

PUBLIC = "public"
ANY = "any valid key"
GENERATE = "<model type>:generate"

ROUTE_SCOPES: dict[str, str] = {
    # Making media: the model's type decides (image:generate, video:generate).
    "POST /api/run": GENERATE,
    "POST /api/generate": GENERATE,
    "POST /v1/images/generations": "image:generate",
    "POST /v1/images/edits": "image:generate",
    "POST /v1/images/variations": "image:generate",
    "POST /api/v1/images/generate": "image:generate",
    "POST /api/v1/videos/generate": "video:generate",
    # fal's queue and run hosts ({path+}: a subpath of one or more segments, fal-ai/wan/v2.2-5b/text-to-video).
    "POST /fal/queue/{owner}/{app}": GENERATE,
    "POST /fal/queue/{owner}/{app}/{path+}": GENERATE,
    "POST /fal/run/{owner}/{app}": GENERATE,
    "POST /fal/run/{owner}/{app}/{path+}": GENERATE,
    # @fal-ai/client's proxyUrl: the call it carries (x-fal-target-url) decides, and its handler checks that
    # call's scope as the route's own would be checked.
    "POST /fal/proxy": ANY,
    "GET /fal/proxy": ANY,
    "PUT /fal/proxy": ANY,
    "POST /v1/models/{owner}/{name}/predictions": GENERATE,
    "POST /v1/predictions": GENERATE,
    "POST /v1/deployments/{owner}/{name}/predictions": GENERATE,
    # A prompt rewrite runs on the GPU of the model named (the create-image tool's by default), so it needs that
    # model's scope, as generating with it would.
    "POST /api/prompts/enhance": GENERATE,
    # Reading what was made.
    "GET /api/generations": "media:read",
    "GET /api/generations/{id}": "media:read",
    "GET /api/generations/{id}/deliveries": "media:read",
    "GET /fal/queue/{owner}/{app}/requests/{id}/status": "media:read",
    "GET /fal/queue/{owner}/{app}/requests/{id}/status/stream": "media:read",
    "GET /fal/queue/{owner}/{app}/requests/{id}": "media:read",
    "GET /v1/predictions": "media:read",
    "GET /v1/predictions/{id}": "media:read",
    "GET /v1/predictions/{id}/stream": "media:read",
    "GET /v1/files": "media:read",
    "GET /v1/files/{id}": "media:read",
    "GET /api/account": "media:read",
    "GET /api/loras": "media:read",
    "GET /api/loras/{id}": "media:read",
    # Changing what was made, and bringing files in. A cancel is checked before the job is read, so a key
    # without the scope learns nothing of it (its state was in the 409's text).
    "POST /api/generations/{id}/cancel": "media:write",
    "POST /api/generations/{id}/share": "media:write",
    "POST /api/generations/{id}/deliveries/redeliver": "media:write",
    "POST /api/uploads": "media:write",
    "POST /files": "media:write",
    "POST /api/v1/uploads": "media:write",
    "PUT /fal/queue/{owner}/{app}/requests/{id}/cancel": "media:write",
    "POST /v1/predictions/{id}/cancel": "media:write",
    "POST /v1/files": "media:write",
    "DELETE /v1/files/{id}": "media:write",
    # A workspace's own LoRA adapters: reading them is reading, registering and deleting them is bringing files in.
    "POST /api/loras": "media:write",
    "DELETE /api/loras/{id}": "media:write",
    # The webhook signing secret signs for the whole workspace: whoever reads it can forge its webhooks, and a
    # rotation without grace breaks every receiver at once. Operator only.
    "GET /api/webhooks/secret": "admin",
    "GET /v1/webhooks/default/secret": "admin",
    "POST /api/webhooks/secret/rotate": "admin",
    "GET /api/keys": "admin",
    "POST /api/keys": "admin",
    "DELETE /api/keys/{key_id}": "admin",
    "POST /api/admin/workspaces": "admin",
    "POST /api/admin/workspaces/{workspace_id}/credits": "admin",
    "GET /api/admin/workspaces/{workspace_id}/usage": "admin",
    "GET /api/admin/workspaces/{workspace_id}/moderation": "admin",
    "PUT /api/admin/workspaces/{workspace_id}/moderation": "admin",
    # Catalogs: the same for every key.
    "GET /api/tools": ANY,
    "GET /api/tools/{slug}": ANY,
    "GET /api/models": ANY,
    "GET /api/styles": ANY,
    "GET /v1/models": ANY,
    "GET /v1/models/{model}": ANY,
    "GET /v1/models/{owner}/{name}": ANY,
    "GET /v1/models/{owner}/{name}/versions/{version}": ANY,
    "GET /api/v1/images/generate": ANY,
    "GET /api/v1/videos/generate": ANY,
    "GET /api/v1/models": ANY,
    "GET /api/v1/styles": ANY,
    # Served without a key.
    "GET /shared/media/{share_id}": PUBLIC,
    "GET /shared/media/{share_id}/{file}": PUBLIC,
    "GET /media/{workspace_id}/{kind}/{item_id}/{name}": PUBLIC,
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    "GET /console": PUBLIC,
    "GET /console/{file}": PUBLIC,
}

# Routes whose keys act for the operator: revocation must be seen at once, so their key is read uncached.
OPERATOR_SCOPE = "admin"


@cache
def _patterns() -> list[tuple[str, re.Pattern[str], str]]:
    out = []
    for route, scope in ROUTE_SCOPES.items():
        method, path = route.split(" ", 1)
        # {name+} (API Gateway's greedy parameter) spans segments; {name} is one segment.
        pattern = re.sub(r"\\{[^/]+?\\\+\\}", ".+", re.escape(path))
        out.append((method, re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", pattern) + "$"), scope))
    return out


def methods_for(path: str) -> list[str]:
    """The methods some route serves `path` with (for a 405's Allow)."""
    return sorted({method for method, pattern, _ in _patterns() if pattern.match(path)})


def scope_for(method: str, path: str) -> str | None:
    """The scope the route needs, or None for a path no route serves (the resolver answers 404 or 405)."""
    for route_method, pattern, scope in _patterns():
        if route_method == method and pattern.match(path):
            return scope
    return None

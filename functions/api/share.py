"""Share pages: `GET /shared/media/{share_id}`, served WITHOUT a key, for jobs made public only, and the
share toggle `POST /api/generations/{id}/share` that makes a job public or private after submit.

The page shows the image or video and carries OpenGraph/Twitter tags so links unfurl in chat apps. Its media
are served through the share route itself (`GET /shared/media/{share_id}/{file}`), which checks the share on
every request: unsharing ends the page and its files at once (a file over 4 MiB is a redirect to S3 that lives
at most SHARED_FILE_SECONDS). The page is cached privately and revalidated, never by a shared cache.
"""

from __future__ import annotations

from html import escape

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ConfigDict, Field, StrictBool

from functions.api import files, pages
from functions.api.auth import Principal
from functions.api.openapi import HTML, doc
from functions.api.request import json_body, json_response
from functions.core import links, sharing
from functions.core.errors import NotFound
from functions.core.generation import parse_input
from functions.core.jobs import Job, JobStatus, JobStore
from functions.core.schema import Request

router = Router()

# How long a shared file, once fetched, may outlive an unsharing: its cache life, and a redirect's S3 URL.
SHARED_FILE_SECONDS = 300

PUBLIC_PREFIXES = (sharing.SHARE_PATH,)


class ShareRequest(Request):
    model_config = ConfigDict(extra="forbid")
    # Strict: "false" as a string is a mistake to report, not a truthy value to share with.
    public: StrictBool = Field(description="true: give the generation a public share page; false: take it away.")


def _page(title: str, description: str, media_url: str | None, poster_url: str | None, is_video: bool,
          page_url: str) -> str:
    tags = [f'<meta property="og:title" content="{escape(title)}">',
            f'<meta property="og:description" content="{escape(description)}">',
            f'<meta property="og:url" content="{escape(page_url)}">',
            '<meta property="og:site_name" content="Darkroom">']
    if is_video and media_url:
        tags += ['<meta property="og:type" content="video.other">',
                 f'<meta property="og:video" content="{escape(media_url)}">',
                 '<meta property="og:video:type" content="video/mp4">',
                 '<meta name="twitter:card" content="player">']
        if poster_url:
            tags.append(f'<meta property="og:image" content="{escape(poster_url)}">')
        body = (f'<video src="{escape(media_url)}" poster="{escape(poster_url or "")}" controls autoplay muted loop '
                'playsinline></video>')
    else:
        tags += ['<meta property="og:type" content="website">',
                 f'<meta property="og:image" content="{escape(media_url or "")}">',
                 '<meta name="twitter:card" content="summary_large_image">']
        body = f'<img src="{escape(media_url or "")}" alt="{escape(description)}">' if media_url else \
            "<p>This generation is still being made. Reload in a moment.</p>"
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title>{''.join(tags)}"
        "<style>body{margin:0;background:#111;color:#eee;font:16px system-ui;display:grid;place-items:center;"
        "min-height:100vh}img,video{max-width:100vw;max-height:90vh}p{padding:1em}</style>"
        f"</head><body><main>{body}<p>{escape(description)}</p></main></body></html>"
    )


@router.get("/shared/media/<share_id>", **doc(
    "A public share page", ok_media=HTML, errors=(404,), public=True,
    description="An HTML page with the media and OpenGraph tags, for generations made with make_public."))
def shared_media(share_id: str) -> Response[str]:
    job = _shared_job(share_id)
    first = job.outputs[0] if job.outputs else None
    base = f"{links.public_base_url()}{sharing.SHARE_PATH}{share_id}/"
    media = base + first.key.rsplit("/", 1)[1] if first else None
    poster = base + first.thumbnail_key.rsplit("/", 1)[1] if first and first.thumbnail_key else None
    prompt = str(job.input.get("prompt", ""))[:300]
    html = _page(f"{job.type.capitalize()} made with Darkroom", prompt, media, poster, job.type == "video",
                 job.share_url or "")
    response = pages.page(router.current_event, html, content_type="text/html; charset=utf-8",
                          csp=pages.content_security_policy(script="", style=pages.inline_hashes(html, "style")),
                          cache="private, no-cache")
    response.headers["x-robots-tag"] = "noindex"
    return response


@router.get("/shared/media/<share_id>/<file>", **doc(
    "A shared generation's file", ok_media="application/octet-stream", errors=(404, 416), public=True,
    redirect="Found: a file over 4 MiB, on S3 (presigned for at most SHARED_FILE_SECONDS)",
    description="The files a share page shows, for as long as the generation is shared: checked on every request."))
def shared_file(share_id: str, file: str) -> Response[bytes]:
    job = _shared_job(share_id)
    keys = {key.rsplit("/", 1)[1]: key for o in job.outputs for key in (o.key, o.thumbnail_key) if key}
    if file not in keys:
        raise NotFound("This shared file does not exist", code="share_not_found")
    return files.serve(keys[file], router.current_event, seconds_left=SHARED_FILE_SECONDS)


def _shared_job(share_id: str) -> Job:
    parsed = sharing.parse_share_id(share_id)
    job = JobStore().get(parsed[0]) if parsed else None
    if job is None or not sharing.matches(job.share_url, share_id) or job.status in (JobStatus.FAILED,
                                                                                  JobStatus.CANCELED):
        raise NotFound("This shared media does not exist", code="share_not_found")
    return job


def share_state(job: Job) -> dict:
    return {"id": job.id, "public": job.share_url is not None, "share_url": job.share_url}


@router.post("/api/generations/<job_id>/share", **doc(
    "Share or unshare a generation", ok="ShareState", body=ShareRequest, errors=(400, 403, 404, 409),
    description="public=true gives the generation a share page (GET /shared/media/{share_id}, no key needed); "
                "sharing a shared one keeps its link. public=false takes the page away: the old link is a 404 "
                "for good, and sharing again makes a new link. Queued and running generations can be shared "
                "(as make_public does at submit; the page fills in when the generation finishes); failed or "
                "canceled ones cannot (409)."))
def share_generation(job_id: str) -> Response[dict]:
    principal: Principal = router.context["principal"]
    body = parse_input(ShareRequest, json_body(router.current_event))
    store = JobStore()
    job = store.get_for_workspace(principal.workspace_id, job_id)
    link = sharing.share_url(job.id) if body.public else None
    return json_response(200, share_state(store.set_share_url(job, link)))

"""Share pages: `GET /shared/media/{share_id}`, served WITHOUT a key, for jobs made public only.

The page shows the image or video and carries OpenGraph/Twitter tags so links unfurl in chat apps.
Media URLs on it are presigned when the page is served, like every other output URL.
"""

from __future__ import annotations

from html import escape

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api.openapi import HTML, doc
from functions.core import sharing, storage
from functions.core.errors import NotFound
from functions.core.jobs import JobStatus, JobStore

router = Router()

PUBLIC_PREFIXES = (sharing.SHARE_PATH,)


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
    parsed = sharing.parse_share_id(share_id)
    job = JobStore().get(parsed[0]) if parsed else None
    if job is None or not sharing.matches(job.share_url, share_id) or job.status in (JobStatus.FAILED,
                                                                                  JobStatus.CANCELED):
        raise NotFound("This shared media does not exist", code="share_not_found")
    first = job.outputs[0] if job.outputs else None
    media = storage.presigned_get(first.key) if first else None
    poster = storage.presigned_get(first.thumbnail_key) if first and first.thumbnail_key else None
    prompt = str(job.input.get("prompt", ""))[:300]
    html = _page(f"{job.type.capitalize()} made with Darkroom", prompt, media, poster, job.type == "video",
                 job.share_url or "")
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=html,
                    headers={"cache-control": "public, max-age=300", "x-robots-tag": "noindex"})

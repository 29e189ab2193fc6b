"""The embed: the cluster calendar made to sit in an iframe on a village's own website.

`/embed` lists the coming week, `/embed/month` one month as an agenda (a grid does not fit a
narrow column); both take `?village=` and `?category=`. The pages set no cookie and load one
small stylesheet and one same-origin script that tells the parent page its height
(postMessage), so the snippet on the subscribe page can size the iframe. Only these pages
carry `Content-Security-Policy: frame-ancestors`; the others keep their headers as they were.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from markupsafe import Markup, escape

from aggregator.keys import CONFIG
from aggregator.web.calendar import cut_list, parse_month, shift_month
from aggregator.web.pages import (
    Filters,
    by_day,
    filters_of,
    link,
    local_today,
    merged_of,
    occurrences_between,
    public_url,
    timezone_of,
    village_name,
)
from klynge.web import render, request_lang

WEEK_DAYS = 7
EMBED_CAP = 80  # occurrences in one embed page, cut at a day's end (page weight)
HEIGHT_MESSAGE = "klynge-embed-height"  # the postMessage type the snippet listens for


def add_routes(app: web.Application) -> None:
    """Register the embeddable pages."""
    app.router.add_get("/embed", embed_week)
    app.router.add_get("/embed/month", embed_month)


async def embed_week(request: web.Request) -> web.Response:
    """Show the coming seven days, for an iframe."""
    filters = filters_of(request)
    today = local_today(request)
    found = await occurrences_between(request, today, today + timedelta(WEEK_DAYS), filters)
    days, cut = cut_list(by_day(found, timezone_of(request)), EMBED_CAP)
    context = await _common(request, filters) | {
        "view": "week",
        "days": days,
        "cut": cut,
        "first": today,
        "last": today + timedelta(WEEK_DAYS - 1),
    }
    return framable(request, render(request, "embed.html", context))


async def embed_month(request: web.Request) -> web.Response:
    """Show one month as an agenda of its days, for an iframe."""
    filters = filters_of(request)
    month = parse_month(request.query.get("month", ""), local_today(request))
    end = shift_month(month, 1)
    found = await occurrences_between(request, month, end, filters)
    days, cut = cut_list(by_day(found, timezone_of(request)), EMBED_CAP)
    context = await _common(request, filters) | {
        "view": "month",
        "days": days,
        "cut": cut,
        "month": month,
        "prev_href": link("/embed/month", filters.params(month=_key(shift_month(month, -1)))),
        "next_href": link("/embed/month", filters.params(month=_key(end))),
    }
    return framable(request, render(request, "embed.html", context))


def _key(month: Any) -> str:
    return str(month.strftime("%Y-%m"))


async def _common(request: web.Request, filters: Filters) -> dict[str, Any]:
    merged = await merged_of(request)
    embed = request.app[CONFIG].embed
    return {
        "filters": filters,
        "village_name": village_name(merged, filters.village) if filters.village else "",
        "colours": theme_css(embed.accent, embed.background, embed.text),
        "calendar_href": public_url(request, link("/calendar", filters.params())),
        "week_href": link("/embed", filters.params()),
        "month_href": link("/embed/month", filters.params()),
        "lang_href": link(request.path, filters.params() | {"lang": _other(request)}),
    }


def _other(request: web.Request) -> str:
    return "en" if request_lang(request) == "da" else "da"


def theme_css(accent: str, background: str, text: str) -> Markup:
    """Return the configured colours as CSS custom properties (validated hex, see config)."""
    values = {"accent": accent, "bg": background, "text": text}
    body = "; ".join(f"--embed-{k}: {escape(v)}" for k, v in values.items())
    return Markup(f":root {{ {body} }}")


def framable(request: web.Request, response: web.Response) -> web.Response:
    """Let the configured sites frame this response, and keep it out of cookies."""
    ancestors = " ".join(request.app[CONFIG].embed.frame_ancestors)
    response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def snippet(request: web.Request, path: str = "/embed") -> str:
    """Return the HTML a village website pastes to show the embed, sized to its content."""
    src = public_url(request, path)
    parts = urlsplit(src)
    origin = f"{parts.scheme}://{parts.netloc}"
    return (
        f'<iframe src="{src}" title="{escape(request.app[CONFIG].name)}" '
        'style="width:100%;border:0;height:600px" loading="lazy" '
        'class="klynge-embed"></iframe>\n'
        "<script>addEventListener('message',function(e){"
        f"if(e.origin!=='{origin}'||!e.data||e.data.type!=='{HEIGHT_MESSAGE}')return;"
        "document.querySelectorAll('iframe.klynge-embed').forEach(function(f){"
        "if(f.contentWindow===e.source)f.style.height=e.data.height+'px'})});</script>"
    )

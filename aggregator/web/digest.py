"""The ugeseddel's pages: the week ahead as HTML, plain text and PDF (`?week=YYYY-Www`)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from aggregator.keys import CONFIG, now
from aggregator.publish.digest import Digest, build_digest, digest_html, digest_text, week_ahead
from aggregator.web.pages import lang_of, local_today, merged_of, public_url, timezone_of
from aggregator.web.poster import parse_week, week_param
from klynge.web import render

CACHE = "public, max-age=300"


def add_routes(app: web.Application) -> None:
    """Register the ugeseddel in its three forms."""
    app.router.add_get("/digest", digest_page)
    app.router.add_get("/digest.txt", digest_txt)
    app.router.add_get("/digest.pdf", digest_file)


async def digest_of(request: web.Request) -> Digest:
    """Build the ugeseddel of the asked week (the week ahead by default)."""
    today = local_today(request)
    asked = request.query.get("week", "")
    monday = parse_week(asked, today) if asked.strip() else week_ahead(today)
    config = request.app[CONFIG]
    merged = await merged_of(request)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, build_digest, merged, monday, now(request), timezone_of(request), config.name,
        public_url(request, ""),
    )  # fmt: skip


def _links(monday: date) -> dict[str, Any]:
    week = week_param(monday)
    return {
        "week": week,
        "prev_week": week_param(monday - timedelta(days=7)),
        "next_week": week_param(monday + timedelta(days=7)),
    }


async def digest_page(request: web.Request) -> web.Response:
    """Show the ugeseddel, with links to its text and PDF forms."""
    digest = await digest_of(request)
    context = {"digest": digest, "body": digest_html(digest, lang_of(request))}
    context["mail_enabled"] = request.app[CONFIG].mail is not None
    return render(request, "digest.html", context | _links(digest.monday))


async def digest_txt(request: web.Request) -> web.Response:
    """Send the ugeseddel as plain text, to paste into a bulletin or a newspaper."""
    digest = await digest_of(request)
    response = web.Response(text=digest_text(digest, lang_of(request)), charset="utf-8")
    response.headers.update({"Cache-Control": CACHE, "Vary": "Accept-Language, Cookie"})
    response.headers["Content-Language"] = lang_of(request)
    return response


async def digest_file(request: web.Request) -> web.Response:
    """Send the ugeseddel as an A4 PDF."""
    # fpdf2 and fontTools take 0.2 s and 20 MB of RSS to import: only when a PDF is asked for.
    from aggregator.publish.digest_pdf import digest_pdf

    digest = await digest_of(request)
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(None, digest_pdf, digest, lang_of(request))
    name = f"ugeseddel-{week_param(digest.monday)}.pdf"
    headers = {"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": CACHE}
    return web.Response(body=body, content_type="application/pdf", headers=headers)

"""Typed application keys shared by the app factory and the request handlers."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from aggregator.config import AggregatorConfig
from aggregator.mail.service import Mailer
from aggregator.operations import Operator
from aggregator.publish.answers import Answers
from aggregator.publish.merged import MergedView
from aggregator.publish.outputs import Outputs
from aggregator.publish.upstream import Upstream
from aggregator.reader.refresh import Refresher
from aggregator.reader.scheduler import Scheduler
from aggregator.web.status import SourceRows

CONFIG = web.AppKey("aggregator_config", AggregatorConfig)
REFRESHER = web.AppKey("aggregator_refresher", Refresher)
MERGED = web.AppKey("aggregator_merged", MergedView)
OUTPUTS = web.AppKey("aggregator_outputs", Outputs)
SCHEDULER = web.AppKey("aggregator_scheduler", Scheduler)
OPERATOR = web.AppKey("aggregator_operator", Operator)
UPSTREAM = web.AppKey("aggregator_upstream", Upstream)
ANSWERS = web.AppKey("aggregator_answers", Answers)
SOURCE_ROWS = web.AppKey("aggregator_source_rows", SourceRows)
MAILER = web.AppKey("aggregator_mailer", Mailer)  # only when [mail] is configured


def now(request: web.Request) -> datetime:
    """Return the current time from the aggregator's one clock (klynge.clock)."""
    return request.app[CONFIG].clock.now()

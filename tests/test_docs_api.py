"""docs/api.md's node API examples run as written against a real node and give the shown answers.

The curl commands of the node section are replayed in order through a real app (a data
directory made by the CLI, the user `bo` of Østerby IF behind `$TOKEN`, the saved place
"Forsamlingshuset" in node.toml). Each answer is compared with the JSON or HTTP block that
follows the command: every documented key and value must be there, except the times of
`created`/`updated` and what the page elides with "…". Entry ids differ from run to run, so a
documented id is bound to the real one the first time an answer shows it. An id the page uses
without creating it first belongs to another association and is made by `anna` beforehand.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from clock_support import utc_now
from node_support import NodeDir, auth, make_node

from aggregator.config import AggregatorConfig, Source
from aggregator.publish import outputs
from aggregator.reader.state import SourceState
from aggregator.web.status import source_row
from klynge.model import Event, FeedSource, Notice, Place, new_id
from klynge.recurrence import expand
from node.app import create_app
from node.serialize import EVENT_INPUT, NOTICE_INPUT, item_to_api

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Coroutine[Any, Any, Client]]
API_DOC = Path(__file__).parent.parent / "docs" / "api.md"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
VOLATILE = {"created", "updated"}
ELIDED = "…"
WINDOW = (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC))
PLACE = """
[[places]]
name = "Forsamlingshuset"
street = "Hovedgaden 12"
postcode = "4000"
locality = "Østerby"
lat = 55.6415
lon = 11.8224
"""


@dataclass
class Curl:
    """One curl command of the page: what it sends."""

    method: str
    path: str
    headers: dict[str, str]
    body: str | None


@dataclass
class Example:
    """Curl commands with the answers the page shows after them."""

    commands: list[Curl]
    documents: list[Any] = field(default_factory=list)
    http: list[str] = field(default_factory=list)  # lines of an "HTTP/1.1 …" block


# --- reading the page -------------------------------------------------------------------------


def node_section(text: str) -> str:
    """Return the node API part of the page."""
    start = text.index("## The node API")
    return text[start : text.index("## The aggregator's public JSON")]


def fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    """Yield (language, content) of every fenced code block, and ("#", title) of headings."""
    pattern = r"^```(\w*)\n(.*?)^```|^(#+ [^\n]*)$"
    for match in re.finditer(pattern, text, re.MULTILINE | re.DOTALL):
        if match.group(3):
            yield "#", match.group(3)
        else:
            yield match.group(1), match.group(2)


def examples(text: str) -> list[Example]:
    """Pair each shell block's curl commands with the answer blocks after it (same section)."""
    found: list[Example] = []
    current: Example | None = None
    for language, content in fenced_blocks(node_section(text)):
        if language == "#":
            current = None
        elif language == "sh":
            commands = curl_commands(content)
            current = Example(commands) if commands else None
            found += [current] if current else []
        elif current and language == "json":
            current.documents += json_documents(content)
        elif current and content.startswith("HTTP/1.1"):
            current.http = content.splitlines()
    return found


def curl_commands(script: str) -> list[Curl]:
    """Return the curl commands of a shell block (continuations and heredoc bodies joined)."""
    commands: list[Curl] = []
    lines = iter(script.splitlines())
    for line in lines:
        command = line
        while command.endswith("\\"):
            command = command[:-1] + next(lines)
        body = None
        if "<<'EOF'" in command:
            command = command.replace("<<'EOF'", "")
            body = "\n".join(iter(lambda: next(lines), "EOF"))
        if command.strip().startswith("curl "):
            commands.append(parse_curl(shlex.split(command, comments=True), body))
    return commands


def parse_curl(args: list[str], stdin: str | None) -> Curl:
    """Return what a curl command line sends."""
    method, url, headers, body = "", "", {}, None
    words = iter(args[1:])
    for word in words:
        if word == "-X":
            method = next(words)
        elif word == "-H":
            name, _, value = next(words).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data"):
            value = next(words)
            body = stdin if value == "@-" else value
        elif not word.startswith("-"):
            url = word
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Curl(method or ("POST" if body is not None else "GET"), path, headers, body)


def json_documents(content: str) -> list[Any]:
    """Return the JSON documents of a block: one pretty document, or one per line."""
    try:
        return [json.loads(content)]
    except ValueError:
        return [json.loads(line) for line in content.splitlines() if line.strip()]


# --- comparing answers ------------------------------------------------------------------------


class Ids:
    """Documented entry ids bound to the real ones."""

    def __init__(self) -> None:
        self.real: dict[str, str] = {}

    def apply(self, text: str) -> str:
        """Return `text` with every bound documented id replaced by its real id."""
        return re.sub(UUID, lambda m: self.real.get(m.group(0), m.group(0)), text)

    def unbound(self, text: str) -> list[str]:
        """Return the documented ids in `text` that are not bound yet."""
        return [u for u in re.findall(UUID, text) if u not in self.real]

    def match(self, documented: str, actual: str) -> bool:
        """Tell whether a string matches, binding unbound ids in it to the actual ones."""
        pattern, groups = "", {}
        for index, part in enumerate(re.split(f"({UUID})", documented)):
            if index % 2 == 0:
                pattern += re.escape(part)
            elif part in self.real:
                pattern += re.escape(self.real[part])
            elif part in groups:
                pattern += f"(?P={groups[part]})"
            else:
                groups[part] = f"u{len(groups)}"
                pattern += f"(?P<{groups[part]}>{UUID})"
        found = re.fullmatch(pattern, actual)
        if found is None:
            return False
        self.real.update({uuid: found.group(name) for uuid, name in groups.items()})
        return True


def mismatches(documented: Any, actual: Any, ids: Ids, where: str = "") -> list[str]:
    """Return where `actual` differs from the documented value (binding ids on the way)."""
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        return [
            m for key, value in documented.items() for m in _key(key, value, actual, ids, where)
        ]
    if isinstance(documented, list):
        return _list(documented, actual, ids, where)
    if isinstance(documented, str) and isinstance(actual, str):
        return [] if ids.match(documented, actual) else [f"{where}: {actual!r} != {documented!r}"]
    return [] if documented == actual else [f"{where}: {actual!r} != {documented!r}"]


def _key(key: str, value: Any, actual: dict[str, Any], ids: Ids, where: str) -> list[str]:
    if key == ELIDED:
        return []
    if key not in actual:
        return [f"{where}.{key} is missing"]
    if key in VOLATILE:
        ok = isinstance(actual[key], str) and re.fullmatch(r"\d{4}-.*\+00:00", actual[key])
        return [] if ok else [f"{where}.{key}: {actual[key]!r} is not a UTC time"]
    return mismatches(value, actual[key], ids, f"{where}.{key}")


def _list(documented: list[Any], actual: Any, ids: Ids, where: str) -> list[str]:
    """Every documented element (but an elided one) matches some actual element."""
    if not isinstance(actual, list):
        return [f"{where}: expected a list, got {actual!r}"]
    problems = []
    for index, element in enumerate(documented):
        if element == {ELIDED: ELIDED}:
            continue
        if not any(_matches_alone(element, candidate, ids) for candidate in actual):
            problems.append(f"{where}[{index}]: no element matches {element!r}")
    return problems


def _matches_alone(documented: Any, actual: Any, ids: Ids) -> bool:
    trial = Ids()
    trial.real = dict(ids.real)
    if mismatches(documented, actual, trial):
        return False
    ids.real = trial.real
    return True


# --- replaying --------------------------------------------------------------------------------


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    made = make_node(tmp_path)
    with (made.path / "node.toml").open("a", encoding="utf-8") as config:
        config.write(PLACE)
    return made


@pytest.fixture
async def client(node_dir: NodeDir, aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_app(node_dir.config(), housekeeping=False))


async def send(client: Client, curl: Curl, token: str, ids: Ids) -> ClientResponse:
    """Send a documented request with the real token and the real ids."""
    headers = {k: v.replace("$TOKEN", token) for k, v in curl.headers.items()}
    body = None if curl.body is None else ids.apply(curl.body).encode()
    return await client.request(curl.method, ids.apply(curl.path), headers=headers, data=body)


async def seed_foreign(client: Client, path: str, node_dir: NodeDir, ids: Ids) -> None:
    """Make, as anna of the forsamlingshus, the entries a path names but the page never made."""
    for uuid in ids.unbound(path):
        if uuid.strip("0-") == "":
            continue  # the page's example of an id that exists nowhere
        kind = "notices" if "/api/notices/" in path else "events"
        payload = {"title": "Frivillige søges til juletræsfesten"}
        if kind == "events":
            payload["start"] = "2026-12-12T10:00"
        response = await client.post(
            f"/api/{kind}", json=payload, headers=auth(node_dir.admin_token)
        )
        assert response.status == 201, await response.text()
        ids.real[uuid] = (await response.json())["id"]


def check_http(lines: list[str], response: ClientResponse, ids: Ids) -> list[str]:
    """Compare a documented "HTTP/1.1 201 Created" block with the response."""
    problems = []
    status = int(lines[0].split()[1])
    if response.status != status:
        problems.append(f"status {response.status} != {status}")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        actual = response.headers.get(name.strip(), "")
        if not ids.match(value.strip(), actual):
            problems.append(f"header {name}: {actual!r} != {value.strip()!r}")
    return problems


async def check_document(documented: Any, response: ClientResponse, ids: Ids) -> list[str]:
    """Compare a documented JSON answer with the response, status included."""
    actual = await response.json()
    problems = mismatches(documented, actual, ids)
    if isinstance(documented, dict) and "error" in documented:
        if response.status < 400:
            problems.append(f"status {response.status} for a documented error")
    elif response.status >= 300:
        problems.append(f"status {response.status} for a documented success")
    return problems


def test_the_page_has_examples_to_replay() -> None:
    found = examples(API_DOC.read_text(encoding="utf-8"))
    methods = {c.method for e in found for c in e.commands}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods
    assert sum(len(e.documents) for e in found) >= 10
    assert any(e.http for e in found)


async def test_node_api_examples_give_the_documented_answers(
    client: Client, node_dir: NodeDir
) -> None:
    ids = Ids()
    replayed = 0
    for example in examples(API_DOC.read_text(encoding="utf-8")):
        for index, curl in enumerate(example.commands):
            await seed_foreign(client, curl.path, node_dir, ids)
            response = await send(client, curl, node_dir.token, ids)
            where = f"{curl.method} {curl.path}"
            problems = check_http(example.http, response, ids) if example.http else []
            if index < len(example.documents):
                problems += await check_document(example.documents[index], response, ids)
            elif not example.http:
                problems += [] if response.status < 300 else [f"status {response.status}"]
            assert not problems, f"{where}: {problems}"
            replayed += 1
    assert replayed >= 20


# --- field lists ------------------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """Return the text under a heading, up to the next heading of any level."""
    start = text.index(heading + "\n") + len(heading)
    following = re.search(r"^#+ ", text[start:], re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


def table_names(text: str) -> list[set[str]]:
    """Return, per table in `text`, the backticked names of its first column."""
    tables: list[set[str]] = []
    previous_was_row = False
    for line in text.splitlines():
        is_row = line.startswith("|")
        cells = line.strip("|").split("|")
        if is_row and not previous_was_row:
            tables.append(set())  # the header row starts a table
        elif is_row and not set(cells[0].strip()) <= set("-: "):
            tables[-1].update(re.findall(r"`([^`]+)`", cells[0]))
        previous_was_row = is_row
    return tables


def backticked(text: str) -> set[str]:
    """Return every backticked word of a text outside its code blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return set(re.findall(r"`([^`]+)`", prose))


def sample_event() -> Event:
    place = Place(name="Forsamlingshuset", street="Hovedgaden 12", postcode="4000")
    return Event(
        id=f"urn:uuid:{new_id()[9:]}",
        title="Gymnastik for seniorer",
        updated=datetime(2026, 11, 27, 10, 16, tzinfo=UTC),
        start=datetime(2026, 12, 1, 9, tzinfo=UTC),
        rrule="FREQ=WEEKLY;COUNT=12",
        place=place,
        source=FeedSource(id="urn:uuid:31a7caf3-e778-41ef-9673-d90de2058d99", title="Østerby"),
    )


def sample_notice() -> Notice:
    return Notice(
        id=new_id(),
        title="Samkørsel til fællesspisningen",
        updated=datetime(2026, 11, 27, 10, 16, tzinfo=UTC),
        source=FeedSource(id="urn:uuid:31a7caf3-e778-41ef-9673-d90de2058d99", title="Østerby"),
    )


def first_json(text: str) -> Any:
    """Return the first JSON block of a text."""
    return next(json.loads(body) for lang, body in fenced_blocks(text) if lang == "json")


def test_node_field_tables_list_exactly_the_api_fields() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    event_inputs, event_adds = table_names(section(text, "### Event fields"))
    assert event_inputs == set(EVENT_INPUT)
    assert event_inputs | event_adds == set(item_to_api(sample_event(), "https://x.example"))
    notice_text = section(text, "### Notice fields")
    assert table_names(notice_text)[0] == set(NOTICE_INPUT)
    assert set(item_to_api(sample_notice(), "https://x.example")) <= backticked(notice_text)


def test_aggregator_examples_have_exactly_the_real_fields() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    events_text = section(text, "### GET /api/events")
    occurrence = outputs.occurrence_json(expand([sample_event()], *WINDOW)[0])
    assert set(first_json(events_text)["events"][0]) == set(occurrence)
    assert set(occurrence) <= backticked(events_text)
    notice = outputs.notice_json(sample_notice())
    assert set(first_json(section(text, "### GET /api/notices"))["notices"][0]) == set(notice)
    sources_text = section(text, "### GET /api/sources")
    source = Source("https://osterby.example.dk/feed.atom", "Østerby")
    config = AggregatorConfig(Path("."), "Klyngen ved Åen", "https://klynge.example.dk")
    row = source_row(source, SourceState(source.url), config, utc_now())
    assert set(first_json(sources_text)["sources"][0]) == set(row)
    assert set(row) <= set().union(*table_names(sources_text))

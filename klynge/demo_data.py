"""The demo's three fictional villages and a realistic Danish month, dated relative to today."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

DEMO_PASSWORD = "klynge-demo"


@dataclass(frozen=True)
class DemoVillage:
    """One demo village: its node's name, its association login and what it posts."""

    slug: str
    name: str
    association: str
    username: str
    events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)


def _on(day: date, hhmm: str) -> str:
    return f"{day.isoformat()}T{hhmm}"


def _next(today: date, weekday: int, weeks: int = 0) -> date:
    """Return the next `weekday` (0 = Monday) on or after today, plus `weeks` weeks."""
    return today + timedelta(days=(weekday - today.weekday()) % 7, weeks=weeks)


def _place(
    name: str, street: str, postcode: str, locality: str, lat: float, lon: float
) -> dict[str, Any]:
    return {
        "name": name,
        "street": street,
        "postcode": postcode,
        "locality": locality,
        "lat": lat,
        "lon": lon,
    }


def villages(today: date) -> list[DemoVillage]:
    """Return the three demo villages with their month of events and notices."""
    return [_osterby(today), _vesterlund(today), _norrevang(today)]


def _osterby(today: date) -> DemoVillage:
    hall = _place("Østerby Forsamlingshus", "Skolevej 4", "8882", "Østerby", 56.1921, 9.5613)
    friday = _next(today, 4)
    return DemoVillage(
        slug="osterby",
        name="Østerby",
        association="Østerby Forsamlingshus",
        username="forsamlingshus",
        events=[
            {
                "title": "Fællesspisning: gule ærter og pandekager",
                "start": _on(friday, "18:00"),
                "end": _on(friday, "21:00"),
                "location": hall,
                "category": "food",
                "description": "<p>Tag hele familien med. Voksne 75 kr., børn 35 kr. "
                "Tilmelding senest onsdag til Birgit.</p>",
            },
            {
                "title": "Høstfest med levende musik",
                "start": _on(friday + timedelta(days=15), "19:00"),
                "end": _on(friday + timedelta(days=16), "01:00"),
                "location": hall,
                "category": "culture",
                "description": "<p>Spisning, dans og lotteri. Billetter i Brugsen.</p>",
            },
            {
                "title": "Juletræstænding på gadekæret",
                "start": _on(_next(today, 6, 2), "16:00"),
                "end": _on(_next(today, 6, 2), "17:30"),
                "category": "children",
                "location": _place("Gadekæret", "Bygaden", "8882", "Østerby", 56.1930, 9.5620),
                "description": "<p>Æbleskiver og gløgg. Julemanden kommer forbi!</p>",
            },
        ],
        notices=[
            {
                "title": "Frivillige søges til opvask ved fællesspisningen",
                "category": "volunteers",
                "body": "<p>Vi mangler to par hænder fredag fra kl. 20. Ring til Birgit på "
                "20 30 40 50.</p>",
                "expires": _on(friday, "18:00"),
            },
            {
                "title": "Vejarbejde på Skolevej",
                "category": "roadworks",
                "body": "<p>Skolevej er spærret ved nr. 10-20 i to uger. Kør ad Kirkevej.</p>",
                "expires": _on(today + timedelta(days=14), "16:00"),
            },
        ],
    )


def _vesterlund(today: date) -> DemoVillage:
    field_ = _place("Vesterlund Stadion", "Idrætsvej 2", "8883", "Vesterlund", 56.1802, 9.5120)
    tuesday = _next(today, 1)
    saturday = _next(today, 5, 1)
    until = (tuesday + timedelta(weeks=8)).strftime("%Y%m%dT235959Z")
    return DemoVillage(
        slug="vesterlund",
        name="Vesterlund",
        association="Vesterlund Idrætsforening",
        username="vif",
        events=[
            {
                "title": "Fodboldtræning U10 (piger og drenge)",
                "start": _on(tuesday, "16:30"),
                "end": _on(tuesday, "17:45"),
                "location": field_,
                "category": "sport",
                "rrule": f"FREQ=WEEKLY;UNTIL={until}",
                "description": "<p>Alle børn fra klyngens landsbyer er velkomne. "
                "Husk drikkedunk.</p>",
            },
            {
                "title": "Udebanekamp U10 mod Gjern",
                "start": _on(saturday, "10:00"),
                "end": _on(saturday, "12:00"),
                "category": "sport",
                "location": _place("Gjern Stadion", "Skovvej 1", "8883", "Gjern", 56.2340, 9.7440),
            },
            {
                "title": "Loppemarked i hallen",
                "start": _on(_next(today, 6, 1), "10:00"),
                "end": _on(_next(today, 6, 1), "15:00"),
                "category": "market",
                "location": _place(
                    "Vesterlund Hallen", "Idrætsvej 4", "8883", "Vesterlund", 56.1805, 9.5131
                ),
                "description": "<p>Stadeplads 50 kr. Overskuddet går til ungdomsafdelingen.</p>",
            },
            {
                "title": "Gymnastikopvisning",
                "start": _on(_next(today, 5, 3), "13:00"),
                "end": _on(_next(today, 5, 3), "15:00"),
                "category": "sport",
                "status": "cancelled",
                "location": field_,
                "description": "<p>Aflyst på grund af sygdom blandt trænerne.</p>",
            },
        ],
        notices=[
            {
                "title": "Samkørsel til udebanekampen i Gjern",
                "category": "carpool",
                "body": "<p>Vi kører fra Brugsen kl. 9.15 og har tre ledige pladser. "
                "Skriv til Jens på 30 40 50 60.</p>",
                "expires": _on(saturday, "10:00"),
            },
        ],
    )


def _norrevang(today: date) -> DemoVillage:
    church = _place("Nørrevang Kirke", "Kirkebakken 1", "8884", "Nørrevang", 56.2101, 9.5402)
    return DemoVillage(
        slug="norrevang",
        name="Nørrevang",
        association="Nørrevang Lokalråd",
        username="lokalraad",
        events=[
            {
                "title": "Julekoncert med kirkekoret",
                "start": _on(_next(today, 6, 3), "16:00"),
                "end": _on(_next(today, 6, 3), "17:15"),
                "location": church,
                "category": "church",
                "description": "<p>Fri entré. Efter koncerten byder menighedsrådet på kaffe.</p>",
            },
            {
                "title": "Lokalrådsmøde: stisystem og byfornyelse",
                "start": _on(_next(today, 2, 1), "19:00"),
                "end": _on(_next(today, 2, 1), "21:00"),
                "category": "meeting",
                "location": _place(
                    "Nørrevang Skole, aulaen", "Skolegade 7", "8884", "Nørrevang", 56.2090, 9.5391
                ),
                "description": "<p>Alle borgere er velkomne. Dagsorden på opslagstavlen.</p>",
            },
            {
                "title": "Naturvandring i Nørreskoven",
                "start": _next(today, 5, 2).isoformat(),
                "all_day": True,
                "category": "nature",
                "description": "<p>Mødested ved P-pladsen kl. 10. Tag madpakke med.</p>",
            },
        ],
        notices=[
            {
                "title": "Fundet: sort hue ved busstoppestedet",
                "category": "lost-found",
                "body": "<p>Kan afhentes hos købmanden.</p>",
                "expires": _on(today + timedelta(days=10), "18:00"),
            },
        ],
    )

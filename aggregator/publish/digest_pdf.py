"""The ugeseddel as a PDF (A4), for the church bulletin and the local paper to print or paste.

The only module that imports fpdf2 (pure Python, wheels everywhere, no browser needed on the
Pi). The server has no chromium: the poster's PDF is the reader's own browser printing the
page, so the ugeseddel builds its PDF here. DejaVu Sans is used when the system has it
(Debian's fonts-dejavu-core); otherwise the PDF core font Helvetica, which covers Danish
(Latin-1) but not dashes and quotes outside it, so those are replaced by their nearest
Latin-1 forms.
"""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

from aggregator.publish.digest import (
    MORE,
    NOTHING,
    NOTICES_HEADING,
    WHOLE,
    Digest,
    heading,
    plain_line,
    title,
    tr,
)
from klynge import i18n

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
LATIN1 = str.maketrans({"–": "-", "—": "-", "…": "...", "“": '"', "”": '"', "‘": "'",
                        "’": "'", "•": "*", "→": "->", "←": "<-"})  # fmt: skip
MARGIN_MM = 18


class _Pdf(FPDF):
    """An A4 page with the ugeseddel's fonts."""

    def __init__(self) -> None:
        super().__init__(format="A4")
        self.set_margins(MARGIN_MM, MARGIN_MM)
        self.set_auto_page_break(True, MARGIN_MM)
        self.unicode = _add_dejavu(self)

    def say(self, text: str) -> str:
        """Return `text` in what the font can print."""
        if self.unicode:
            return text
        return text.translate(LATIN1).encode("latin-1", "replace").decode("latin-1")

    def face(self, size: float, bold: bool = False) -> None:
        """Use the ugeseddel's font at `size` points."""
        self.set_font("dejavu" if self.unicode else "helvetica", "B" if bold else "", size)


def _add_dejavu(pdf: FPDF) -> bool:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            pdf.add_font("dejavu", "", str(regular))
            pdf.add_font("dejavu", "B", str(bold))
            return True
    return False


def digest_pdf(digest: Digest, lang: str) -> bytes:
    """Return the ugeseddel as an A4 PDF."""
    pdf = _Pdf()
    pdf.set_title(pdf.say(title(digest, lang)))
    pdf.set_lang(lang)
    pdf.add_page()
    pdf.face(20, bold=True)
    pdf.multi_cell(0, 9, pdf.say(title(digest, lang)), new_x="LMARGIN", new_y="NEXT")
    pdf.face(12)
    pdf.multi_cell(0, 6, pdf.say(heading(digest, lang)), new_x="LMARGIN", new_y="NEXT")
    for day, lines in digest.days:
        pdf.ln(3)
        pdf.face(13, bold=True)
        pdf.multi_cell(0, 7, pdf.say(i18n.date_long(day, lang)), new_x="LMARGIN", new_y="NEXT")
        pdf.face(11)
        for line in lines:
            pdf.multi_cell(0, 5.5, pdf.say(plain_line(line, lang)), new_x="LMARGIN", new_y="NEXT")
    _tail(pdf, digest, lang)
    return bytes(pdf.output())


def _tail(pdf: _Pdf, digest: Digest, lang: str) -> None:
    pdf.face(11)
    if not digest.days:
        pdf.ln(3)
        pdf.multi_cell(0, 6, pdf.say(tr(lang, NOTHING)), new_x="LMARGIN", new_y="NEXT")
    if digest.more:
        pdf.multi_cell(0, 6, pdf.say(tr(lang, MORE, n=digest.more)), new_x="LMARGIN", new_y="NEXT")
    if digest.notices:
        pdf.ln(3)
        pdf.face(13, bold=True)
        pdf.multi_cell(0, 7, pdf.say(tr(lang, NOTICES_HEADING)), new_x="LMARGIN", new_y="NEXT")
        pdf.face(11)
        for text, village in digest.notices:
            said = f"• {text}" + (f" ({village})" if village else "")
            pdf.multi_cell(0, 5.5, pdf.say(said), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    whole = f"{tr(lang, WHOLE)} {digest.calendar_url}"
    pdf.multi_cell(0, 6, pdf.say(whole), new_x="LMARGIN", new_y="NEXT")

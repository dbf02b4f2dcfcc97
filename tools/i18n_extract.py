"""Collect every message of the guest screens into translations/messages.pot.

Why a tool: a translator starts a new language from the template (copy it to ``xx.po`` and fill
in ``msgstr``), and the test suite checks every catalogue against the messages found here, so a
string added to a page or to ``screen_text`` without a translation is noticed.

    python tools/i18n_extract.py          # rewrite appliance/web/translations/messages.pot
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import write_po

WEB = Path(__file__).resolve().parents[1] / "appliance" / "web"
TEMPLATE = WEB / "translations" / "messages.pot"
PYTHON_KEYWORDS = {"N_": None, "gettext": None}
TEMPLATE_KEYWORDS = {"_": None}


def message_ids() -> list[str]:
    """Every message id, in the order the code and the pages use them."""
    found: list[str] = []
    sources = [("python", path, PYTHON_KEYWORDS) for path in sorted(WEB.glob("*.py"))]
    sources += [("jinja2.ext:babel_extract", path, TEMPLATE_KEYWORDS)
                for path in sorted((WEB / "templates").glob("*.html"))]
    for method, path, keywords in sources:
        for _line, message, _comments, _context in extract_from_file(
                method, str(path), keywords=keywords):
            if isinstance(message, str) and message not in found:
                found.append(message)
    return found


def template_text() -> bytes:
    catalog = Catalog(project="Ephemera", version="", fuzzy=False)
    for message in message_ids():
        catalog.add(message)
    out = io.BytesIO()
    write_po(out, catalog, width=100, no_location=True, omit_header=True)
    return out.getvalue()


def main() -> int:
    TEMPLATE.write_bytes(template_text())
    print(f"{len(message_ids())} messages -> {TEMPLATE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

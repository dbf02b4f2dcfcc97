"""Collect every message of the guest screens into translations/messages.pot.

Why a tool: a translator starts a new language from the template (copy it to ``xx.po`` and fill
in ``msgstr``), and the test suite checks every catalogue against the messages found here, so a
string added to a page or to ``screen_text`` without a translation is noticed. The effects'
parameters are read from the registry (their guest labels and choice labels, shown on the options
screen), so a new parameter needs no marker of its own.

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
    for message in parameter_messages():
        if message not in found:
            found.append(message)
    return found


def parameter_messages() -> list[str]:
    """The options screen's words from the registry: each parameter's label and choice labels
    (numbers, which need no translation, left out)."""
    from appliance.effects.registry import effects

    found: list[str] = []
    for effect in effects().values():
        for param in effect.params:
            for message in (param.guest_label, *param.guest_choice_labels):
                if message not in found and not message.replace(".", "").isdigit():
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

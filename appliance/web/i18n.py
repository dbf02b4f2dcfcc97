"""The guest screens' languages: one gettext catalogue (a ``.po`` file) per language.

Why ``.po`` files read at start-up with Babel rather than compiled ``.mo`` files: adding a
language is then one file dropped into ``appliance/web/translations/`` (no build step), and a
translator's tool opens it as it is. The English text is the message id, so English needs no
file. Every string the guest sees goes through here: the pages' text, the screens' dynamic
text, and the friendly message for each error and gate code of the API.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).with_name("translations")
DEFAULT_LANGUAGE = "en"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark a message for the catalogue without translating it here."""
    return message


@dataclass(frozen=True)
class Language:
    """One language the screens speak: its code, its own name for itself and its direction."""

    code: str
    name: str
    rtl: bool
    messages: dict[str, str]

    def gettext(self, message: str) -> str:
        return self.messages.get(message) or message

    @property
    def direction(self) -> str:
        return "rtl" if self.rtl else "ltr"


def _language(code: str, messages: dict[str, str]) -> Language:
    locale = Locale.parse(code)
    name = (locale.get_display_name(locale) or code)
    return Language(code, name[:1].upper() + name[1:],
                    locale.character_order == "right-to-left", messages)


def _read_catalogue(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=path.stem)
    return {str(message.id): str(message.string) for message in catalogue
            if message.id and isinstance(message.id, str) and message.string
            and not message.fuzzy}


@functools.lru_cache(maxsize=1)
def languages() -> dict[str, Language]:
    """Every language there is a catalogue for, English first."""
    found = {DEFAULT_LANGUAGE: _language(DEFAULT_LANGUAGE, {})}
    for path in sorted(TRANSLATIONS.glob("*.po")):
        found[path.stem] = _language(path.stem, _read_catalogue(path))
    return found


def language(code: str | None) -> Language:
    """The language ``code`` names, English when there is no catalogue for it."""
    known = languages()
    return known.get(code or "", known[DEFAULT_LANGUAGE])


def from_accept_language(header: str | None) -> Language:
    """The best language for a phone's ``Accept-Language`` header (English by default)."""
    preferred = []
    for part in (header or "").split(","):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        if tag:
            preferred.append((weight, tag.replace("-", "_")))
    ordered = [tag for _weight, tag in sorted(preferred, key=lambda item: -item[0])]
    chosen = negotiate_locale(ordered, list(languages()), sep="_")
    if chosen is None:  # "de-CH" against "de": negotiate on the language part alone
        chosen = negotiate_locale([tag.split("_")[0] for tag in ordered], list(languages()))
    return language(chosen)

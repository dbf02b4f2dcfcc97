"""The screens' languages: every catalogue translates every message (with the same
placeholders), Arabic is laid out right to left, a phone's Accept-Language picks its language,
and a new language is one .po file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from appliance.web import i18n
from appliance.web.screen_text import ERROR_ALIASES, ERROR_TEXT, script_text
from tools.i18n_extract import TEMPLATE, message_ids, template_text

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_the_template_is_up_to_date() -> None:
    assert TEMPLATE.read_bytes() == template_text(), "run: python tools/i18n_extract.py"


@pytest.mark.parametrize("code", ["de", "fr", "es", "it", "ar"])
def test_every_catalogue_translates_every_message(code: str) -> None:
    language = i18n.languages()[code]
    for message in message_ids():
        translated = language.messages.get(message)
        assert translated, f"{code}.po has no translation of {message!r}"
        assert set(PLACEHOLDER.findall(translated)) == set(PLACEHOLDER.findall(message)), \
            (code, message, translated)
    assert set(language.messages) <= set(message_ids()), "stale messages in the catalogue"


def test_directions_and_names() -> None:
    known = i18n.languages()
    assert next(iter(known)) == "en" and {"de", "fr", "es", "it", "ar"} <= set(known)
    assert known["ar"].rtl and known["ar"].direction == "rtl"
    assert not any(known[c].rtl for c in ("en", "de", "fr", "es", "it"))
    assert known["de"].name == "Deutsch" and known["fr"].name.lower().startswith("fran")


def test_every_error_code_has_a_friendly_message_in_every_language() -> None:
    for code in i18n.languages():
        errors = script_text(i18n.language(code))["errors"]
        assert set(ERROR_TEXT) | set(ERROR_ALIASES) <= set(errors)
        if code != "en":
            assert errors["no_face"] != ERROR_TEXT["no_face"], code


@pytest.mark.parametrize(("header", "expected"), [
    ("de-CH,de;q=0.9,en;q=0.8", "de"), ("fr-FR", "fr"), ("ar", "ar"),
    ("ja,es;q=0.5", "es"), ("ja", "en"), (None, "en"), ("it;q=abc,es", "es"),
])
def test_accept_language(header: str | None, expected: str) -> None:
    assert i18n.from_accept_language(header).code == expected


def test_a_new_language_is_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "translations"
    shutil.copytree(i18n.TRANSLATIONS, folder)
    text = (folder / "it.po").read_text(encoding="utf-8")
    (folder / "pt.po").write_text(text.replace('"Language: it', '"Language: pt')
                                  .replace('"Fatto"', '"Pronto"'), encoding="utf-8")
    monkeypatch.setattr(i18n, "TRANSLATIONS", folder)
    i18n.languages.cache_clear()
    try:
        portuguese = i18n.language("pt")
        assert portuguese.code == "pt" and portuguese.gettext("Done") == "Pronto"
        assert i18n.from_accept_language("pt-BR").code == "pt"
    finally:
        i18n.languages.cache_clear()

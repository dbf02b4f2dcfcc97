"""The screens' pages as served: a strict Content-Security-Policy, only the booth's own script
and styles (no inline script or style, no CDN, no web fonts), every registered effect in the
menu, the language and direction asked for."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from appliance.config import load_config
from appliance.effects.registry import effects
from appliance.web.app import create_app

STATIC = Path(__file__).resolve().parents[2] / "appliance" / "web" / "static"
PAGES = ["/", "/?lang=ar", "/?lang=de", "/phone", "/phone/join", "/take"]


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data_blocks: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_data = tag == "script" and dict(attrs).get("type") == "application/json"

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_blocks.append(data)
            self._in_data = False


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    key = tmp_path_factory.mktemp("key") / "receipt-key.pem"
    app = create_app(load_config(env={"EPHEMERA_KIOSK_RECEIPT_KEY": str(key)}), jobs=False)
    return app.test_client()


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_only_the_booths_own_code(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["Cache-Control"] == "no-store"
    page = Page()
    page.feed(response.get_data(as_text=True))
    for tag, attrs in page.tags:
        assert "style" not in attrs, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^(https?:)?//", value), (tag, attrs)
        if tag == "script":
            assert attrs.get("src") or attrs.get("type") == "application/json", attrs
    assert any(tag == "script" and attrs.get("type") == "module" for tag, attrs in page.tags)


def test_static_assets_reach_nothing_outside() -> None:
    for path in STATIC.rglob("*"):
        if path.suffix in (".js", ".css"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"https?://|@import|url\(", text), path
            assert "eval(" not in text and "innerHTML" not in text, path


def test_menu_lists_every_registered_effect_in_the_language_asked(client: Any) -> None:
    page = Page()
    page.feed(client.get("/?lang=ar").get_data(as_text=True))
    html = next(attrs for tag, attrs in page.tags if tag == "html")
    assert (html["lang"], html["dir"]) == ("ar", "rtl")
    booth = json.loads(page.data_blocks[0])
    assert [e["key"] for e in booth["effects"]] == sorted(effects())
    assert {attrs.get("data-effect") for tag, attrs in page.tags
            if attrs.get("data-action") == "effect"} == set(effects())
    assert booth["text"]["smile"] == "ابتسم!"
    # The options screen's words, translated; the values sent to the API stay as declared.
    menu = {e["key"]: e for e in booth["effects"]}
    side = next(p for p in menu["kiss"]["params"] if p["name"] == "side")
    assert side["choices"] == ["left", "right"]
    assert side["choice_labels"] == ["على اليسار", "على اليمين"]
    assert side["label"] == "مكان الشخص الأول"
    assert [c["shots"] for c in menu["kiss"]["shot_choices"]] == [2, 1]
    assert menu["kiss"]["shot_choices"][1]["label"] == "صورة واحدة لكما معًا"
    assert menu["baby"]["shot_choices"] == [] and menu["baby"]["params"][0]["minimum"] == 0
    assert booth["idle_timeout_s"] == 90
    unknown = client.get("/?lang=xx")
    assert b'lang="en"' in unknown.data

"""Chromium as a guest's phone, run inside the LAN namespace (``ip netns exec NS python -m``).

Argument: a JSON object ``{"origin", "spki"}``; ``spki`` is the base64 SHA-256 of the booth
certificate's public key, the one certificate Chromium is told to accept (a phone that trusts
the booth's CA accepts exactly that one too). Prints what the page saw as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from playwright.sync_api import sync_playwright

from tests.helpers.browser import CHROMIUM, PHONE

FETCHES = """async () => {
  const effects = await fetch('/api/effects');
  const forget = await fetch('/api/session', {method: 'DELETE'});
  return {effects: effects.status, forget: forget.status,
          forget_error: (await forget.json()).error, cookie: document.cookie};
}"""


def main() -> None:
    spec = json.loads(sys.argv[1])
    seen: dict[str, Any] = {"console_errors": [], "page_errors": [], "failed": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            f"--ignore-certificate-errors-spki-list={spec['spki']}"])
        context = browser.new_context(**PHONE)
        page = context.new_page()
        page.on("console", lambda m: seen["console_errors"].append(m.text)
                if m.type == "error" else None)
        page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
        page.on("response", lambda r: seen["failed"].append([r.status, r.url])
                if r.status >= 400 else None)
        reply = page.goto(spec["origin"] + "/", wait_until="networkidle")
        seen["status"] = reply.status if reply else 0
        seen["url"] = page.url
        seen["title"] = page.title()
        seen.update(page.evaluate(FETCHES))
        browser.close()
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main()

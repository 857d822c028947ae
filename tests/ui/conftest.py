"""
What the browser tests share: Debian's chromium driven by Playwright, and a logged-in page.

Each test module provides the ``stack`` fixture (the Airflow the page opens). The browser is Debian's
``chromium`` (``bash scripts/setup-tests.sh --browser`` installs it as root, and so does CI): never a
browser build Playwright would download.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

from agentvault_stack.testing import AirflowStack

CHROMIUM = os.environ.get("AGENTVAULT_CHROMIUM", "/usr/bin/chromium")
#: Bound of every single browser wait (a page, a click, an element showing up), in milliseconds.
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        pytest.fail(f"no chromium at {CHROMIUM}{f' (but one at {found}: set AGENTVAULT_CHROMIUM)' if found else ''}; "
                    "install Debian's package as root: `bash scripts/setup-tests.sh --browser` "
                    "(or `apt-get update && apt-get install -y chromium`)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], timeout=WAIT_MS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, stack, tmp_path):
    """A fresh page (own context), logged in to the stack's UI; console errors land in tmp_path."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    opened = context.new_page()
    console: list[str] = []
    opened.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    _log_in(opened, stack)
    try:
        yield opened
    finally:
        (tmp_path / "console.log").write_text("\n".join(console))
        context.close()


def _log_in(page, stack: AirflowStack) -> None:
    """Open the UI; if it asks for a login, give one.

    The stack's simple auth manager makes everyone an admin, so the UI normally signs the browser in
    by itself; a login form only shows if that changes, and then its generated passwords file has one.
    """
    from playwright.sync_api import expect

    page.goto(f"{stack.api_url}/")
    nav = page.get_by_role("button", name="Admin")
    username = page.get_by_label("Username")
    expect(nav.or_(username)).to_be_visible()
    if not nav.is_visible():
        passwords = sorted(stack.home.glob("simple_auth_manager_passwords.json*"))
        assert passwords, f"the UI asks for a login, but {stack.home} has no simple auth manager passwords file"
        user, password = next(iter(json.loads(passwords[0].read_text()).items()))
        username.fill(user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(nav).to_be_visible()



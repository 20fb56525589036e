"""The page in a real browser: Playwright driving the system Chromium against the real server."""

from __future__ import annotations

import shutil

import pytest

from tests.serve.conftest import ISSUE_ANSWER, ISSUE_PUZZLE, KEY

pytestmark = pytest.mark.slow


def test_page_solves_a_typed_puzzle(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    assert chromium, "the browser test needs the system chromium (.ci/run installs it)"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 860})
        failed = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(server.url + "/")
        sync_api.expect(page.locator("#error")).to_contain_text("401")  # the key is needed first
        assert page.locator("#keybox").get_attribute("open") is not None  # the page asks for the key
        page.fill("#apikey", KEY)
        page.dispatch_event("#apikey", "change")
        sync_api.expect(page.locator("#model")).to_contain_text("sudoku6-hard-hrm/step_11250")
        page.fill("#puzzle", "\n".join(ISSUE_PUZZLE[r * 6 : r * 6 + 6] for r in range(6)))  # one row per line
        page.click("#solve")
        sync_api.expect(page.locator("#verdict")).to_have_text("verified", timeout=60_000)
        cells = page.locator("#board .cell").all_inner_texts()
        assert "".join(cells) == ISSUE_ANSWER
        assert page.locator("#board .cell.given").count() == sum(ch != "." for ch in ISSUE_PUZZLE)
        assert page.locator("#board .cell.clash").count() == 0  # a valid answer breaks no rule
        steps = page.locator("#steps li").count()
        assert steps >= 1 and f"{steps} ACT step" in page.locator("#summary").inner_text()
        shot = tmp_path / "solved.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        assert failed == []  # nothing from outside this server (no CDN)
        browser.close()

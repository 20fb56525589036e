"""The page in a real browser: Playwright driving the system Chromium against the real server."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.serve.conftest import ISSUE_ANSWER, ISSUE_PUZZLE, KEY

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


def browser_page(sync_api, p, viewport):
    chromium = shutil.which("chromium")
    assert chromium, "the browser test needs the system chromium (.ci/run installs it)"
    browser = p.chromium.launch(executable_path=chromium, headless=True)
    return browser, browser.new_page(viewport=viewport)


def block_the_network(page, server_url):
    """Every request to anything but this server is aborted and recorded (no CDN, no fonts)."""
    outside: list = []
    local = server_url.split("//", 1)[1].split("/", 1)[0]

    def route(r):
        host = r.request.url.split("//", 1)[-1].split("/", 1)[0]
        if r.request.url.startswith(("data:", "blob:")) or host == local:
            return r.continue_()
        outside.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    return outside


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_work_offline(server, path):
    """With every request outside this server blocked, /docs (Swagger UI) and /redoc load their
    scripts from the server and list the operations; nothing was even asked of another host."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser, page = browser_page(sync_api, p, {"width": 1280, "height": 800})
        outside = block_the_network(page, server.url)
        failed: list = []
        page.on("requestfailed", lambda r: failed.append((r.url, r.failure)))
        page.goto(server.url + path)
        if path == "/docs":
            sync_api.expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
            ops = page.locator(".opblock-summary-path").all_inner_texts()
            assert {"/v1/solve", "/v1/solve/batch", "/v1/solve/stream", "/v1/model", "/ready"} <= set(ops), ops
        else:
            sync_api.expect(page.get_by_text("/v1/solve/batch").first).to_be_attached(timeout=30_000)
            sync_api.expect(page.locator("h2", has_text="Solve Batch").first).to_be_visible()
        browser.close()
    # ReDoc's bundle always asks for its vendor's logo; the page's Content-Security-Policy makes
    # the browser refuse it before any request is made (it never reaches the network, nor the
    # route above), and the bundle then hides the image
    blocked = [url for url, why in failed if why == "csp"]
    assert blocked == ([] if path == "/docs" else ["https://cdn.redoc.ly/redoc/logo-mini.svg"]), failed
    assert outside == [] and len(failed) == len(blocked), (outside, failed)


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_page_fixes_on_desktop_and_phone(server, tmp_path, width, height):
    """The page at a desktop and a phone size: an empty board before any puzzle, the title on
    one line, a wrong key never stored and the right one in sessionStorage only, no empty
    verdict pill after "Random test puzzle", no stale answer beside an error. Screenshots go to
    $HRM_EVAL_SCREENSHOTS (default: the test's tmp dir)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = Path(os.environ.get("HRM_EVAL_SCREENSHOTS", tmp_path))
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser, page = browser_page(sync_api, p, {"width": width, "height": height})
        outside = block_the_network(page, server.url)
        page.goto(server.url + "/")
        expect(page.locator("#error")).to_contain_text("401")
        page.fill("#apikey", "wrong-key")
        page.dispatch_event("#apikey", "change")
        expect(page.locator("#error")).to_contain_text("401")
        assert page.evaluate("[sessionStorage.length, localStorage.length]") == [0, 0]  # a wrong key is not kept
        page.fill("#apikey", KEY)
        page.dispatch_event("#apikey", "change")
        expect(page.locator("#model")).to_contain_text("sudoku6-hard-hrm/step_11250")
        assert page.evaluate("[sessionStorage.getItem('hrm-eval-key'), localStorage.length]") == [KEY, 0]
        expect(page.locator("#board .cell")).to_have_count(36)  # the empty board, before any puzzle
        assert page.locator("#board .cell.given, #board .cell.filled").count() == 0
        brand = page.locator(".brand").bounding_box()
        assert brand is not None and brand["height"] < 40, brand  # one line, also at 390 px
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
        page.screenshot(path=str(shots / f"page-{width}x{height}-empty.png"), full_page=True)

        page.click("#random")
        expect(page.locator("#summary")).to_contain_text("test puzzle #")
        assert not page.locator("#verdict").is_visible()  # no empty pill
        page.click("#solve")
        expect(page.locator("#verdict")).to_have_text(re.compile("verified"), timeout=60_000)
        page.screenshot(path=str(shots / f"page-{width}x{height}-solved.png"), full_page=True)

        page.fill("#puzzle", "12")  # a wrong puzzle after a solved one: the old answer must go
        page.click("#solve")
        expect(page.locator("#error")).to_contain_text("422")
        assert page.locator("#board .cell.filled").count() == 0 and page.locator("#steps li").count() == 0
        assert not page.locator("#verdict").is_visible() and page.locator("#summary").inner_text() == ""
        page.screenshot(path=str(shots / f"page-{width}x{height}-error.png"), full_page=True)
        browser.close()
    assert outside == []


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_page_thinks_harder(server, tmp_path, width, height):
    """ "Think harder" on a held-out puzzle the plain run gets wrong: the verdict says which
    attempt found the answer and the ACT steps all attempts took, the steps list marks where each
    new attempt starts, and nothing is wider than the screen. Screenshots as above."""
    from tests.e2e.serve.test_scaling import HARD, HARD_SOLUTION

    sync_api = pytest.importorskip("playwright.sync_api")
    shots = Path(os.environ.get("HRM_EVAL_SCREENSHOTS", tmp_path))
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser, page = browser_page(sync_api, p, {"width": width, "height": height})
        outside = block_the_network(page, server.url)
        page.goto(server.url + "/")
        page.fill("#apikey", KEY)
        page.dispatch_event("#apikey", "change")
        expect(page.locator("#model")).to_contain_text("sudoku6-hard-hrm/step_11250")
        options = page.locator("#budget option").all_inner_texts()
        assert options[0].startswith("no") and options[-1] == "yes: up to 64 ACT steps", options
        assert page.input_value("#budget") == "0"  # the server's default: no scaling
        page.fill("#puzzle", "\n".join(HARD[r * 6 : r * 6 + 6] for r in range(6)))
        page.click("#solve")  # without thinking harder: wrong
        expect(page.locator("#verdict")).to_have_text("not verified", timeout=60_000)
        page.select_option("#budget", "64")
        page.click("#solve")
        verdict = page.locator("#verdict")
        expect(verdict).to_have_text(re.compile(r"^verified · found by attempt [2-8], \d+ ACT steps$"), timeout=90_000)
        attempt, steps = map(int, re.search(r"attempt (\d+), (\d+) ACT", verdict.inner_text()).groups())  # type: ignore[union-attr]
        assert "".join(page.locator("#board .cell").all_inner_texts()) == HARD_SOLUTION
        assert page.locator("#steps li.attempt").count() == attempt - 1  # a mark where each retry starts
        assert page.locator("#steps li:not(.attempt)").count() == steps
        summary = page.locator("#summary").inner_text()
        assert f"{steps} of a budget of 64 ACT steps over {attempt} attempts" in summary, summary
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(shots / f"page-{width}x{height}-harder.png"), full_page=True)
        browser.close()
    assert outside == []


def test_page_offers_the_task_of_each_served_model(tmp_path):
    """Two models (--checkpoint twice, one per task): the task list offers both; a typed 9x9
    puzzle picks the 9x9 task and is answered by that model, a 6x6 one by the 6x6 model as ever."""
    from tests.conftest import CLASSIC_9X9, home_with_9x9
    from tests.e2e.serve.conftest import Server

    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    nine = home_with_9x9(tmp_path / "home") / "checkpoints" / "sudoku9-hrm"
    server = Server(["--checkpoint", "sudoku6-hard-hrm", "--checkpoint", str(nine)], tmp_path / "server.log")
    try:
        with sync_api.sync_playwright() as p:
            browser, page = browser_page(sync_api, p, {"width": 1280, "height": 800})
            outside = block_the_network(page, server.url)
            page.goto(server.url + "/")
            expect(page.locator("#model")).to_contain_text("sudoku9-hrm/step_1000")
            assert "sudoku6-hard-hrm/step_11250" in page.locator("#model").inner_text()
            assert page.locator("#task option").all_inner_texts() == ["sudoku6 (36 cells)", "sudoku (81 cells)"]
            page.fill("#puzzle", "\n".join(CLASSIC_9X9[r * 9 : r * 9 + 9] for r in range(9)))
            assert page.input_value("#task") == "sudoku"  # chosen by the puzzle's size
            page.click("#solve")
            expect(page.locator("#summary")).to_contain_text("answered by sudoku9-hrm/step_1000", timeout=60_000)
            expect(page.locator("#board .cell")).to_have_count(81)
            page.fill("#puzzle", ISSUE_PUZZLE)
            assert page.input_value("#task") == "sudoku6"
            page.click("#solve")
            expect(page.locator("#verdict")).to_have_text("verified", timeout=60_000)
            assert "answered by sudoku6-hard-hrm/step_11250" in page.locator("#summary").inner_text()
            assert "".join(page.locator("#board .cell").all_inner_texts()) == ISSUE_ANSWER
            page.select_option("#task", "sudoku")  # a random puzzle of the chosen task's model
            page.click("#random")
            expect(page.locator("#summary")).to_contain_text("test puzzle #")
            assert len(page.input_value("#puzzle").replace("\n", "")) == 81
            browser.close()
        assert outside == []
    finally:
        assert server.stop() == 0, server.log.read_text()

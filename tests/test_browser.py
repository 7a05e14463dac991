"""The built site, seen in a real browser: headless Chromium opens every page.

The site is built with ``mkdocs build --strict`` and served from 127.0.0.1 by an
``http.server`` thread. Chromium is driven over the Chrome DevTools Protocol through
``--remote-debugging-pipe`` (NUL-separated JSON on file descriptors 3 and 4), so the
test needs nothing beyond Debian's ``chromium`` package: no driver, no websocket
library, no download. Each page is loaded once; what the browser reported (uncaught
exceptions, console errors, every request and response) and what the page looks like
after its scripts ran (visible text, images, tables, code blocks) are recorded, and
each test below checks one kind of problem on every page. A page with a problem is
photographed; the failure message names the screenshot.

Without Chromium every test here skips, loudly (a warning and the skip reason name the
missing binary); ``.ci/run`` installs it. ``ALEXCOST_CHROMIUM`` names another binary,
``ALEXCOST_ARTIFACTS`` a folder for the screenshots (default: a pytest temporary folder).
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow  # builds the site and drives a browser

CHROMIUM = os.environ.get("ALEXCOST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = (1280, 900)
MAX_PAGE_HEIGHT = 25_000
"""Pixels at 1280 px wide: a page taller than this is a wall a reader scrolls past (the API page was 65,000)."""
MAX_MENU_HEIGHT = 70
"""The menu bar's height when its entries fit on one row (two rows are about 96 px)."""
PAGE_TIMEOUT_S = 20.0
SETTLE_S = 0.25
"""After the load event, wait until the browser has been quiet this long (late requests, the search worker)."""

ROLE = re.compile(r":(?:py:)?(?:func|meth|class|attr|mod|obj|data|exc|const|ref|doc|term|any|pep|rfc):")
"""A Sphinx role left raw in a docstring: ``:func:`x``` shows as ``:func:x`` once Markdown ate the backticks."""

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars")


class BrowserTestSkipped(UserWarning):
    """Chromium is missing, so the site was not checked in a browser."""


# -- a tiny DevTools client over a pipe -----------------------------------------------------------------

TRAMPOLINE = """import fcntl, os, sys
ends = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]
for target, fd in zip((3, 4), ends):
    os.dup2(fd, target)
os.execv(sys.argv[3], sys.argv[3:])
"""

class Chromium:
    """Headless Chromium and the DevTools Protocol over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile: Path, log: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"]
        # The protocol wants its pipe on descriptors 3 (commands in) and 4 (replies out): a small Python
        # trampoline moves them there (out of the way first, so that neither overwrites the other).
        self._log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", TRAMPOLINE, str(to_browser_r), str(from_browser_w), *args],
                                     pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.events: queue.Queue[dict] = queue.Queue()
        self._replies: dict[int, dict] = {}
        self._done = threading.Condition()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        pending = b""
        while chunk := os.read(self._from_browser, 1 << 20):
            pending += chunk
            *messages, pending = pending.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._done:
                        self._replies[message["id"]] = message
                        self._done.notify_all()
                else:
                    self.events.put(message)
        with self._done:
            self._replies[-1] = {"error": "the browser closed its pipe"}
            self._done.notify_all()

    def send(self, method: str, session: str | None = None, timeout: float = PAGE_TIMEOUT_S, **params) -> dict:
        self._next_id += 1
        ident = self._next_id
        message = {"id": ident, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._done:
            if not self._done.wait_for(lambda: ident in self._replies or -1 in self._replies, timeout):
                raise TimeoutError(f"Chromium did not answer {method} within {timeout} s")
            reply = self._replies.pop(ident, None) or self._replies[-1]
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)   # the session this test started for it, and nothing else
            self.proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()


# -- what one page showed -----------------------------------------------------------------------------

@dataclass
class Visit:
    path: str
    script_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    shrunk_images: list[str] = field(default_factory=list)
    bad_anchors: list[str] = field(default_factory=list)
    unstyled_tables: int = 0
    code_blocks: list[str] = field(default_factory=list)
    page_too_wide: bool = False
    too_wide: list[str] = field(default_factory=list)
    broken_words: list[str] = field(default_factory=list)
    flattened_lists: list[str] = field(default_factory=list)
    height: int = 0
    menu_height: int = 0
    first_table_top: int | None = None
    text: str = ""
    prose: str = ""
    images: int = 0
    screenshot: Path | None = None

    @property
    def roles(self) -> list[str]:
        return [self.prose[max(0, m.start() - 30):m.end() + 30].replace("\n", " ") for m in ROLE.finditer(self.prose)]

    @property
    def problems(self) -> bool:
        return bool(self.script_errors or self.foreign_requests or self.failed_requests or self.broken_images
                    or self.shrunk_images or self.bad_anchors or self.unstyled_tables or self.code_blocks or self.page_too_wide
                    or self.roles or "Sentinel.UNSET" in self.text or self.too_wide or self.broken_words
                    or self.flattened_lists or self.height > MAX_PAGE_HEIGHT or self.menu_height > MAX_MENU_HEIGHT)


INSPECT = r"""(() => {
  const main = document.querySelector('[role=main]') || document.body;
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                                     .map(i => i.getAttribute('src'));
  const shrunk = [...main.querySelectorAll('img')].filter(i => i.naturalWidth && i.width < 0.9 * i.naturalWidth)
                                                 .map(i => `${i.getAttribute('src')} at ${i.width}/${i.naturalWidth} px`);
  const anchors = [];
  for (const a of document.querySelectorAll('a[href^="#"]')) {
    const hash = a.getAttribute('href');
    if (hash === '#') continue;
    try { document.querySelector(decodeURI(hash)); } catch (e) { anchors.push(hash); }
  }
  const unstyled = [...main.querySelectorAll('table')].filter(t => !t.classList.contains('table')).length;
  const code = [];
  const tooWide = [];   // blocks and tables that scroll sideways: only a block marked .scrolls may
  main.querySelectorAll('pre').forEach((pre, k) => {
    const inner = pre.querySelector('code') || pre;
    const wrap = getComputedStyle(inner).whiteSpace;
    const overflow = getComputedStyle(pre).overflowX;
    const signature = pre.closest('.doc-signature');   // an API signature wraps between its parameters
    if (wrap !== 'pre' && wrap !== 'nowrap' && !signature)
      code.push(`code block ${k} wraps its lines (white-space: ${wrap})`);
    if (pre.scrollWidth > pre.clientWidth + 1 && !['auto', 'scroll'].includes(overflow))
      code.push(`code block ${k} is wider than its box and cannot scroll (overflow-x: ${overflow})`);
    if (pre.scrollWidth > pre.clientWidth + 1 && !pre.closest('.scrolls'))
      tooWide.push(`code block ${k} (${JSON.stringify(inner.textContent.trim().split('\n')[0].slice(0, 40))}) ` +
                   `scrolls ${pre.scrollWidth - pre.clientWidth} px`);
  });
  main.querySelectorAll('table').forEach((table, k) => {
    if (table.scrollWidth > table.clientWidth + 1)
      tooWide.push(`table ${k} (${JSON.stringify(table.innerText.trim().split('\n')[0].slice(0, 40))}) ` +
                   `scrolls ${table.scrollWidth - table.clientWidth} px`);
  });
  const brokenWords = [];   // a short piece of code in running text or a table's first column (an option
  main.querySelectorAll('p code, li code, td:first-child code').forEach(c => {   // name), on two lines
    const text = c.textContent;
    if (!c.closest('pre') && !/\s/.test(text) && text.length <= 40 && c.getClientRects().length > 1)
      brokenWords.push(text);
  });
  const flattened = [];   // Markdown that did not become a list or a table: its markers show in a paragraph
  main.querySelectorAll('p').forEach(p => {
    const items = p.textContent.match(/[.:;!?]\s+[-*+] [A-Z`]/g) || [];
    const rule = p.textContent.match(/\|\s*:?-{2,}:?\s*\|/);
    if (items.length >= 2 || rule) flattened.push(rule ? rule[0] : p.textContent.slice(0, 60));
  });
  const menu = document.querySelector('.navbar');
  const firstTable = main.querySelector('table');
  const wide = document.documentElement.scrollWidth > window.innerWidth + 1;
  const prose = [];   // visible text outside code: a role quoted as `:func:` is not a leftover
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (parent && !parent.closest('code, pre, script, style') && parent.getClientRects().length)
      prose.push(node.textContent);
  }
  return {text: document.body.innerText, prose: prose.join(''), images: document.images.length, broken, shrunk, anchors,
          unstyled, code, wide, tooWide, brokenWords, flattened, height: document.documentElement.scrollHeight,
          menu: menu ? Math.round(menu.getBoundingClientRect().height) : 0,
          firstTable: firstTable ? Math.round(firstTable.getBoundingClientRect().top + window.scrollY) : null};
})()"""


def site_pages(site: Path) -> list[str]:
    """URL paths of every page of the built site: ``/``, ``/quickstart/``, ..., ``/404.html``."""
    pages = []
    for html in sorted(site.rglob("*.html")):
        rel = html.relative_to(site)
        pages.append("/" + ("" if rel.parent == Path(".") else f"{rel.parent.as_posix()}/")
                     if rel.name == "index.html" else "/" + rel.as_posix())
    return pages


def visit(browser: Chromium, session: str, origin: str, path: str, shots: Path) -> Visit:
    seen = Visit(path)
    local = urlsplit(origin).netloc
    browser.send("Page.navigate", session, url=origin + path)
    loaded, quiet_since, deadline = False, None, time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            event = browser.events.get(timeout=0.05)
        except queue.Empty:
            if loaded and quiet_since is None:
                quiet_since = time.monotonic()
            if loaded and time.monotonic() - quiet_since >= SETTLE_S:
                break
            continue
        quiet_since = None
        method, params = event["method"], event.get("params", {})
        if method == "Page.loadEventFired":
            loaded = True
        elif method == "Runtime.exceptionThrown":
            d = params["exceptionDetails"]
            what = (d.get("exception") or {}).get("description") or d.get("text", "")
            seen.script_errors.append(f"{what.splitlines()[0] if what else 'exception'} "
                                      f"({d.get('url', '?')}:{d.get('lineNumber', 0) + 1})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            seen.script_errors.append(f"console.{params['type']}: {args}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            parts = urlsplit(url)
            if parts.scheme not in ("data", "blob", "about") and parts.netloc != local:
                seen.foreign_requests.append(url)
        elif method == "Network.responseReceived":
            response = params["response"]
            if response.get("status", 200) >= 400:
                seen.failed_requests.append(f"{response['status']} {response['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            seen.failed_requests.append(f"{params.get('errorText')} ({params.get('type')})")
    else:
        seen.script_errors.append(f"the page did not finish loading within {PAGE_TIMEOUT_S} s")
    found = browser.send("Runtime.evaluate", session, expression=INSPECT, returnByValue=True)["result"]["value"]
    seen.text, seen.prose, seen.images = found["text"], found["prose"], found["images"]
    seen.broken_images, seen.shrunk_images = found["broken"], found["shrunk"]
    seen.bad_anchors = found["anchors"]
    seen.unstyled_tables, seen.code_blocks, seen.page_too_wide = found["unstyled"], found["code"], found["wide"]
    seen.too_wide, seen.broken_words, seen.flattened_lists = found["tooWide"], found["brokenWords"], found["flattened"]
    seen.height, seen.menu_height, seen.first_table_top = found["height"], found["menu"], found["firstTable"]
    if seen.problems:
        shot = browser.send("Page.captureScreenshot", session, format="png")["data"]
        name = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "index"
        seen.screenshot = shots / f"{name}.png"
        seen.screenshot.write_bytes(base64.b64decode(shot))
    return seen


# -- fixtures -----------------------------------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origin(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Tab:
    browser: Chromium
    session: str
    origin: str
    shots: Path

    def viewport(self, width: int, height: int) -> None:
        self.browser.send("Emulation.setDeviceMetricsOverride", self.session, width=width, height=height,
                          deviceScaleFactor=1, mobile=False)

    def evaluate(self, expression: str):
        return self.browser.send("Runtime.evaluate", self.session, expression=expression,
                                 returnByValue=True)["result"]["value"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser's binary; without one, every test here skips, and says so loudly."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = (f"BROWSER TEST NOT RUN: no Chromium at {CHROMIUM} (apt-get install chromium; "
                  f".ci/run installs it). The site was NOT checked in a browser.")
        warnings.warn(BrowserTestSkipped(reason))
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def tab(chromium, origin, tmp_path_factory):
    """One headless Chromium tab, with the Page, Runtime and Network events on."""
    work = tmp_path_factory.mktemp("browser")
    shots = Path(os.environ["ALEXCOST_ARTIFACTS"]) if os.environ.get("ALEXCOST_ARTIFACTS") else work / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser = Chromium(chromium, work / "profile", work / "chromium.log")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            browser.send(f"{domain}.enable", session)
        opened = Tab(browser, session, origin, shots)
        opened.viewport(*VIEWPORT)
        yield opened
    except (OSError, RuntimeError, TimeoutError) as err:
        log = (work / "chromium.log").read_text(errors="replace")[-2000:]
        raise AssertionError(f"driving Chromium failed: {err}\nits log:\n{log}") from None
    finally:
        browser.close()


@pytest.fixture(scope="module")
def visits(tab, site) -> dict[str, Visit]:
    """Every page of the site, visited once."""
    return {path: visit(tab.browser, tab.session, tab.origin, path, tab.shots) for path in site_pages(site)}


def report(visits: dict[str, Visit], what: str, found) -> str:
    """One line per page with a problem: its path, what was found, and its screenshot."""
    lines = [f"{what}:"]
    for page in visits.values():
        items = found(page)
        if items:
            count = f"{len(items)}: " if isinstance(items, list) else ""
            lines.append(f"  {page.path}: {count}{items}\n    screenshot: {page.screenshot}")
    return "\n".join(lines)


# -- the checks ---------------------------------------------------------------------------------------

def test_every_page_of_the_site_was_visited(visits):
    expected = {"/", "/quickstart/", "/alexnet/", "/seed-table/", "/conventions/", "/verify/", "/cli/", "/api/"}
    assert expected <= set(visits), sorted(visits)
    for page in visits.values():
        assert page.text.strip(), f"{page.path} shows no text"


CHECKS = {
    # what the check is about: (a description for the failure message, what it finds on a page)
    "script-errors": ("uncaught script errors or console errors", lambda p: p.script_errors),
    "offline": ("requests to other hosts (a CDN, fonts, analytics: the site must work offline)",
                lambda p: p.foreign_requests),
    "missing-assets": ("failed requests (missing assets)", lambda p: p.failed_requests),
    "broken-images": ("broken images", lambda p: p.broken_images),
    "figures-full-size": ("figures shown at under 90% of their drawn width (their text would shrink below "
                          "legibility; alexcost.render.plot draws them as wide as the text column)", lambda p: p.shrunk_images),
    "anchors": ("in-page links that querySelector rejects (the theme's ScrollSpy passes each #id to it)",
                lambda p: p.bad_anchors),
    "tables-styled": ("tables without the theme's classes (base.js adds them, unless an earlier script threw)",
                      lambda p: p.unstyled_tables),
    "code-scrolls": ("code blocks that wrap their lines or spill out of their box", lambda p: p.code_blocks),
    "page-width": ("pages wider than the window", lambda p: p.page_too_wide),
    "widths": (f"code blocks or tables wider than the text column at {VIEWPORT[0]} px (they scroll sideways; a block "
               f"whose lines cannot fit, such as CSV rows, is marked .scrolls)", lambda p: p.too_wide),
    "word-breaks": ("short code (an option name, a file name) broken across two lines", lambda p: p.broken_words),
    "list-structure": ("list or table markers shown in a paragraph (a list item's block indented by fewer than 4 "
                       "spaces ends the list)", lambda p: p.flattened_lists),
    "page-height": (f"pages taller than {MAX_PAGE_HEIGHT:,} px at {VIEWPORT[0]} px",
                    lambda p: p.height if p.height > MAX_PAGE_HEIGHT else 0),
    "menu-one-row": (f"a menu bar taller than {MAX_MENU_HEIGHT} px (its entries wrap to a second row)",
                     lambda p: p.menu_height if p.menu_height > MAX_MENU_HEIGHT else 0),
    "unset-sentinel": ("click's Sentinel.UNSET shown as a value", lambda p: p.text.count("Sentinel.UNSET")),
    "docstring-roles": ("raw Sphinx roles (:func:, :meth:, :class:, :data: ...) in the visible text; "
                        "mkdocstrings shows them as typed", lambda p: p.roles),
}


@pytest.mark.parametrize("check", CHECKS)
def test_every_page(visits, check):
    what, found = CHECKS[check]
    if any(found(page) for page in visits.values()):
        pytest.fail(report(visits, what, found), pytrace=False)
    if check == "broken-images":
        assert visits["/"].images >= 1 and visits["/quickstart/"].images >= 2   # the figures are there


def test_the_landing_page_teaches_in_one_screen(visits):
    """The model card is the first thing below the introduction: its table starts within the first
    screen, and the page has the three exercises, each with a command and a folded answer."""
    home = visits["/"]
    assert home.first_table_top is not None and home.first_table_top < VIEWPORT[1] - 200, home.first_table_top
    assert "AlexNet's model card" in home.text and "Three exercises, one command each" in home.text
    assert home.text.count("Answer") >= 3


WIDEST_LINE = r"""(() => {
  const code = [...document.querySelectorAll('.language-console code')].find(c => c.textContent.includes(MARK));
  const line = code.textContent.split('\n').find(l => l.includes(MARK)).trimEnd();
  const style = getComputedStyle(code), pre = code.closest('pre'), box = getComputedStyle(pre);
  const pen = document.createElement('canvas').getContext('2d');
  pen.font = `${style.fontSize} ${style.fontFamily}`;
  const room = pre.clientWidth - parseFloat(box.paddingLeft) - parseFloat(box.paddingRight);
  return [pen.measureText(line).width, room];
})()"""


def test_verifys_table_fits_a_wide_screen(visits, tab):
    """At 1600 px, every column of verify's reconciliation (the page is about its last ones:
    difference and verdict) shows without scrolling; narrower screens scroll (checked above)."""
    tab.viewport(1600, 900)
    try:
        tab.browser.send("Page.navigate", tab.session, url=tab.origin + "/verify/")
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        while tab.evaluate("document.readyState") != "complete" and time.monotonic() < deadline:
            time.sleep(0.05)
        width, room = tab.evaluate(WIDEST_LINE.replace("MARK", json.dumps("verdict")))
    finally:
        tab.viewport(*VIEWPORT)
    assert 0 < width <= room, f"verify's table header is {width:.0f} px wide in a {room:.0f} px code block"


# -- the harness itself (no browser needed) -----------------------------------------------------------

def test_role_pattern_and_page_list(tmp_path):
    text = "Use :func:load_spec or :meth:`Network.cost`, see :py:class:Network; not 10:30:00."
    assert [m.group() for m in ROLE.finditer(text)] == [":func:", ":meth:", ":py:class:"]
    for rel in ("index.html", "cli/index.html", "404.html", "results/index.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<html></html>")
    assert site_pages(tmp_path) == ["/404.html", "/cli/", "/", "/results/"]

"""The built documentation site, opened in headless Chromium: the maths rendered and the figures loaded.

The site is what ``python -m sphinx -W -b html docs docs/_build/html`` builds (``.ci/run`` does it
before the tests). A local HTTP server serves it, and adds to each page it serves with the query
``?dlnref-check`` one script that waits for MathJax and writes what it finds into the page: the
rendered formulas (MathJax's ``mjx-container`` elements), the formulas left as raw TeX, and each
image with its ``naturalWidth`` (0 when it did not load). Chromium's ``--dump-dom`` returns the page
after its scripts ran. Without a built site or without Chromium the test skips, except under
``CI=true``, where either is a failure.
"""

import contextlib
import functools
import html
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import threading

import pytest

SITE = pathlib.Path(__file__).parent.parent / "docs" / "_build" / "html"
#: The pages opened: the paper map, one API page with maths, one lesson with its figure.
PAGES = ("paper-map.html", "api/dlnref.train.html", "auto_examples/incremental_learning.html")
CHECK = b"""<script>
window.addEventListener("load", async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const raw = [...document.querySelectorAll(".math")].filter(
    (e) => !e.querySelector("mjx-container") && /\\\\[([]/.test(e.textContent));
  const report = {
    rendered: document.querySelectorAll("mjx-container").length,
    raw: raw.map((e) => e.textContent.slice(0, 80)),
    images: [...document.querySelectorAll("img")].map((i) => [i.getAttribute("src"), i.naturalWidth]),
    scripts: [...document.querySelectorAll("script[src]")].map((s) => s.src),
  };
  const out = document.createElement("pre");
  out.id = "dlnref-check";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
});
</script>"""


def _missing(what):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: .ci/run builds the site and installs chromium before the tests)")
    pytest.skip(what)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site; a page asked for with ``?dlnref-check`` gets the checking script before ``</body>``."""

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if query != "dlnref-check":
            return super().do_GET()
        body = (SITE / path.lstrip("/")).read_bytes().replace(b"</body>", CHECK + b"</body>")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "index.html").exists():
        _missing(f"the site is not built: run python -m sphinx -W -b html docs {SITE}")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _open(url, profile):
    """The page's report after its scripts ran (Chromium's DOM dump), as a dict."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _missing("chromium is not installed (apt-get install chromium)")
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", url]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="dlnref-check"[^>]*>(.*?)</pre>', dom, flags=re.S)
    assert found, f"the checking script did not run on {url}: {dom[-500:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_maths_and_figures(page, site_url, tmp_path):
    report = _open(f"{site_url}/{page}?dlnref-check", tmp_path / "profile")
    assert report["raw"] == [], f"formulas left as raw TeX on {page}"
    assert report["rendered"] > 0, f"no formula rendered on {page}"
    for src, width in report["images"]:
        assert width > 0, f"image {src} did not load on {page}"
    if page.startswith("auto_examples/"):
        assert any("sphx_glr" in src for src, _ in report["images"]), f"the lesson's figure is missing on {page}"
    with contextlib.suppress(StopIteration):
        remote = next(s for s in report["scripts"] if not s.startswith(site_url))
        pytest.fail(f"{page} loads a script from the network: {remote}")


def test_no_page_loads_a_script_or_a_stylesheet_from_the_network():
    """Every built page, not only the three opened: scripts and stylesheets come from the site itself."""
    if not (SITE / "index.html").exists():
        _missing(f"the site is not built: run python -m sphinx -W -b html docs {SITE}")
    remote = re.compile(r'<script[^>]*\ssrc="https?://|<link[^>]*\shref="https?://[^"]*"[^>]*stylesheet'
                        r'|<link[^>]*stylesheet[^>]*\shref="https?://')
    pages = sorted(SITE.rglob("*.html"))
    assert len(pages) > 50
    assert [str(p.relative_to(SITE)) for p in pages if remote.search(p.read_text())] == []


def test_every_public_module_has_an_api_page():
    """A module added to dlnref or theory_checks gets its page in docs/api/ (and a line in docs/api.rst).

    The top-level package ``dlnref`` only re-exports names, which are documented where they are defined.
    """
    root = SITE.parent.parent.parent
    modules = set()
    for package in ("dlnref", "theory_checks"):
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            if not any(part.startswith("_") for part in parts):
                modules.add(".".join(parts))
    modules.discard("dlnref")
    pages = {page.stem for page in (root / "docs" / "api").glob("*.rst")}
    index = (root / "docs" / "api.rst").read_text()
    assert sorted(modules - pages) == [], "modules without a page in docs/api/"
    assert sorted(pages - modules) == [], "pages in docs/api/ of modules that are gone"
    assert sorted(m for m in modules if f"   {m}\n" not in index) == [], "modules missing from docs/api.rst"

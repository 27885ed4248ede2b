"""A PNG of an explorer page (`topovae explore page`) as a browser shows it, for the docs.

    PYTHONPATH=. python benchmarks/page_screenshot.py out/explorer.html docs/images/explorer.png

Opens the page in the system's headless Chromium through Playwright (the `dev` extra; no
browser download), waits for its script, and saves the viewport (1200 x 800 by default).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page")
    ap.add_argument("png")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=800)
    a = ap.parse_args()
    chromium = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    if chromium is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": a.width, "height": a.height})
        page.goto(Path(a.page).resolve().as_uri())
        page.wait_for_function("document.body && document.body.dataset.ready === '1'")
        page.screenshot(path=a.png)
        browser.close()
    print(f"wrote {a.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

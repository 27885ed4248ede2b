"""The latent explorer page: its data, and the page itself driven in a real headless Chromium.

The browser is the system's Chromium, driven by Playwright (a `dev` extra; no browser download:
it launches the binary found on PATH): real mouse and key input goes through the browser's input
pipeline, so the page's pointer and key handlers run as they would for a person. The browser tests
are skipped only when no Chromium binary is found (CI installs one: see .ci/run).
"""

import base64
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import TINY
from PIL import Image

from topovae.models import load
from topovae.solvers import preset
from topovae.workflows import WorkflowError, score
from topovae.workflows._page import (
    DEFAULT_VOLFRACS,
    design_png,
    explorer_data,
    score_text,
    write_explorer_page,
)

CHROMIUM = next(
    (
        p
        for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome"))
        if p
    ),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (apt-get install chromium; .ci/run installs it)",
)
GRID = 5
SPAN = 30.0  # the tiny model barely feels z: a wide plane, so that its tiles differ visibly
VIEW = (1200, 800)


@pytest.fixture(scope="module")
def mbb():
    return preset("mbb", TINY, TINY)


@pytest.fixture(scope="module")
def cvae_data(cvae, mbb):
    return explorer_data(cvae, mbb, grid=GRID, span=SPAN)


def pixels(density: np.ndarray) -> np.ndarray:
    """The grey levels the page draws a design with: solid black, void white."""
    return np.round(255.0 * (1.0 - np.clip(density, 0.0, 1.0)))


def data_uri_pixels(uri: str) -> np.ndarray:
    head, b64 = uri.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"), np.float64)


# -- explorer_data ----------------------------------------------------------------------------
def test_explorer_data_of_a_cvae(cvae, mbb, cvae_data):
    d = cvae_data
    assert d["designs"].shape == (GRID, GRID, TINY, TINY)
    np.testing.assert_allclose(d["values"], np.linspace(-SPAN, SPAN, GRID))
    assert (d["grid"], d["dims"], d["kind"], d["problem"]) == (GRID, (0, 1), "cvae", "mbb")
    for key in ("compliance", "vfe", "floating", "greyness", "ce"):
        assert d["scores"][key].shape == (GRID, GRID)
    assert np.all(np.isfinite(d["scores"]["compliance"])) and np.all(np.isnan(d["scores"]["ce"]))
    # projected: every design of the plane meets the volume fraction
    np.testing.assert_allclose(d["designs"].mean(axis=(2, 3)), mbb.volfrac, atol=1e-3)
    # cell (i, j) is u[0] = values[i], u[1] = values[j]: the same as a direct decode
    from topovae.workflows import LatentDecoder

    u = np.zeros((1, cvae.config.latent_dim), np.float32)
    u[0, :2] = d["values"][4], d["values"][1]
    np.testing.assert_allclose(
        d["designs"][4, 1], LatentDecoder(cvae, mbb).numpy(u, project=True)[0], atol=1e-6
    )
    # the sweep: u = 0 under each volume fraction, projected onto it
    s = d["sweep"]
    np.testing.assert_allclose(s["volfracs"], DEFAULT_VOLFRACS)
    assert len(s["volfracs"]) == 7 and s["volfracs"][0] == 0.3 and s["volfracs"][-1] == 0.6
    assert s["designs"].shape == (7, TINY, TINY)
    np.testing.assert_allclose(s["designs"].mean(axis=(1, 2)), s["volfracs"], atol=1e-3)
    np.testing.assert_allclose(s["scores"]["volume"], s["volfracs"], atol=1e-3)
    k = int(np.argmin(np.abs(s["volfracs"] - mbb.volfrac)))  # 0.5: the centre cell's design
    np.testing.assert_allclose(s["designs"][k], d["designs"][GRID // 2, GRID // 2], atol=1e-6)
    # the plane's spread: distinct designs, counted pairwise from the tiles' solids
    from topovae.solvers import DISTINCT, pairwise_distances, solid

    tiles = d["designs"].reshape(GRID * GRID, TINY, TINY)
    order = np.argsort(d["scores"]["compliance"].ravel(), kind="stable")
    dist = pairwise_distances(np.stack([solid(x, mbb) for x in tiles[order]]))
    kept = []
    for i in range(len(order)):
        if all(dist[i, j] >= DISTINCT for j in kept):
            kept.append(i)
    assert d["distinct"] == len(kept) >= 2  # a span of 30 reaches other designs


def test_explorer_data_options_and_reference(cvae, mbb):
    ref = np.full((TINY, TINY), mbb.volfrac)
    d = explorer_data(cvae, mbb, dims=(3, 1), grid=2, span=1.0, volfracs=[0.4, 0.45], reference=ref)
    assert d["designs"].shape == (2, 2, TINY, TINY) and d["dims"] == (3, 1)
    assert np.all(np.isfinite(d["scores"]["ce"]))
    np.testing.assert_allclose(d["sweep"]["designs"].mean(axis=(1, 2)), [0.4, 0.45], atol=1e-3)
    assert "CE=" in score_text(d["scores"], (0, 0))


def test_explorer_data_of_a_vae_needs_no_problem(tiny_checkpoints, mbb):
    vae = load(tiny_checkpoints["vae"])
    d = explorer_data(vae, grid=3)
    assert d["designs"].shape == (3, 3, TINY, TINY) and d["sweep"] is None
    assert set(d["scores"]) == {"volume", "greyness"} and d["problem"] is None
    np.testing.assert_allclose(d["scores"]["volume"], d["designs"].mean(axis=(2, 3)))
    assert re.fullmatch(r"VF=\d\.\d{3} Mnd=\d\.\d\d", score_text(d["scores"], (1, 2)))
    # with a problem it is projected and judged, but there is no sweep (not conditional)
    d = explorer_data(vae, mbb, grid=2)
    assert d["sweep"] is None and d["scores"]["compliance"].shape == (2, 2)
    np.testing.assert_allclose(d["designs"].mean(axis=(2, 3)), mbb.volfrac, atol=1e-3)


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"dims": (0, 0)}, "dims must be two different"),
        ({"dims": (0, 4)}, "in [0, 3]"),
        ({"grid": 1}, "--grid must be an integer in 2..64"),
        ({"span": 0.0}, "--span must be a number in (0, 1000)"),
        ({"volfracs": [0.5, 1.2]}, "volfracs must be numbers in (0, 1)"),
    ],
)
def test_explorer_data_refuses_bad_options(cvae, mbb, kw, fragment):
    with pytest.raises(WorkflowError, match=re.escape(fragment)):
        explorer_data(cvae, mbb, **kw)


def test_explorer_data_of_a_cvae_needs_a_problem(cvae):
    with pytest.raises(WorkflowError, match="give a problem"):
        explorer_data(cvae)


def test_the_page_is_self_contained_escaped_and_written_atomically(cvae_data, tmp_path):
    title = '<script>alert("x")</script> & co'
    out = write_explorer_page(cvae_data, tmp_path / "page.html", title=title)
    assert out == tmp_path / "page.html" and sorted(os.listdir(tmp_path)) == ["page.html"]
    page = out.read_text()
    assert (
        title not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    )
    assert len(re.findall(r"<script[ >]", page)) == 2  # the data and the inline script only
    assert not re.search(r"\b(?:src|href)\s*=\s*[\"']?(?!data:)[a-z]+:", page, re.I)
    assert not re.search(r"https?://|<link|@import|url\(", page)
    for ident in ("pad", "marker", "design", "score", "ux", "uy", "vf", "vf-design", "vf-score"):
        assert f'id="{ident}"' in page
    blob = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    payload = json.loads(blob.group(1))
    assert len(payload["tiles"]) == GRID * GRID and len(payload["sweep"]["tiles"]) == 7
    # an unconditional model's page has no sweep
    vae_like = {**cvae_data, "sweep": None, "kind": "vae"}
    assert 'id="vf"' not in write_explorer_page(vae_like, tmp_path / "vae.html").read_text()


# -- the page in a browser --------------------------------------------------------------------
class Chromium:
    """The system's headless Chromium driven by Playwright (the `dev` extra), one page: real
    mouse and key input through the browser's input pipeline, so the page's pointer and key
    handlers run as they would for a person."""

    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--force-color-profile=srgb",
                  "--hide-scrollbars"],
        )  # fmt: skip
        self.page, self._errors = None, []

    def open(self, url: str) -> None:
        """A fresh tab on ``url``, once the page's script has run (body data-ready="1")."""
        if self.page is not None:
            self.page.close()
        self.page = self._browser.new_page(
            viewport={"width": VIEW[0], "height": VIEW[1]}, device_scale_factor=1
        )
        self._errors = []
        self.page.on("pageerror", lambda error: self._errors.append(error))
        self.page.goto(url)
        self.page.wait_for_function("document.body && document.body.dataset.ready === '1'")

    def js(self, expression: str):
        return self.page.evaluate(expression)

    def mouse(self, kind: str, x: float, y: float) -> None:
        m = self.page.mouse
        if kind == "mousePressed":
            m.move(x, y)
            m.down()
        elif kind == "mouseMoved":
            m.move(x, y)
        else:
            m.move(x, y)
            m.up()

    def key(self, key: str) -> None:
        self.page.keyboard.press(key)

    def state(self) -> dict:
        """What the page shows now, once the shown images are decoded and painted."""
        return self.js(
            """(async () => {
              const $ = (id) => document.getElementById(id);
              for (const id of ["design", "vf-design"]) if ($(id)) await $(id).decode();
              await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
              const box = (e) => {
                const b = e.getBoundingClientRect();
                return [b.left + e.clientLeft, b.top + e.clientTop, e.clientWidth, e.clientHeight];
              };
              return {cell: $("design").dataset.cell, src: $("design").src,
                      score: $("score").textContent, u: $("u").textContent,
                      ux: $("ux").value, uy: $("uy").value,
                      marker: box($("marker")), pad: box($("pad")), design: box($("design")),
                      vf: $("vf") && $("vf").value,
                      vfIndex: $("vf-design") && $("vf-design").dataset.index,
                      vfSrc: $("vf-design") && $("vf-design").src,
                      vfBox: $("vf-design") && box($("vf-design")),
                      vfScore: $("vf-score") && $("vf-score").textContent};
            })()"""
        )

    def screenshot(self, clip=None) -> np.ndarray:
        kw = {}
        if clip is not None:
            x, y, w, h = clip
            kw["clip"] = {"x": x, "y": y, "width": w, "height": h}
        png = self.page.screenshot(**kw)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float64)

    def errors(self) -> list:
        return list(self._errors)

    def close(self) -> None:
        self._browser.close()
        self._playwright.stop()


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("playwright", reason="the browser tests drive Chromium by Playwright")
    b = Chromium()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def page(cvae_data, tmp_path_factory):
    return write_explorer_page(cvae_data, tmp_path_factory.mktemp("page") / "explorer.html")


def cell_pixels(shot: np.ndarray, n: int) -> np.ndarray:
    """The screenshot of a design image drawn n x n (pixelated) down to n x n grey levels: the
    mean of the middle half of each element's square."""
    h, w = shot.shape[:2]
    grey = shot.mean(axis=2)
    out = np.empty((n, n))
    for r in range(n):
        for c in range(n):
            y0, y1 = (r + 0.25) * h / n, (r + 0.75) * h / n
            x0, x1 = (c + 0.25) * w / n, (c + 0.75) * w / n
            out[r, c] = grey[round(y0) : round(y1), round(x0) : round(x1)].mean()
    return out


@needs_chromium
def test_the_page_follows_a_drag_and_shows_that_tiles_design_and_score(
    browser, page, cvae_data, mbb
):
    d, g = cvae_data, GRID
    c = g // 2
    browser.open(page.as_uri())
    # (a) it opens on the centre cell, u = 0
    s = browser.state()
    assert s["cell"] == f"{c},{c}" and (s["ux"], s["uy"]) == (str(c), str(c))
    assert s["src"] == design_png(d["designs"][c, c])
    assert s["score"] == score_text(d["scores"], (c, c)) and "u[0] = +0.00" in s["u"]

    # (b) a drag from the centre to the top-right corner, through the browser's input pipeline
    x, y, w, h = s["pad"]
    cell = w / g  # pad pixels per cell

    def px(i, j):  # the centre of cell (i, j); j counts upwards
        return x + (i + 0.5) * cell, y + (g - 1 - j + 0.5) * cell

    browser.mouse("mousePressed", *px(c, c))
    for t in np.linspace(0, 1, 6)[1:]:
        browser.mouse("mouseMoved", x + w / 2 + t * (w / 2 - 2), y + h / 2 - t * (h / 2 - 2))
    mid = browser.state()  # still pressed: the design follows the pointer at once
    assert mid["cell"] == f"{g - 1},{g - 1}"
    browser.mouse("mouseMoved", *px(1, g - 2))  # on through another cell, then back
    assert browser.state()["cell"] == f"1,{g - 2}"
    browser.mouse("mouseMoved", x + w - 2, y + 2)
    browser.mouse("mouseReleased", x + w - 2, y + 2)
    s = browser.state()
    corner = d["designs"][g - 1, g - 1]
    assert s["cell"] == f"{g - 1},{g - 1}" and (s["ux"], s["uy"]) == (str(g - 1), str(g - 1))
    assert s["src"] == design_png(corner)
    np.testing.assert_array_equal(data_uri_pixels(s["src"]), pixels(corner))
    judged = score(corner, mbb)  # judged here again, not read from the page's data
    assert s["score"] == score_text(d["scores"], (g - 1, g - 1))
    assert s["score"].startswith(f"C={judged['compliance'][0]:.4g} VF={judged['volume'][0]:.3f}")
    assert f"floating={100 * judged['floating'][0]:.0f}%" in s["score"]
    assert "u[0] = +30.00, u[1] = +30.00" in s["u"]
    mx, my, mw, mh = s["marker"]  # the marker sits on the corner cell
    assert abs(mx + mw / 2 - px(g - 1, g - 1)[0]) < 2 and abs(my + mh / 2 - px(g - 1, g - 1)[1]) < 2

    # (c) the screenshot of the design region is that tile, not another one
    got = cell_pixels(browser.screenshot(s["design"]), TINY)
    err = np.abs(got - pixels(corner)).mean()
    others = [
        np.abs(got - pixels(d["designs"][i, j])).mean()
        for i, j in ((c, c), (0, 0), (0, g - 1), (g - 1, 0))
    ]
    assert err < 1.0, err
    assert min(others) > max(4 * err, 3.0), (err, others)

    # arrow keys move along the two directions
    browser.key("ArrowLeft")
    browser.key("ArrowDown")
    browser.key("ArrowDown")
    s = browser.state()
    assert s["cell"] == f"{g - 2},{g - 3}" and s["score"] == score_text(d["scores"], (g - 2, g - 3))
    browser.key("ArrowRight")
    browser.key("ArrowRight")  # clamped at the edge
    assert browser.state()["cell"] == f"{g - 1},{g - 3}"
    assert not browser.errors()


@needs_chromium
def test_the_sliders_and_the_address_pick_the_point_and_the_volume_fraction(
    browser, page, cvae_data
):
    d, g, sw = cvae_data, GRID, cvae_data["sweep"]
    browser.open(page.as_uri() + "#u=29,-31&vf=1")  # the nearest cell: u = (30, -30)
    s = browser.state()
    assert s["cell"] == f"{g - 1},0" and s["src"] == design_png(d["designs"][g - 1, 0])
    assert s["vfIndex"] == "1" and s["vfSrc"] == design_png(sw["designs"][1])
    assert s["vfScore"] == score_text(sw["scores"], 1)
    browser.js(
        "() => { for (const [id, v] of [['ux', 1], ['uy', 3], ['vf', 6]]) { const e ="
        " document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input')); } }"
    )
    s = browser.state()
    assert s["cell"] == "1,3" and s["score"] == score_text(d["scores"], (1, 3))
    assert s["vfIndex"] == "6" and s["vfSrc"] == design_png(sw["designs"][6])
    np.testing.assert_allclose(data_uri_pixels(s["vfSrc"]).mean(), 255 * (1 - 0.6), atol=1.0)
    assert "VF=0.600" in s["vfScore"]
    got = cell_pixels(browser.screenshot(s["vfBox"]), TINY)
    err = np.abs(got - pixels(sw["designs"][6])).mean()
    assert err < 1.0 and np.abs(got - pixels(sw["designs"][0])).mean() > max(4 * err, 3.0)
    # without an address the sweep starts at the problem's volume fraction
    browser.open(page.as_uri())
    k = int(np.argmin(np.abs(sw["volfracs"] - d["volfrac"])))
    assert browser.state()["vfIndex"] == str(k)
    assert not browser.errors()

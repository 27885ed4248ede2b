"""An interactive explorer of a model's latent plane as one self-contained HTML page.

    from topovae.workflows._page import explorer_data, write_explorer_page
    data = explorer_data(model, problem, dims=(0, 1), grid=9, span=3.0)
    write_explorer_page(data, "explorer.html", title="cvae on mbb")

The page needs no server and no network (inline script and style, designs as PNG data URIs):
dragging over the square pad (or the arrow keys, or the two sliders) shows at once the decoded
design of the nearest point of the plane and its score; a slider runs through the designs of
u = 0 under other volume fractions (conditional models). ``#u=a,b&vf=k`` in the address picks the
first point and sweep step.

Cell (i, j) of the plane is the whitened latent vector u with u[dims[0]] = values[i] (left to
right on the pad), u[dims[1]] = values[j] (bottom to top) and the other coordinates 0.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from .._checks import output_file
from ..models._config import check_model
from ..solvers import Problem, distinct
from ._diversity import solids
from ._judge import ce_text, score
from ._latent import LatentDecoder, WorkflowError

DEFAULT_VOLFRACS = tuple(np.round(np.linspace(0.3, 0.6, 7), 3))


def _scores(designs: np.ndarray, problem: Problem | None, reference=None) -> dict:
    """The judge's score of each design (B, H, W); without a problem volume and greyness."""
    if problem is not None:
        return score(designs, problem, reference)
    rho = np.clip(designs, 0.0, 1.0)
    return {
        "volume": rho.mean(axis=(1, 2)),
        "greyness": 4.0 * np.mean(rho * (1.0 - rho), axis=(1, 2)),
    }


def explorer_data(
    model,
    problem: Problem | None = None,
    dims: tuple[int, int] = (0, 1),
    grid: int = 9,
    span: float = 3.0,
    volfracs=None,
    device=None,
    reference: np.ndarray | None = None,
) -> dict:
    """Designs and scores of a ``grid`` x ``grid`` plane of whitened latent vectors, and of a
    volume-fraction sweep of u = 0; see the module docstring for the layout.

    Returns a dict: ``designs`` (grid, grid, H, W) projected to the problem's volume fraction,
    ``scores`` (key -> (grid, grid); the judge's keys with a problem, else ``volume`` and
    ``greyness``), ``values`` (grid,), ``dims``, ``span``, ``grid``, ``kind``, ``problem`` (its
    name or None), ``volfrac`` (its volume fraction or None) and ``sweep``: None for an
    unconditional model or without a problem, else
    {"volfracs": (n,), "designs": (n, H, W), "scores": key -> (n,)}, each design decoded under
    ``problem.replace(volfrac=v)`` and judged on it; ``distinct``: how many distinct designs the
    plane holds (1 - IoU >= 0.15 of the binarised solids; None without a problem).
    ``reference``: a SIMP design (H, W) of the problem, giving the plane's compliance errors
    ``ce`` (not the sweep's: other volumes).
    """
    d = check_model(model).config.latent_dim
    if (
        len(dims) != 2
        or any(isinstance(x, bool) or not isinstance(x, int | np.integer) for x in dims)
        or not all(0 <= x < d for x in dims)
        or dims[0] == dims[1]
    ):
        raise WorkflowError(
            f"dims must be two different latent dimensions in [0, {d - 1}], got {tuple(dims)}"
        )
    if isinstance(grid, bool) or not isinstance(grid, int | np.integer) or not 2 <= grid <= 64:
        raise WorkflowError(f"--grid must be an integer in 2..64, got {grid!r}")
    if not isinstance(span, int | float | np.floating) or not 0 < span < 1000:
        raise WorkflowError(f"--span must be a number in (0, 1000), got {span!r}")
    dims = (int(dims[0]), int(dims[1]))
    grid = int(grid)
    dec = LatentDecoder(model, problem, device)
    values = np.linspace(-span, span, grid)
    u = np.zeros((grid, grid, d), np.float32)
    u[:, :, dims[0]] = values[:, None]
    u[:, :, dims[1]] = values[None, :]
    designs = dec.numpy(torch.from_numpy(u.reshape(grid * grid, d)), project=True)
    shape = designs.shape[1:]
    scores = _scores(designs, problem, reference)
    scores = {k: np.asarray(v).reshape(grid, grid) for k, v in scores.items()}

    sweep = None
    if model.config.conditional and problem is not None:
        vfs = np.asarray(DEFAULT_VOLFRACS if volfracs is None else volfracs, np.float64)
        if vfs.ndim != 1 or not len(vfs) or not np.all((vfs > 0) & (vfs < 1)):
            raise WorkflowError(f"volfracs must be numbers in (0, 1), got {volfracs!r}")
        zero = torch.zeros(1, d)
        sd, ss = [], []
        for v in vfs:
            p = problem.replace(volfrac=float(v))
            x = LatentDecoder(model, p, device).numpy(zero, project=True)
            sd.append(x[0])
            ss.append(score(x, p))
        sweep = {
            "volfracs": vfs,
            "designs": np.stack(sd),
            "scores": {k: np.concatenate([s[k] for s in ss]) for k in ss[0]},
        }
    spread = None
    if problem is not None:  # distinct designs of the plane, stiffest first (the one definition)
        flat = designs.reshape(grid * grid, *shape)
        order = np.argsort(np.asarray(scores["compliance"]).ravel(), kind="stable")
        spread = len(distinct(solids(flat[order], problem)))
    return {
        "kind": model.config.kind,
        "problem": None if problem is None else problem.name,
        "distinct": spread,
        "volfrac": None if problem is None else float(problem.volfrac),
        "shape": tuple(int(n) for n in shape),
        "dims": dims,
        "span": float(span),
        "grid": grid,
        "values": values,
        "designs": designs.reshape(grid, grid, *shape),
        "scores": scores,
        "sweep": sweep,
    }


def score_text(scores: dict, k) -> str:
    """The page's one-line score of design ``k`` (an index into every array of ``scores``)."""
    vf, mnd = float(scores["volume"][k]), float(scores["greyness"][k])
    if "compliance" not in scores:
        return f"VF={vf:.3f} Mnd={mnd:.2f}"
    parts = [f"C={float(scores['compliance'][k]):.4g}"]
    ce = float(scores["ce"][k])
    if np.isfinite(ce):
        parts.append(f"CE={ce_text(ce)}")
    parts += [
        f"VF={vf:.3f}",
        f"VFE={100 * float(scores['vfe'][k]):.1f}%",
        f"floating={100 * float(scores['floating'][k]):.0f}%",
        f"Mnd={mnd:.2f}",
    ]
    return " ".join(parts)


def design_png(density: np.ndarray) -> str:
    """A design (H, W) as a grey PNG data URI, one pixel per element: solid black, void white
    (pixel value round(255 (1 - rho)))."""
    from PIL import Image  # a dependency of matplotlib

    pixels = np.round(255.0 * (1.0 - np.clip(density, 0.0, 1.0))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "L").save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _json(obj) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:18px;margin:0 0 4px}
.sub{color:#666;margin:0 0 12px}
.row{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
.panel{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px}
#pad{position:relative;width:360px;height:360px;border:1px solid #888;cursor:crosshair;
 touch-action:none;user-select:none;outline:none;display:grid;background:#fff}
#pad:focus{box-shadow:0 0 0 2px #4a90d9}
#pad img{width:100%;height:100%;object-fit:contain;image-rendering:pixelated;opacity:.55;
 pointer-events:none;display:block}
#marker{position:absolute;width:18px;height:18px;margin:-11px 0 0 -11px;border:2px solid #d33;
 border-radius:50%;pointer-events:none;box-shadow:0 0 0 1px #fff}
.design{width:300px;image-rendering:pixelated;border:1px solid #888;display:block;margin-top:8px;
 background:#fff}
.score{font-family:ui-monospace,monospace;margin-top:6px;min-height:2.8em;max-width:300px}
label{display:block;margin-top:8px}
input[type=range]{width:100%;margin:0}
.side{width:300px}
"""

_JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("data").textContent);
  var G = D.grid;
  function $(id) { return document.getElementById(id); }
  var pad = $("pad"), marker = $("marker"), img = $("design"), txt = $("score");
  var ux = $("ux"), uy = $("uy"), uval = $("u");
  var cur = [Math.floor(G / 2), Math.floor(G / 2)], vfk = 0, dragging = false;
  function clamp(i, n) { return Math.max(0, Math.min(n - 1, i)); }
  function num(v) { return (v >= 0 ? "+" : "") + v.toFixed(2); }
  for (var r = 0; r < G; r++) {       // the mosaic: row r from the top is j = G - 1 - r
    for (var i = 0; i < G; i++) {
      var t = document.createElement("img");
      t.src = D.tiles[i * G + (G - 1 - r)];
      t.alt = "";
      pad.insertBefore(t, marker);
    }
  }
  pad.style.gridTemplateColumns = pad.style.gridTemplateRows = "repeat(" + G + ", 1fr)";
  function hash() {
    try {
      var h = "#u=" + D.values[cur[0]] + "," + D.values[cur[1]];
      if (D.sweep) h += "&vf=" + vfk;
      history.replaceState(null, "", h);
    } catch (e) { /* some file:// contexts refuse */ }
  }
  function show(i, j) {
    i = clamp(i, G); j = clamp(j, G);
    cur = [i, j];
    var k = i * G + j;
    img.src = D.tiles[k];
    img.dataset.cell = i + "," + j;
    txt.textContent = D.text[k];
    marker.style.left = ((i + 0.5) / G * 100) + "%";
    marker.style.top = ((G - 1 - j + 0.5) / G * 100) + "%";
    ux.value = i; uy.value = j;
    uval.textContent = "u[" + D.dims[0] + "] = " + num(D.values[i]) + ", u[" + D.dims[1] +
      "] = " + num(D.values[j]);
    hash();
  }
  function at(ev) {
    var b = pad.getBoundingClientRect();
    show(Math.floor((ev.clientX - b.left) / b.width * G),
         G - 1 - Math.floor((ev.clientY - b.top) / b.height * G));
  }
  pad.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0) return;
    dragging = true;
    try { pad.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic pointer */ }
    pad.focus();
    at(ev);
    ev.preventDefault();
  });
  pad.addEventListener("pointermove", function (ev) { if (dragging) at(ev); });
  pad.addEventListener("pointerup", function (ev) { if (dragging) at(ev); dragging = false; });
  pad.addEventListener("pointercancel", function () { dragging = false; });
  var STEPS = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1]};
  document.addEventListener("keydown", function (ev) {
    var s = STEPS[ev.key];
    if (!s || (ev.target && ev.target.tagName === "INPUT")) return;
    ev.preventDefault();
    show(cur[0] + s[0], cur[1] + s[1]);
  });
  ux.addEventListener("input", function () { show(+ux.value, cur[1]); });
  uy.addEventListener("input", function () { show(cur[0], +uy.value); });
  function showVf(k) {
    var S = D.sweep;
    vfk = clamp(k, S.tiles.length);
    var v = $("vf-design");
    v.src = S.tiles[vfk];
    v.dataset.index = String(vfk);
    $("vf").value = vfk;
    $("vf-value").textContent = "VF* = " + S.volfracs[vfk].toFixed(3);
    $("vf-score").textContent = S.text[vfk];
    hash();
  }
  if (D.sweep) $("vf").addEventListener("input", function () { showVf(+$("vf").value); });
  function nearest(v) { return Math.round((v + D.span) / (2 * D.span) * (G - 1)); }
  var q = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    var p = kv.split("=");
    if (p.length === 2) q[p[0]] = decodeURIComponent(p[1]);
  });
  if (D.sweep) {
    var k0 = parseInt(q.vf, 10);
    if (!isFinite(k0)) {  // the step closest to the problem's own volume fraction
      k0 = 0;
      D.sweep.volfracs.forEach(function (v, k) {
        if (Math.abs(v - D.volfrac) < Math.abs(D.sweep.volfracs[k0] - D.volfrac)) k0 = k;
      });
    }
    showVf(k0);
  }
  var u0 = (q.u || "").split(",").map(parseFloat);
  if (u0.length === 2 && isFinite(u0[0]) && isFinite(u0[1])) show(nearest(u0[0]), nearest(u0[1]));
  else show(cur[0], cur[1]);
  document.body.dataset.ready = "1";
})();
"""


def write_explorer_page(
    data: dict, out: str | os.PathLike, title: str = "topovae latent explorer"
) -> Path:
    """Write ``data`` (from `explorer_data`) as one self-contained HTML page; returns its path.

    Ids for scripts and tests: ``pad`` (the plane; ``marker`` on it), ``design`` (the current
    design, ``data-cell="i,j"``), ``score``, ``u``, sliders ``ux`` and ``uy``; the sweep:
    ``vf`` (slider), ``vf-design`` (``data-index``), ``vf-score``, ``vf-value``; the sweep
    starts at the step nearest the problem's volume fraction."""
    out = output_file(out, "out", WorkflowError)
    keys = {"grid", "values", "designs", "scores", "dims"}
    if not isinstance(data, dict) or not keys <= data.keys():
        raise WorkflowError("data must be the dict explorer_data returns")
    grid, values = int(data["grid"]), np.asarray(data["values"], np.float64)
    designs = np.asarray(data["designs"])
    scores = data["scores"]
    idx = [(i, j) for i in range(grid) for j in range(grid)]  # flat k = i * grid + j
    payload = {
        "grid": grid,
        "dims": [int(x) for x in data["dims"]],
        "span": float(data["span"]),
        "values": [round(float(v), 6) for v in values],
        "tiles": [design_png(designs[i, j]) for i, j in idx],
        "text": [score_text(scores, ij) for ij in idx],
        "sweep": None,
    }
    sweep = data.get("sweep")
    if sweep is not None:
        vfs = [float(v) for v in sweep["volfracs"]]
        payload["sweep"] = {
            "volfracs": vfs,
            "tiles": [design_png(x) for x in sweep["designs"]],
            "text": [score_text(sweep["scores"], k) for k in range(len(vfs))],
        }
        vf = data.get("volfrac")
        payload["volfrac"] = float(vfs[len(vfs) // 2] if vf is None else vf)
    d0, d1 = payload["dims"]
    h, w = data.get("shape", designs.shape[2:])
    about = f"{data.get('kind', 'model')} · {w}x{h} designs"
    if data.get("problem"):
        about += f" · problem {data['problem']}"
    about += f" · plane of u[{d0}] and u[{d1}] in [-{data['span']:g}, {data['span']:g}]"
    about += f", {grid}x{grid} points, other coordinates 0"
    if data.get("distinct") is not None:
        about += f"; {data['distinct']} distinct designs (1 - IoU >= 0.15)"
    n = grid - 1
    sweep_html = ""
    if sweep is not None:
        sweep_html = f"""
<div class="panel side" id="sweep">
<b>Volume fraction sweep</b> of u = 0
<label for="vf" id="vf-value">VF*</label>
<input type="range" id="vf" min="0" max="{len(payload["sweep"]["tiles"]) - 1}" step="1" value="0">
<img id="vf-design" class="design" alt="design of u = 0 at this volume fraction" data-index="0">
<div id="vf-score" class="score"></div>
</div>"""
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="sub">{html.escape(about)}. Drag over the pad, or use the arrow keys or sliders.</p>
<div class="row">
<div class="panel">
<div id="pad" tabindex="0" role="application" aria-label="latent plane">
<div id="marker"></div></div>
<label for="ux">u[{d0}]</label><input type="range" id="ux" min="0" max="{n}" step="1">
<label for="uy">u[{d1}]</label><input type="range" id="uy" min="0" max="{n}" step="1">
<div id="u" class="score"></div>
</div>
<div class="panel side">
<b>Design</b> nearest the marker
<img id="design" class="design" alt="decoded design" data-cell="">
<div id="score" class="score"></div>
</div>{sweep_html}
</div>
<script type="application/json" id="data">{_json(payload)}</script>
<script>{_JS}</script>
</body>
</html>
"""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out

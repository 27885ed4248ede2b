"""Load-path connection of decoded designs (`workflows._connect`), on hand-made logits whose
connectivity is known, judged by the judge's own binarisation, connectivity and FE."""

import numpy as np
import pytest
import torch
from conftest import TINY

from topovae.solvers import preset
from topovae.solvers._connectivity import load_carrying
from topovae.workflows import evaluate, score
from topovae.workflows._judge import binarize
from topovae.workflows._latent import LatentDecoder

# a 12x12 cantilever: supports on the left edge, the load at the middle node of the right edge,
# which element rows 5 and 6 touch
BAR = np.zeros((TINY, TINY), bool)
BAR[5:7] = True


def _problem(n_solid: int, **changes):
    p = preset("cantilever", TINY, TINY, n_solid / TINY**2)
    return p.replace(**changes) if changes else p


def _logits(strong: np.ndarray, grey: np.ndarray | None = None) -> np.ndarray:
    """+4 on ``strong``, 0 on ``grey``, and below -4 elsewhere (distinct, seeded)."""
    rng = np.random.default_rng(0)
    lg = -4.0 - rng.random((TINY, TINY))
    if grey is not None:
        lg[grey] = 0.0
    lg[strong] = 4.0
    return lg


def _decoders(cvae, problem):
    return LatentDecoder(cvae, problem), LatentDecoder(cvae, problem, connect=False)


def _projected(dec, lg):
    return dec._placement(torch.from_numpy(lg[None]), True)[0].numpy()


def test_a_connected_design_is_returned_as_projected(cvae):
    p = _problem(int(BAR.sum()))
    dec, _ = _decoders(cvae, p)
    lg = _logits(BAR)
    out = dec.connected(lg[None])[0]
    np.testing.assert_array_equal(out, _projected(dec, lg))
    assert score(out[None], p)["floating"][0] == 0


def test_a_floating_island_is_joined_along_its_grey_member(cvae):
    island = np.zeros_like(BAR)
    island[1:3, 5:7] = True
    bridge = np.zeros_like(BAR)
    bridge[3:5, 5] = True  # grey, below the threshold: binarised, the island floats
    p = _problem(int(BAR.sum() + island.sum()))
    dec, _ = _decoders(cvae, p)
    lg = _logits(BAR | island, bridge)
    before = binarize(_projected(dec, lg), p).astype(bool)
    assert score(before[None].astype(float), p)["floating"][0] > 0
    out = dec.connected(lg[None])[0]
    after = binarize(out, p).astype(bool)
    assert score(out[None], p)["floating"][0] == 0
    assert after[bridge].all()  # the path is the grey member, not the cheaper-looking background
    assert not (after & ~(BAR | island | bridge)).any()
    assert out.mean() == pytest.approx(p.volfrac, abs=1e-9)  # still on the volume fraction


def test_a_broken_load_path_is_closed_and_the_design_carries_the_load(cvae):
    gap = np.zeros_like(BAR)
    gap[5:7, 6:8] = True
    blob = np.zeros_like(BAR)
    blob[7, 0:6] = True  # stronger than the gap: binarised, the bar is cut at the gap
    strong = (BAR & ~gap) | blob
    p = _problem(int(strong.sum()))
    dec, plain = _decoders(cvae, p)
    lg = _logits(strong, gap)
    rho_before = _projected(plain, lg)
    solid_before = binarize(rho_before, p).astype(bool)
    assert not load_carrying(solid_before, p).any()
    out = dec.connected(lg[None])[0]
    solid_after = binarize(out, p).astype(bool)
    assert solid_after[5:7, 6:8].any(axis=0).all()  # a bridge across both gap columns
    assert load_carrying(solid_after, p).sum() == solid_after.sum()
    s0, s1 = score(rho_before[None], p), score(out[None], p)
    # cut, the load rests on the void's 1e-9 stiffness; closed, the bar carries it
    assert s1["compliance_binary"][0] < 1e-4 * s0["compliance_binary"][0]
    assert s1["vfe"][0] < 1e-9


def test_material_walled_off_by_passive_void_is_left_as_it_is(cvae):
    wall = np.zeros_like(BAR)
    wall[0:4, 3:9] = True
    pocket = np.zeros_like(BAR)
    pocket[1:3, 5:7] = True
    wall &= ~pocket  # a free 2x2 pocket inside passive void: no path leaves it
    p = _problem(int(BAR.sum() + pocket.sum()), passive_void=wall)
    dec, _ = _decoders(cvae, p)
    lg = _logits(BAR | pocket)
    out = dec.connected(lg[None])[0]
    np.testing.assert_array_equal(out, _projected(dec, lg))
    assert not out[wall].any()


def test_a_bare_load_is_reached(cvae):
    short = np.zeros_like(BAR)
    short[5:7, 0:9] = True
    grey = np.zeros_like(BAR)
    grey[5:7, 9:] = True
    extra = np.zeros_like(BAR)
    extra[7:9, 0:3] = True  # outranks the grey end, so the loaded node touches no solid
    p = _problem(int(short.sum() + extra.sum()))
    dec, plain = _decoders(cvae, p)
    lg = _logits(short | extra, grey)
    assert score(_projected(plain, lg)[None], p)["bare_loads"][0] == 1
    out = dec.connected(lg[None])[0]
    s = score(out[None], p)
    assert s["bare_loads"][0] == 0 and s["floating"][0] == 0


def test_evaluate_connects_unless_told_not_to(cvae, data):
    on = evaluate(cvae, data, "test", k=3, polish=0, limit=6, guide=0)  # the decoder's designs
    off = evaluate(cvae, data, "test", k=3, polish=0, limit=6, connect=False, guide=0)
    assert on["connect"] and not off["connect"]
    for v in ("first", "best"):
        assert on["metrics"][v]["floating_rate"] == 0
        assert on["metrics"][v]["vfe_mean"] < 1e-9
    assert off["metrics"]["first"]["floating_rate"] > 0  # the tiny model's designs do float

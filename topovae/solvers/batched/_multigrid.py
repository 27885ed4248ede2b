"""Matrix-free Q4 elasticity for a batch of problems on one grid: operator, multigrid, PCG.

Layout. Node fields are (B, C, 2, Ny, Nx) tensors: batch, load case, (x, y) component, node row
(top to bottom) and column, with Ny = nely + 1, Nx = nelx + 1. Element fields are (B, nely, nelx).
The y component points up, as in top88; the element stiffness is top88's KE.

- Fine operator: K(E) u = sum_e E_e P_e^T KE P_e u, applied element by element: the 8 element DOFs
  are gathered by slicing the node grid, multiplied by KE as one batched matmul, scaled by E_e
  and added back by slicing. No global matrix exists.
- Dirichlet DOFs: vectors are kept zero on fixed DOFs; the operator is D K D (D = 0/1 free mask).
- Multigrid: vertex-based full coarsening (every other node; an odd count keeps its last node, so
  any grid size coarsens), bilinear interpolation P masked by the free DOFs, and Galerkin coarse
  operators K_c = P^T D K D P. Each fine element lies inside one coarse element and its DOFs are
  interpolated from that coarse element's nodes only, so K_c is itself a sum of dense 8x8
  coarse-element matrices, K_E = sum_{e in E} P_e^T (D K_e D) P_e: every coarse level is
  element-based like the fine one, and its set-up is a few batched 8x8 products per element.
  Supports on odd-numbered nodes are honoured exactly (they sit in D). Damped block-Jacobi
  smoothing (2x2 node blocks), dense Cholesky at the coarsest level; the V-cycle is symmetric,
  so it preconditions CG.
- PCG: one independent CG per (problem, load case), stopping each at ||r|| <= tol ||b||,
  warm-started from a previous solution when given.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .._fe import KE as KE_NUMPY

# Local element DOFs in top88 order: lower-left, lower-right, upper-right, upper-left nodes.
# (row slice, column slice) of each local node in the node grid, for elements [i, j].
_CORNERS = (
    (slice(1, None), slice(None, -1)),
    (slice(1, None), slice(1, None)),
    (slice(None, -1), slice(1, None)),
    (slice(None, -1), slice(None, -1)),
)
_CORNER_OFFSETS = ((1, 0), (1, 1), (0, 1), (0, 0))  # (row, column) of local node q in an element


def element_ke(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(KE_NUMPY, device=device, dtype=dtype)


def gather(u: torch.Tensor) -> torch.Tensor:
    """Node field (B, C, 2, Ny, Nx) -> element DOFs (B, C, 8, ny, nx), top88 local order."""
    return torch.stack([u[:, :, d, rs, cs] for rs, cs in _CORNERS for d in (0, 1)], dim=2)


def scatter(fe: torch.Tensor) -> torch.Tensor:
    """Transpose of `gather`: element DOFs (B, C, 8, ny, nx) summed into (B, C, 2, Ny, Nx)."""
    b, c, _, ny, nx = fe.shape
    out = fe.new_zeros(b, c, 2, ny + 1, nx + 1)
    for q, (rs, cs) in enumerate(_CORNERS):
        out[:, :, :, rs, cs] += fe[:, :, 2 * q : 2 * q + 2]
    return out


def apply_elements(young: torch.Tensor, ke: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """K(E) u for (B, ny, nx) moduli and (B, C, 2, Ny, Nx) displacements (no masking)."""
    ue = gather(u)
    b, c, _, ny, nx = ue.shape
    fe = torch.matmul(ke, ue.reshape(b, c, 8, ny * nx)).reshape(b, c, 8, ny, nx)
    return scatter(fe * young[:, None, None])


def apply_element_matrices(kel: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """sum_e P_e^T K_e P_e u for per-element matrices ``kel`` (B, 8, 8, ny, nx)."""
    ue = gather(u)  # (B, C, 8, ny, nx)
    fe = torch.zeros_like(ue)
    for b in range(8):  # 8 fused multiply-adds beat a broadcast-and-sum 3-8x on the CPU
        fe.addcmul_(kel[:, None, :, b], ue[:, :, b : b + 1])
    return scatter(fe)


def element_energy(u: torch.Tensor, ke: torch.Tensor) -> torch.Tensor:
    """(B, C, 2, Ny, Nx) -> (B, ny, nx): sum over load cases of u_e^T KE u_e."""
    ue = gather(u)
    b, c, _, ny, nx = ue.shape
    ue = ue.reshape(b, c, 8, ny * nx)
    return (ue * torch.matmul(ke, ue)).sum(dim=(1, 2)).reshape(b, ny, nx)


def _fine_diagonal_blocks(young: torch.Tensor, ke: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2, Ny, Nx) 2x2 diagonal node blocks of K(E) = sum_e E_e KE."""
    b, ny, nx = young.shape
    blocks = young.new_zeros(b, 2, 2, ny + 1, nx + 1)
    for q, (rs, cs) in enumerate(_CORNERS):
        kq = ke[2 * q : 2 * q + 2, 2 * q : 2 * q + 2]
        blocks[:, :, :, rs, cs] += kq[None, :, :, None, None] * young[:, None, None]
    return blocks


def _diagonal_blocks(kel: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2, Ny, Nx) 2x2 diagonal node blocks of sum_e K_e, from (B, 8, 8, ny, nx)."""
    b, _, _, ny, nx = kel.shape
    blocks = kel.new_zeros(b, 2, 2, ny + 1, nx + 1)
    for q, (rs, cs) in enumerate(_CORNERS):
        blocks[:, :, :, rs, cs] += kel[:, 2 * q : 2 * q + 2, 2 * q : 2 * q + 2]
    return blocks


def _invert_blocks(blocks: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Inverse of the 2x2 node blocks restricted to the free DOFs (zero on fixed ones).

    blocks (B, 2, 2, Ny, Nx), free (B, 2, Ny, Nx) 0/1."""
    m = free[:, :, None] * free[:, None, :]  # (B, 2, 2, Ny, Nx)
    eye = torch.eye(2, dtype=blocks.dtype, device=blocks.device)[None, :, :, None, None]
    a = blocks * m + eye * (1 - free[:, :, None])  # identity rows/cols on fixed DOFs
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    inv = (
        torch.stack(
            [torch.stack([a[:, 1, 1], -a[:, 0, 1]], 1), torch.stack([-a[:, 1, 0], a[:, 0, 0]], 1)],
            1,
        )
        / det[:, None, None]
    )
    return inv * m


def _apply_blocks(blocks: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2, Ny, Nx) blocks times (B, C, 2, Ny, Nx)."""
    return (blocks[:, None] * r[:, :, None, :]).sum(dim=3)


@dataclass(frozen=True)
class _Transfer:
    """Bilinear interpolation between a fine and a coarse node grid, and the element map."""

    iy0: torch.Tensor  # 1-D factors: fine node f = w0 * coarse[i0] + w1 * coarse[i1]
    iy1: torch.Tensor
    wy0: torch.Tensor
    wy1: torch.Tensor
    ix0: torch.Tensor
    ix1: torch.Tensor
    wx0: torch.Tensor
    wx1: torch.Tensor
    coarse: tuple[int, int]  # coarse node grid
    # fine elements grouped by their interpolation from the parent element (at most 9 kinds):
    # (indices of the fine elements, their parents' indices, P (8, 8): fine DOFs <- parent DOFs)
    groups: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]
    parent: torch.Tensor  # (ny * nx,) coarse element of each fine element (row-major)
    kind: torch.Tensor  # (ny * nx,) index of its interpolation in p_kinds
    p_kinds: torch.Tensor  # (G, 8, 8)

    def prolong(self, c: torch.Tensor) -> torch.Tensor:
        """(..., Nyc, Nxc) -> (..., Ny, Nx)."""
        t = c[..., self.iy0, :] * self.wy0[:, None] + c[..., self.iy1, :] * self.wy1[:, None]
        return t[..., self.ix0] * self.wx0 + t[..., self.ix1] * self.wx1

    def restrict(self, f: torch.Tensor) -> torch.Tensor:
        """Transpose of `prolong`: (..., Ny, Nx) -> (..., Nyc, Nxc)."""
        nyc, nxc = self.coarse
        t = f.new_zeros(*f.shape[:-1], nxc)
        t.index_add_(-1, self.ix0, f * self.wx0)
        t.index_add_(-1, self.ix1, f * self.wx1)
        out = f.new_zeros(*f.shape[:-2], nyc, nxc)
        out.index_add_(-2, self.iy0, t * self.wy0[:, None])
        out.index_add_(-2, self.iy1, t * self.wy1[:, None])
        return out

    def galerkin_fine(
        self, young: torch.Tensor, ke: torch.Tensor, free: torch.Tensor
    ) -> torch.Tensor:
        """Coarse element matrices of P^T D K(E) D P straight from the moduli.

        Without fixed DOFs a fine element contributes E_e P_g^T KE P_g, with g its kind of
        interpolation, so K_E = sum_g (sum of E over E's children of kind g) M_g: one small GEMM.
        Elements touching fixed DOFs are then corrected by P^T E_e (KE - D KE D) P.
        """
        b = young.shape[0]
        nyc, nxc = self.coarse
        nc, g = (nyc - 1) * (nxc - 1), self.p_kinds.shape[0]
        e = young.reshape(b, -1)
        w = e.new_zeros(b, nc * g)
        w.index_add_(1, self.parent * g + self.kind, e)
        m = (self.p_kinds.transpose(1, 2) @ ke @ self.p_kinds).reshape(g, 64)
        kc = (w.reshape(b, nc, g) @ m).reshape(b * nc, 64)
        de = gather(free[:, None])[:, 0].reshape(b, 8, -1)  # (B, 8, nel) free element DOFs
        bi, ei = torch.nonzero((de < 1).any(dim=1), as_tuple=True)
        if bi.numel():
            d = de[bi, :, ei]  # (N, 8)
            delta = e[bi, ei][:, None, None] * ke * (1 - d[:, :, None] * d[:, None, :])
            p = self.p_kinds[self.kind[ei]]
            corr = (p.transpose(1, 2) @ delta @ p).reshape(-1, 64)
            kc.index_add_(0, bi * nc + self.parent[ei], -corr)
        return kc.reshape(b, nyc - 1, nxc - 1, 8, 8).permute(0, 3, 4, 1, 2).contiguous()

    def galerkin(self, kel: torch.Tensor) -> torch.Tensor:
        """Coarse element matrices (B, 8, 8, nyc-1, nxc-1) of P^T (sum_e K_e) P."""
        b, _, _, ny, nx = kel.shape
        nyc, nxc = self.coarse
        k = kel.permute(0, 3, 4, 1, 2).reshape(b, ny * nx, 8, 8)
        out = kel.new_zeros(b, (nyc - 1) * (nxc - 1), 8, 8)
        for index, parent, p in self.groups:
            kp = k[:, index] @ p  # one GEMM per group: P is shared
            out.index_add_(1, parent, kp.transpose(-1, -2) @ p)  # P^T K P (K symmetric)
        return out.reshape(b, nyc - 1, nxc - 1, 8, 8).permute(0, 3, 4, 1, 2).contiguous()


def _coarse_nodes(n: int) -> list[int]:
    nodes = list(range(0, n, 2))
    if nodes[-1] != n - 1:
        nodes.append(n - 1)
    return nodes


def _transfer(ny: int, nx: int, device: torch.device, dtype: torch.dtype) -> _Transfer:
    """Transfer from the node grid (ny, nx) to its coarsening."""
    axes = []
    for n in (ny, nx):
        xc = _coarse_nodes(n)
        i0, i1, w0, w1 = [], [], [], []
        k = 0
        for f in range(n):
            while k + 1 < len(xc) and xc[k + 1] <= f:
                k += 1
            if xc[k] == f or k + 1 == len(xc):
                i0.append(k), i1.append(k), w0.append(1.0), w1.append(0.0)
            else:
                t = (f - xc[k]) / (xc[k + 1] - xc[k])
                i0.append(k), i1.append(k + 1), w0.append(1 - t), w1.append(t)
        axes.append((i0, i1, w0, w1, xc))
    (iy0, iy1, wy0, wy1, yc), (ix0, ix1, wx0, wx1, xc) = axes
    # element interpolation: fine element (i, j) lies in coarse element (i // 2, j // 2)
    ely, elx = ny - 1, nx - 1
    i = torch.arange(ely)[:, None].expand(ely, elx)
    j = torch.arange(elx)[None, :].expand(ely, elx)
    pi, pj = i // 2, j // 2
    parent = (pi * (len(xc) - 1) + pj).reshape(-1)
    y0 = torch.tensor(yc, dtype=torch.float64)[pi]
    y1 = torch.tensor(yc, dtype=torch.float64)[pi + 1]
    x0 = torch.tensor(xc, dtype=torch.float64)[pj]
    x1 = torch.tensor(xc, dtype=torch.float64)[pj + 1]
    p = torch.zeros(ely, elx, 8, 8, dtype=torch.float64)
    for q, (dr, dc) in enumerate(_CORNER_OFFSETS):  # fine local node q
        ty = (i + dr - y0) / (y1 - y0)  # 0 at the coarse element's top, 1 at its bottom
        tx = (j + dc - x0) / (x1 - x0)
        for qc, (cr, cc) in enumerate(_CORNER_OFFSETS):  # coarse local node qc
            w = (ty if cr else 1 - ty) * (tx if cc else 1 - tx)
            for d in (0, 1):
                p[:, :, 2 * q + d, 2 * qc + d] = w
    kinds, kind = torch.unique(p.reshape(-1, 64), dim=0, return_inverse=True)
    groups = []
    for g in range(kinds.shape[0]):
        index = torch.nonzero(kind == g).reshape(-1)
        pg = kinds[g].reshape(8, 8).to(device=device, dtype=dtype)
        groups.append((index.to(device), parent[index].to(device), pg))
    as_index = lambda v: torch.tensor(v, device=device, dtype=torch.long)  # noqa: E731
    as_weight = lambda v: torch.tensor(v, device=device, dtype=dtype)  # noqa: E731
    return _Transfer(
        as_index(iy0), as_index(iy1), as_weight(wy0), as_weight(wy1),
        as_index(ix0), as_index(ix1), as_weight(wx0), as_weight(wx1),
        coarse=(len(yc), len(xc)),
        groups=tuple(groups),
        parent=parent.to(device),
        kind=kind.to(device),
        p_kinds=kinds.reshape(-1, 8, 8).to(device=device, dtype=dtype),
    )  # fmt: skip


class GridHierarchy:
    """What depends on the grid size only: the levels and their transfers (built once)."""

    def __init__(
        self, nely: int, nelx: int, device: torch.device, dtype: torch.dtype, coarse_dofs=300
    ) -> None:
        self.nely, self.nelx, self.device, self.dtype = nely, nelx, device, dtype
        self.shapes = [(nely + 1, nelx + 1)]  # node grids, finest first
        self.transfers: list[_Transfer] = []
        while 2 * self.shapes[-1][0] * self.shapes[-1][1] > coarse_dofs:
            ny, nx = self.shapes[-1]
            if ny <= 2 and nx <= 2:
                break
            tr = _transfer(ny, nx, device, dtype)
            self.transfers.append(tr)
            self.shapes.append(tr.coarse)
        # dense assembly at the coarsest level: DOF 2 * (row * Nx + col) + component
        ny, nx = self.shapes[-1]
        node = torch.arange(ny * nx).reshape(ny, nx)
        nodes_e = torch.stack([node[rs, cs] for rs, cs in _CORNERS], dim=-1)  # (ny-1, nx-1, 4)
        dofs = torch.stack([2 * nodes_e, 2 * nodes_e + 1], dim=-1).reshape(-1, 8)  # (nel, 8)
        self.coarse_n = n = 2 * ny * nx
        # entry (a, b) of element e goes to dense position dofs[e, a] * n + dofs[e, b]
        self._dense_index = (dofs[:, :, None] * n + dofs[:, None, :]).permute(1, 2, 0)
        self._dense_index = self._dense_index.reshape(-1).to(device)

    @property
    def levels(self) -> int:
        return len(self.shapes)

    def dense(self, kel: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """(B, n, n) matrix of the coarsest level's elements, identity on non-free DOFs."""
        b = kel.shape[0]
        n = self.coarse_n
        mat = kel.new_zeros(b, n * n)
        mat.index_add_(1, self._dense_index, kel.reshape(b, -1))
        mat = mat.reshape(b, n, n)
        f = free.permute(0, 2, 3, 1).reshape(b, n)  # DOF order 2 * node + component
        return mat * f[:, :, None] * f[:, None, :] + torch.diag_embed(1 - f)


def _cholesky(a: torch.Tensor) -> torch.Tensor:
    """Cholesky factors of symmetric positive semi-definite matrices (B, n, n). One that
    round-off made indefinite (a near-singular coarse matrix: a design with almost no
    material on a path) is factorised with a diagonal shift, from 1e-14 of its largest diagonal
    entry up by 100x until it factorises: the coarse solve is a preconditioner's, so the CG
    around it still converges to the exact solution. (The LU fallback this replaces hit a
    batched-LU fault of torch's CPU build: with 2 threads `lu_factor` returned pivots like
    -2e9 for a finite 16 x 162 x 162 batch, and the solve failed.)"""
    chol, info = torch.linalg.cholesky_ex(a)
    bad = torch.nonzero(info > 0).flatten()
    scale = a.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1e-300)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    shift = 1e-14
    while bad.numel():
        if shift > 1e-2:
            raise FloatingPointError("the coarse-grid matrix could not be factorised")
        shifted = a[bad] + (shift * scale[bad])[:, None, None] * eye
        fixed, info = torch.linalg.cholesky_ex(shifted)
        chol[bad] = fixed
        bad = bad[info > 0]
        shift *= 100.0
    return chol


class Multigrid:
    """The multigrid hierarchy of one batch of moduli and its V-cycle, in the grid's dtype.

    ``young`` (B, nely, nelx), ``free`` (B, 2, Ny, Nx) 0/1 mask of free DOFs.
    """

    def __init__(
        self,
        grid: GridHierarchy,
        young: torch.Tensor,
        free: torch.Tensor,
        smoothing_steps: int = 1,
        omega: float = 0.7,
    ) -> None:
        self.grid, self.young = grid, young
        self.ke = element_ke(young.device, young.dtype)
        self.nu, self.omega = smoothing_steps, omega
        self.free = [free]
        self.kel: list[torch.Tensor | None] = [None]  # the fine level applies E * KE directly
        self.dinv = [_invert_blocks(_fine_diagonal_blocks(young, self.ke), free)]
        kel = None
        for level, tr in enumerate(grid.transfers):
            if level == 0:
                kel = tr.galerkin_fine(young, self.ke, free)
            else:
                kel = tr.galerkin(kel)
            diag = _diagonal_blocks(kel)
            d = torch.stack([diag[:, 0, 0], diag[:, 1, 1]], 1)  # (B, 2, Ny, Nx)
            # a coarse DOF that reaches no free fine DOF has an empty row: treat it as fixed
            scale = d.flatten(1).amax(1).clamp_min(torch.finfo(d.dtype).tiny)
            fc = (d > 1e-12 * scale[:, None, None, None]).to(d.dtype)
            de = gather(fc[:, None])[:, 0]
            kel = kel * de[:, :, None] * de[:, None]
            self.free.append(fc)
            self.kel.append(kel)
            self.dinv.append(_invert_blocks(diag, fc))
        if kel is None:  # the grid is its own coarsest level
            de = gather(free[:, None])[:, 0]
            kel = (
                self.ke[None, :, :, None, None]
                * young[:, None, None]
                * de[:, :, None]
                * de[:, None]
            )
        # The coarsest matrix is small: factorise it in float64 even under a float32 V-cycle, or
        # ill-conditioned (e.g. slender) problems lose the coarse solve to round-off.
        coarse = grid.dense(kel.double(), self.free[-1].double())
        self._chol = _cholesky(coarse)

    def subset(self, index: torch.Tensor) -> Multigrid:
        """The hierarchy of the problems ``index`` of this batch (no recomputation)."""
        out = copy.copy(self)
        out.young = self.young[index]
        out.free = [f[index] for f in self.free]
        out.kel = [None if k is None else k[index] for k in self.kel]
        out.dinv = [d[index] for d in self.dinv]
        out._chol = self._chol[index]
        return out

    # -- operators -----------------------------------------------------------------------------
    def apply(self, u: torch.Tensor, level: int = 0) -> torch.Tensor:
        """D K D u on ``level`` (u is expected zero on fixed DOFs)."""
        if level == 0:
            out = apply_elements(self.young, self.ke, u)
        else:
            out = apply_element_matrices(self.kel[level], u)
        return out * self.free[level][:, None]

    def _coarse_solve(self, r: torch.Tensor) -> torch.Tensor:
        b, c = r.shape[:2]
        ny, nx = r.shape[-2:]
        rhs = r.permute(0, 3, 4, 2, 1).reshape(b, -1, c).double()  # (B, n, C), DOF 2 node + comp
        x = torch.cholesky_solve(rhs, self._chol)
        x = x.to(r.dtype)
        return x.reshape(b, ny, nx, 2, c).permute(0, 4, 3, 1, 2) * self.free[-1][:, None]

    def vcycle(self, r: torch.Tensor, level: int = 0) -> torch.Tensor:
        """One symmetric V-cycle approximating K^-1 r."""
        if level == self.grid.levels - 1:
            return self._coarse_solve(r)
        dinv, w = self.dinv[level], self.omega
        x = w * _apply_blocks(dinv, r)
        for _ in range(self.nu - 1):
            x = x + w * _apply_blocks(dinv, r - self.apply(x, level))
        tr = self.grid.transfers[level]
        free = self.free[level][:, None]
        rc = tr.restrict((r - self.apply(x, level)) * free)
        x = x + tr.prolong(self.vcycle(rc, level + 1)) * free
        for _ in range(self.nu):
            x = x + w * _apply_blocks(dinv, r - self.apply(x, level))
        return x


class MultigridPCG:
    """K(E) u = f for a batch by CG preconditioned with one multigrid V-cycle.

    CG runs in the dtype of ``young``; the preconditioner in ``grid.dtype``. A float32 V-cycle
    inside float64 CG halves the cycle's time and still reaches 1e-12 residuals: the
    preconditioner only has to be a good approximate inverse, not an exact one.
    """

    def __init__(self, grid: GridHierarchy, young: torch.Tensor, free: torch.Tensor, **kw) -> None:
        self.young, self.free0 = young, free
        self.ke = element_ke(young.device, young.dtype)
        self.dtype = young.dtype
        self.mg = Multigrid(grid, young.to(grid.dtype), free.to(grid.dtype), **kw)

    def subset(self, index: torch.Tensor) -> MultigridPCG:
        """The solver of the problems ``index`` of this batch (no recomputation)."""
        out = copy.copy(self)
        out.young, out.free0, out.mg = self.young[index], self.free0[index], self.mg.subset(index)
        return out

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """D K D u on the fine grid, in CG's dtype."""
        return apply_elements(self.young, self.ke, u) * self.free0[:, None]

    def vcycle(self, r: torch.Tensor) -> torch.Tensor:
        return self.mg.vcycle(r.to(self.mg.young.dtype)).to(self.dtype)

    def solve(
        self,
        f: torch.Tensor,
        x0: torch.Tensor | None = None,
        tol: float = 1e-8,
        max_iter: int = 500,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """PCG for (B, C, 2, Ny, Nx) right-hand sides.

        Returns (solution, iterations (B, C), converged (B, C)); each (problem, case) stops on its
        own ||r|| <= tol ||f||, or on a breakdown: p'Kp or r'z not positive and finite, which a
        float32 V-cycle can give on designs of extreme contrast (large void regions at
        E_min); such a system keeps its last iterate and is reported as not converged. When
        half of the problems still iterating have finished, the rest go on as a smaller batch,
        so a few slow problems do not keep the whole batch's cost.
        """
        free = self.free0[:, None]
        f = f * free
        x = torch.zeros_like(f) if x0 is None else x0 * free
        r = f - self.apply(x) if x0 is not None else f.clone()
        dims = (2, 3, 4)
        limit = tol * torch.linalg.vector_norm(f, dim=dims)
        active = torch.linalg.vector_norm(r, dim=dims) > limit
        iterations = torch.zeros_like(limit, dtype=torch.long)
        broken = torch.zeros_like(active)
        out = (x, iterations, active, broken)  # the whole batch; written back on compaction
        rows = torch.arange(f.shape[0], device=f.device)
        solver = self
        if bool(active.any()):
            z = solver.vcycle(r)
            p = z
            rz = (r * z).sum(dims)
            broken = active & ~(torch.isfinite(rz) & (rz > 0))
            active = active & ~broken
        for _ in range(max_iter):
            live = active.any(1)
            n_live = int(live.sum())
            if n_live == 0:
                break
            if n_live <= live.numel() // 2:  # go on with the problems still iterating
                _write_back(out, rows, (x, iterations, active, broken))
                keep = live.nonzero().flatten()
                rows, solver = rows[keep], solver.subset(keep)
                x, r, p, rz, limit = x[keep], r[keep], p[keep], rz[keep], limit[keep]
                iterations, active, broken = iterations[keep], active[keep], broken[keep]
            ap = solver.apply(p)
            pap = (p * ap).sum(dims)
            stop = active & ~(torch.isfinite(pap) & (pap > 0))
            broken, active = broken | stop, active & ~stop
            alpha = torch.where(active, rz / torch.where(active, pap, 1.0), 0.0)
            step = alpha[..., None, None, None]  # 0 for stopped systems, whose p may be NaN
            x = x + torch.where(step != 0, step * p, 0.0)
            r = r - torch.where(step != 0, step * ap, 0.0)
            iterations = iterations + active.long()
            active = active & (torch.linalg.vector_norm(r, dim=dims) > limit)
            if not bool(active.any()):
                break
            z = solver.vcycle(r)
            rz_new = (r * z).sum(dims)
            stop = active & ~(torch.isfinite(rz_new) & (rz_new > 0))
            broken, active = broken | stop, active & ~stop
            beta = torch.where(active, rz_new / torch.where(active, rz, 1.0), 0.0)
            p = torch.where(active[..., None, None, None], z + beta[..., None, None, None] * p, p)
            rz = torch.where(active, rz_new, rz)
        x, iterations, active, broken = _write_back(out, rows, (x, iterations, active, broken))
        return x, iterations, ~(active | broken)


def _write_back(full: tuple, rows: torch.Tensor, part: tuple) -> tuple:
    """full[k][rows] = part[k] for each tensor (a part still the whole tensor is left as is)."""
    for whole, piece in zip(full, part, strict=True):
        if piece is not whole:
            whole[rows] = piece
    return full

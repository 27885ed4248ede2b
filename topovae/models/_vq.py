"""`VQVAE` (kind "vqvae"): a conditional VQ-VAE (van den Oord et al. 2017) on the cvae's U-Net
backbone, with an autoregressive prior over its codes fitted after training.

    model = VQVAE(VAEConfig(kind="vqvae", height=32, width=32, cond_channels=9, latent_dim=16))

The posterior encoder's bottleneck gives ``latent_dim`` vectors z_e (``code_dim`` each, the
*slots*); each is replaced by its nearest codebook vector e_k, and the decoder (the cvae's:
condition skips and FiLM) reads the concatenated codes. Gradients pass the quantisation
straight through (z_q = z_e + sg(e_k - z_e)). The loss is the reconstruction plus
``commitment`` * ||z_e - sg(e_k)||^2, plus the codebook loss ||sg(z_e) - e_k||^2 when
``codebook_decay`` is 0; otherwise the codebook follows exponential moving averages (the paper's
appendix): N_k <- gamma N_k + (1 - gamma) n_k, m_k <- gamma m_k + (1 - gamma) sum of the z_e
assigned to k, e_k = m_k / N_k. The codebook starts at z_e vectors of the first batch, and a
code whose N_k falls below 3 % of the mean (unused for ~100 steps) restarts at a random z_e
of the batch (dead-code restarts). Training logs the commitment term, the perplexity of the
codes in the batch (exp of their entropy; K when every code is used alike) and the share of
codes in use.

The prior (`CodePrior`): p(k_1 .. k_D | c) = prod_i p(k_i | k_<i, c), a GRU over the slots
started from the condition features. Like the prior mixture it is fitted after training (by
`Trainer`, or `VQVAE.fit_prior`) to the codes of the training designs under the eight flips and
quarter turns, with early stopping on the val split's.

Whitened coordinates, as every workflow expects them: slot i takes t_i = |2 Phi(u_i) - 1|, which
is uniform on [0, 1) when u_i is standard normal, and picks the code at t_i of p(k_i | k_<i, c)'s
cumulative distribution over the codes sorted from the most to the least probable. So u ~ N(0,
I) is an exact sample of the prior, u = 0 the greedy design (the most probable code of each slot
in turn: the model's first design) and a larger |u_i| a less probable code. `whiten` maps codes
back to the middle of their interval. The latent coordinates z of a vqvae are its code indices
as floats (B, D); its posterior is a point and its KL term 0 (under a uniform prior the notes'
VQ-VAE KL is the constant D log K). Latent walks move in steps from code to code and gradient
search has no gradient to follow (``continuous_latent`` is False: cmaes and random search work);
the ELBO and likelihood estimates are for the Gaussian-latent models.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._config import ConfigError, VAEConfig
from ._fit import design_batches, fit_early_stopped
from ._vae import DesignVAE, VAEOutput, _zero_linear

DEAD = 0.03  # a code whose moving count falls below this share of the mean restarts


class VectorQuantiser(nn.Module):
    """The codebook: nearest codes, its EMA update and dead-code restarts."""

    def __init__(self, codes: int, dim: int, decay: float) -> None:
        super().__init__()
        self.codes, self.dim, self.decay = codes, dim, decay
        start = torch.randn(codes, dim)
        if decay > 0:
            self.register_buffer("embedding", start)
            self.register_buffer("cluster_size", torch.ones(codes))
            self.register_buffer("embed_sum", start.clone())
        else:
            self.embedding = nn.Parameter(start)
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Indices (N,) of the codes nearest to vectors z (N, dim)."""
        with torch.autocast(z.device.type, enabled=False):  # distances in full precision
            z, e = z.float(), self.embedding.detach().float()
            d = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(1)
            return d.argmin(1)

    @torch.no_grad()
    def start(self, z: torch.Tensor, generator=None) -> None:
        """The codebook at ``codes`` vectors of the first training batch z (N, dim)."""
        pick = torch.randint(len(z), (self.codes,), generator=generator, device=z.device)
        self.embedding.data.copy_(z[pick])
        if self.decay > 0:
            self.embed_sum.copy_(z[pick])
            self.cluster_size.fill_(1.0)
        self.started.fill_(True)

    @torch.no_grad()
    def update(self, z: torch.Tensor, idx: torch.Tensor, generator=None) -> None:
        """The moving averages of the module docstring from vectors z (N, dim) assigned to
        codes ``idx`` (N,), then the dead-code restarts."""
        z = z.float()
        onehot = F.one_hot(idx, self.codes).to(z.dtype)
        g = self.decay
        with torch.autocast(z.device.type, enabled=False):
            sums = onehot.T @ z
        self.cluster_size.mul_(g).add_(onehot.sum(0), alpha=1 - g)
        self.embed_sum.mul_(g).add_(sums, alpha=1 - g)
        self.embedding.copy_(self.embed_sum / self.cluster_size[:, None])
        dead = self.cluster_size < DEAD * self.cluster_size.mean()
        if bool(dead.any()):
            pick = torch.randint(len(z), (int(dead.sum()),), generator=generator, device=z.device)
            self.embedding[dead] = z[pick]
            self.embed_sum[dead] = z[pick]
            self.cluster_size[dead] = 1.0


class CodePrior(nn.Module):
    """p(k_1 .. k_D | c): the condition features (B, F) start a GRU that reads the codes so far
    (a start token first) and gives each slot's logits over the K codes."""

    def __init__(self, features: int, slots: int, codes: int, hidden: int = 128) -> None:
        super().__init__()
        self.slots, self.codes = slots, codes
        self.condition = nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.Tanh())
        self.embed = nn.Embedding(codes + 1, hidden)  # code K: the start token
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = _zero_linear(hidden, codes)  # before its fit: every code alike
        self.requires_grad_(False)  # not trained with the model: `fit_code_prior` fits it

    def logits(self, codes: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, D, K) of codes (B, D) under bottleneck features f."""
        h = self.condition(f)
        start = torch.full_like(codes[:, :1], self.codes)
        x = self.embed(torch.cat([start, codes[:, :-1]], dim=1)) + h[:, None]
        out, _ = self.gru(x, h[None].contiguous())
        return self.out(out)

    def log_prob(self, codes: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """log p(codes | c) (B,)."""
        logp = torch.log_softmax(self.logits(codes, f).float(), dim=-1)
        return logp.gather(-1, codes[..., None])[..., 0].sum(1)

    def codes_of(self, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Codes (B, D) at whitened coordinates u (B, D) (module docstring), slot by slot."""
        h = self.condition(f)
        state = h[None].contiguous()
        t = (2 * torch.special.ndtr(u.float()) - 1).abs()
        prev = torch.full((u.shape[0],), self.codes, dtype=torch.long, device=u.device)
        out = []
        for i in range(self.slots):
            y, state = self.gru((self.embed(prev) + h)[:, None], state)
            p = torch.softmax(self.out(y[:, 0]).float(), dim=-1)
            order = torch.argsort(p, dim=-1, descending=True, stable=True)
            cdf = torch.cumsum(p.gather(1, order), dim=1)
            j = torch.searchsorted(cdf, t[:, i : i + 1].contiguous(), right=True)
            prev = order.gather(1, j.clamp(max=self.codes - 1))[:, 0]
            out.append(prev)
        return torch.stack(out, dim=1)

    def whiten(self, codes: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Whitened coordinates (B, D) at the middle of each code's interval: `codes_of`'s
        inverse."""
        p = torch.softmax(self.logits(codes, f).float(), dim=-1)  # (B, D, K)
        mine = p.gather(-1, codes[..., None])
        # the mass of the codes before this one in the order (more probable, or as probable
        # and of a lower index: argsort's stable order)
        index = torch.arange(self.codes, device=codes.device)
        before = (p > mine) | ((p == mine) & (index < codes[..., None]))
        t = ((p * before).sum(-1) + 0.5 * mine[..., 0]).clamp(0.0, 1 - 1e-6)
        return torch.special.ndtri((1 + t) / 2)


class VQVAE(DesignVAE):
    """See the module docstring; built entirely from a `VAEConfig` of kind "vqvae"."""

    continuous_latent = False

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        cfg = self.config
        codes, dim = cfg.codebook
        width = cfg.latent_dim * dim  # the decoder reads the concatenated codes
        self.to_latent = nn.Linear(self._flat, width)
        self.from_latent = nn.Linear(width, self._flat)
        self.film = nn.ModuleList(
            _zero_linear(width, 2 * self._widths[k]) for k in range(cfg.depth + 1)
        )
        self.quantiser = VectorQuantiser(codes, dim, cfg.codebook_decay)
        self.code_prior = CodePrior(self._flat, cfg.latent_dim, codes)
        self.to(memory_format=torch.channels_last)

    @property
    def extra_terms(self) -> tuple[str, ...]:
        """The loss terms and statistics a vqvae adds to the logged ones."""
        loss = ("codebook",) if self.config.codebook_decay == 0 else ()
        return ("commitment", *loss, "perplexity", "code_usage")

    @property
    def fitted_prior(self) -> str:
        return "code_prior"

    def fit_prior(self, train_set, val_set, seed: int = 0) -> dict[str, Any]:
        return fit_code_prior(self, train_set, val_set, seed=seed)

    # -- codes -------------------------------------------------------------------------------------
    def _slots(self, x: torch.Tensor, feats) -> torch.Tensor:
        """z_e (B, D, code_dim) of designs x."""
        h = self._run_pyramid(self.encoder, self._pad(x), feats)[-1]
        return self.to_latent(h.flatten(1)).view(x.shape[0], self.config.latent_dim, -1)

    def _decode_vectors(self, q: torch.Tensor, c, feats) -> torch.Tensor:
        return super().decode(q, c, feats)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None, feats=None):
        """The code indices (B, D) as floats, and zeros: the posterior is a point."""
        c = self._check(x, c)
        feats = feats if feats is not None else self.condition_features(c)
        z = self._slots(x, feats)
        idx = self.quantiser.nearest(z.reshape(-1, z.shape[-1]).float()).view(z.shape[:2])
        return idx.to(z.dtype), torch.zeros_like(idx, dtype=z.dtype)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None, feats=None) -> torch.Tensor:
        """Code indices (B, D) (floats, rounded) -> logits (B, Cin, H, W)."""
        codes = z.round().long().clamp(0, self.quantiser.codes - 1)
        q = self.quantiser.embedding[codes].flatten(1).to(z.dtype)
        return self._decode_vectors(q, c, feats)

    def latent_distributions(self, x, c=None, feats=None):
        """(codes, 0, codes, 0): a point posterior measured against itself, KL 0."""
        mu, logvar = self.encode(x, c, feats)
        return mu, logvar, mu, logvar

    def posterior_sample(self, x, c, feats, eps):
        mu, logvar = (t.expand(eps.shape) for t in self.encode(x, c, feats))
        return mu, mu, logvar, mu, logvar

    def prior(self, c: torch.Tensor | None = None, n: int = 1, feats=None):
        """(the greedy codes, zeros): the prior's first design and no Gaussian spread."""
        c = self._check(None, c, n=n)
        feats = feats if feats is not None else self.condition_features(c)
        b = feats[-1].shape[0]
        u = torch.zeros(b, self.config.latent_dim, device=feats[-1].device)
        z = self.to_latent_coordinates(u, c, feats)
        return z, torch.zeros_like(z)

    def to_latent_coordinates(self, u: torch.Tensor, c=None, feats=None) -> torch.Tensor:
        """Whitened u (B, D) -> the codes (B, D, as floats) of the module docstring."""
        c = self._check(None, c, n=u.shape[0])
        feats = feats if feats is not None else self.condition_features(c)
        f = feats[-1].expand(u.shape[0], *feats[-1].shape[1:])  # one condition for all: (1, ...)
        return self.code_prior.codes_of(u, f).to(u.dtype)

    def whiten(self, z: torch.Tensor, c=None, feats=None) -> torch.Tensor:
        """Codes (B, D) -> whitened u; `to_latent_coordinates`' inverse."""
        c = self._check(None, c, n=z.shape[0])
        feats = feats if feats is not None else self.condition_features(c)
        codes = z.round().long().clamp(0, self.quantiser.codes - 1)
        f = feats[-1].expand(z.shape[0], *feats[-1].shape[1:])
        return self.code_prior.whiten(codes, f).to(z.dtype)

    def forward(self, x, c=None, generator=None, prior_mean: int = 0, prior_noise: bool = False):
        """The training pass: logits of the straight-through quantised codes, the codes as the
        posterior "mean", the commitment (and codebook) terms and the code statistics; the
        codebook's moving averages are updated in training mode."""
        if prior_mean:
            raise ConfigError("a vqvae's prior is fitted after training: no prior decodes here")
        c = self._check(x, c)
        feats = self.condition_features(c)
        z = self._slots(x, feats)
        flat = z.reshape(-1, z.shape[-1])
        vq = self.quantiser
        if self.training and not bool(vq.started):
            vq.start(flat.detach().float(), generator)
        idx = vq.nearest(flat.detach().float())
        if self.training and vq.decay > 0:
            vq.update(flat.detach(), idx, generator)
        e = vq.embedding[idx].view(z.shape).to(z.dtype)
        b = x.shape[0]
        terms = {"commitment": self.config.commitment * (z - e.detach()).float().pow(2).sum() / b}
        if vq.decay == 0:
            terms["codebook"] = (z.detach() - e).float().pow(2).sum() / b
        q = z + (e - z).detach()  # straight through
        logits = self._decode_vectors(q.flatten(1), c, feats)
        share = F.one_hot(idx, vq.codes).float().mean(0)
        entropy = -(share * torch.log(share.clamp_min(1e-12))).sum()
        stats = {"perplexity": entropy.exp().detach(), "code_usage": (share > 0).float().mean()}
        codes = idx.view(z.shape[:2]).to(z.dtype)
        zero = torch.zeros_like(codes)
        return VAEOutput(logits, codes, zero, codes, zero, None, terms, stats)


@torch.no_grad()
def _codes(model: VQVAE, dataset, batch: int = 256):
    """(bottleneck condition features (n, ...), codes (n, D)) of every design of ``dataset`` under
    every flip and quarter turn of the grid (`datasets.transforms`) when it names its condition
    channels."""
    fs, ks = [], []
    for x, c in design_batches(dataset, next(model.parameters()).device, batch=batch):
        feats = model.condition_features(c)
        fs.append(feats[-1].float().cpu())
        ks.append(model.encode(x, c, feats)[0].long().cpu())
    return torch.cat(fs), torch.cat(ks)


def fit_code_prior(
    model: VQVAE, train_set, val_set, *, steps: int = 2000, lr: float = 2e-3,
    weight_decay: float = 1e-4, batch_size: int = 256, every: int = 50, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Fit ``model.code_prior`` by Adam on the codes of ``train_set`` (all eight symmetries of
    each design), keeping the parameters with the best mean log-likelihood of the ``val_set``
    codes (checked every ``every`` steps). Returns the validation negative log-likelihood per
    design in nats (the uniform prior's, D log K, and the fitted one's) and the step kept."""
    if len(train_set) == 0 or len(val_set) == 0:
        raise ConfigError("fitting the code prior needs designs in the train and val splits")
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    f, k = _codes(model, train_set)
    fv, kv = _codes(model, val_set)
    model.train(was_training)
    prior = model.code_prior
    device = next(prior.parameters()).device
    prior.cpu()
    nll, step = fit_early_stopped(
        prior, lambda pick: -prior.log_prob(k[pick], f[pick]).mean(),
        lambda: -prior.log_prob(kv, fv).mean(), len(k), g, steps=steps, lr=lr,
        weight_decay=weight_decay, batch_size=batch_size, every=every,
    )  # fmt: skip
    prior.to(device)
    uniform = model.config.latent_dim * math.log(model.quantiser.codes)
    return {"val_nll_uniform": uniform, "val_nll": nll, "step": step}

"""M2VSL - Multi-scale Multi-instance Visual Sound Localization (Mo & Wang 2024; no code) - PROTOCOLS 6.7.

* Multi-scale visual features ``V^s`` from the ResNet-18 stages (the deepest ``n_scales`` of layer1..layer4),
  each adaptive-average-pooled to ``pool_size`` rows (5 in the paper; columns ``pool_size * W / H`` so a 1x2
  side-by-side canvas stays 1x2) and projected by a 1x1 conv to D, unit-norm per location [ours: the paper does
  not say how the stages are brought to 5x5]; global audio ``A`` as EZ-VSL.
* MMC loss (Eq. 2-4): ``sum_s CE(sim(A, V^s)) + CE(sim(A, V^s)^T)``, ``sim = max_{h,w} cos(A, V^s(h, w)) / tau``.
* MMT (Eq. 5-6, "as AVGN"): self-attention (depth 3) over ``[V^1 tokens; ...; V^S tokens; c_1..c_C]`` with a
  learned scale embedding per stage, and - for the class-aware audio side - over ``[A; c_1..c_C]`` with the same
  class tokens (AVGN's ``phi^a``). [ours] reading of how the class tokens are trained, following AVGN (the paper
  only says video-level labels are used): token constraint ``CE(h_i, softmax(FC(c_i)))``, class presence
  ``BCE(y^a, sigmoid(FC_a(c^a_i)))`` + ``BCE(y^v, sigmoid(FC_v(c^v_i)))``, and the class-aware multi-scale MIL loss
  ``sum_s`` symmetric CE of ``max_p cos(c^a_{b,n}, V-hat^s_{m,p}) / tau`` (AVGN Eq. 10 per scale, in the AVGN
  code's ungated form; ``visual_gate=True`` multiplies ``V-hat`` by ``c^v_{m,n}`` as the AVGN paper prints).
  The audio side never sees the image and vice versa, so the contrastive task has no shortcut.
* Maps: per scale on the pooled grid, fused by the mean over scales. All scales share the grid, so the fused map
  is at the finest common resolution (``pool_size`` rows). Class map ``cos(c^a_n, V-hat^s_p)`` (gated: ``(.) c^v_n``);
  without MMT the MMC map ``cos(A, V^s_p)``. Segmentation masks: ``segment`` (min-max + 0.5, [ours]).

Training mixtures as AVGN (PROTOCOLS 5.1; built inside ``forward``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avbench.losses import mil_contrastive_loss, symmetric_ce
from avbench.models.class_tokens import (
    ClassTokenTransformer,
    class_aware_mil_logits,
    class_maps,
    init_class_tokens,
    init_linear,
    mix_batch,
    multi_hot,
    token_constraint_loss,
)
from avbench.models.encoders import AudioEncoder, ResNet18Trunk, load_torchvision_weights
from avbench.models.registry import register

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's recipe (Sec. 4.1; PROTOCOLS 6.7/6.9): 4 scales at 5x5, D 512, depth 3; tau not stated
    # (EZ-VSL's 0.03 [ours]); 22,050 Hz 257x300; num_classes = the dataset's class count (221 VGGSound-Single).
    "paper": {
        "model": {
            "num_classes": 221, "dim": 512, "width": 64, "audio_width": 64, "last_stride": 2, "tau": 0.03,
            "n_scales": 4, "pool_size": 5, "depth": 3, "heads": 8, "mlp_ratio": 4.0, "drop_path": 0.1,
            "mix_prob": 1.0, "frontend": "paper_22k_257x300",
        },
        "data": {"image_size": 224, "frontend": "paper_22k_257x300", "audio_duration_s": 3.0},
        "train": {"epochs": 100, "batch_size": 128, "lr": 1e-4},
    },
    # [ours] SynthAV demo recipe: EZ-VSL's cpu encoders (width 16, last_stride 1: stages 28/14/7/7 at 112 px),
    # the paper's 5x5 pooling (100 scale tokens; 7x7 would cost 1.25x more), D 64, 4 heads, MLP ratio 2:
    # ~1.4x EZ-VSL's cost per sample, inside the 60 s demo budget at 12 epochs.
    "cpu": {
        "model": {
            "num_classes": 8, "dim": 64, "width": 16, "audio_width": 16, "last_stride": 1, "tau": 0.03,
            "n_scales": 4, "pool_size": 5, "depth": 3, "heads": 4, "mlp_ratio": 2.0, "drop_path": 0.1,
            "mix_prob": 0.5, "frontend": "mel64_16k",
            # as AVGN's cpu preset: duet class-aware cIoU@0.3 0.06 -> 0.27, single-source cIoU@0.5 0.05 -> 0.16
            # (seed 0, same shards; EZ-VSL 0.21 / 0.34)
            "drop_same_class_negatives": True,
        },
        "data": {"image_size": 112, "frontend": "mel64_16k", "audio_duration_s": 3.0},
        "train": {"epochs": 12, "batch_size": 64, "lr": 1e-3},
    },
}


@register("m2vsl", presets=PRESETS)
class M2VSL(nn.Module):
    """M2VSL. Constructor kwargs (ablations of the paper's Table 4):

    * ``n_scales`` (1..4): how many ResNet stages feed MMC/MMT, deepest first (1 = layer4 only).
    * ``use_mmt`` (True): the multi-scale transformer with class tokens and its class-aware losses; off = MMC only
      (class-agnostic maps, ``localize_class`` returns the MMC map for every class).
    * ``pool_size``: rows of every pooled scale map (paper 5).
    * ``mix_prob``: fraction of each training batch replaced by two-source mixtures (as AVGN).
    * ``agnostic_threshold`` (0.5): with MMT, ``localize`` is the max over the class maps of the classes whose audio
      probability is >= this (always the top class) [ours].
    * ``visual_gate`` (False): False compares ``c^a_n`` with ``V-hat^s_p`` (the AVGN code's form); True with
      ``V-hat^s_p (.) c^v_n`` (AVGN Eq. 10 as printed). [ours] default False: on the SynthAV demo the gated form
      let the image-level gate carry the class evidence (duet class-aware cIoU 0.12 gated vs 0.24 ungated).
    * ``frontend``: the data's spectrogram front end (mixture spectrograms are recomputed with it).
    * ``drop_same_class_negatives`` (False) [ours]: as AVGN's switch, for the class-aware MMC terms.
    """

    requires_training = True

    def __init__(
        self,
        num_classes: int = 221,
        dim: int = 512,
        width: int = 64,
        audio_width: int | None = None,
        last_stride: int = 2,
        tau: float = 0.03,
        n_scales: int = 4,
        pool_size: int = 5,
        use_mmt: bool = True,
        depth: int = 3,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.1,
        mix_prob: float = 1.0,
        agnostic_threshold: float = 0.5,
        visual_gate: bool = False,
        frontend: str = "paper_22k_257x300",
        pretrained_path: str | None = None,
        drop_same_class_negatives: bool = False,
    ) -> None:
        super().__init__()
        if not 1 <= n_scales <= 4:
            raise ValueError(f"n_scales must be in 1..4, got {n_scales}")
        if not 0.0 <= mix_prob <= 1.0:
            raise ValueError(f"mix_prob must be in [0, 1], got {mix_prob}")
        self.num_classes = int(num_classes)
        self.tau = float(tau)
        self.n_scales = int(n_scales)
        self.pool_size = int(pool_size)
        self.use_mmt = bool(use_mmt)
        self.mix_prob = float(mix_prob)
        self.agnostic_threshold = float(agnostic_threshold)
        self.visual_gate = bool(visual_gate)
        self.drop_same_class_negatives = bool(drop_same_class_negatives)
        self.frontend = frontend
        self.trunk = ResNet18Trunk(width=width, in_channels=3, last_stride=last_stride)
        if pretrained_path:
            load_torchvision_weights(self.trunk, pretrained_path)
        self.stages = list(range(4 - self.n_scales, 4))  # indices into layer1..layer4
        channels = [width, 2 * width, 4 * width, 8 * width]
        self.proj = nn.ModuleList(nn.Conv2d(channels[s], dim, kernel_size=1) for s in self.stages)
        self.audio = AudioEncoder(dim=dim, width=audio_width or width, in_channels=1)
        if self.use_mmt:
            self.class_tokens = init_class_tokens(self.num_classes, dim)
            self.scale_embed = nn.Parameter(torch.zeros(self.n_scales, dim))
            nn.init.trunc_normal_(self.scale_embed, std=0.02)
            heads_mod = nn.Module()
            heads_mod.mmt = ClassTokenTransformer(dim, depth, heads, mlp_ratio, drop_path)  # Eq. 5-6 (visual)
            heads_mod.phi_a = ClassTokenTransformer(dim, depth, heads, mlp_ratio, drop_path)  # audio side
            heads_mod.fc_cls = nn.Linear(dim, self.num_classes)
            heads_mod.fc_a = nn.Linear(dim, 1)
            heads_mod.fc_v = nn.Linear(dim, 1)
            init_linear(heads_mod)
            self.heads = heads_mod

    # ------------------------------------------------------------------------------------------ encoders
    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Pooled grid ``(rows, cols)`` for an input of ``height x width`` (aspect kept for 1x2 canvases)."""
        return self.pool_size, max(1, round(self.pool_size * width / height))

    def visual_scales(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-norm ``V^s [B, D, rows, cols]`` for each used stage (pool -> 1x1 conv -> L2 over D)."""
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(images))))
        feats = []
        for layer in (t.layer1, t.layer2, t.layer3, t.layer4):
            x = layer(x)
            feats.append(x)
        size = self.grid(*images.shape[-2:])
        return [F.normalize(proj(F.adaptive_avg_pool2d(feats[s], size)), dim=1)
                for proj, s in zip(self.proj, self.stages, strict=True)]

    def encode(self, images: torch.Tensor, specs: torch.Tensor) -> dict[str, Any]:
        """``vs`` list of ``V^s``, ``aud [B, D]``; with MMT ``vhat [B, S, P, D]`` (updated scale tokens),
        ``ca``/``cv [B, C, D]`` (class tokens after the audio / visual transformer)."""
        vs, aud = self.visual_scales(images), self.audio(specs)
        out: dict[str, Any] = {"vs": vs, "aud": aud}
        if not self.use_mmt:
            return out
        b, d = aud.shape
        p = vs[0].shape[-2] * vs[0].shape[-1]
        tokens = torch.cat([v.flatten(2).transpose(1, 2) + self.scale_embed[i] for i, v in enumerate(vs)], dim=1)
        vhat, cv = self.heads.mmt(tokens, self.class_tokens)
        _, ca = self.heads.phi_a(aud.unsqueeze(1), self.class_tokens)
        out.update(vhat=vhat.reshape(b, self.n_scales, p, d), cv=cv, ca=ca)
        return out

    # ------------------------------------------------------------------------------------------ training
    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        labels = batch["label_idx"].to(batch["spec"].device)
        n_mixed = round(self.mix_prob * labels.shape[0]) if self.training else 0
        specs, partner = mix_batch({**batch, "label_idx": labels}, n_mixed, self.frontend)
        enc = self.encode(batch["image"], specs)
        mmc = sum(mil_contrastive_loss(v, enc["aud"], self.tau)[0] for v in enc["vs"])  # Eq. 4
        out: dict[str, torch.Tensor] = {"mmc": mmc.detach()}
        loss = mmc
        if self.use_mmt:
            y_a = multi_hot(labels, self.num_classes, partner, n_mixed)
            y_v = multi_hot(labels, self.num_classes)
            ar = torch.arange(labels.shape[0], device=labels.device)
            query = enc["ca"][ar, labels]  # [b]: the audio class token of the image's class n_b
            gate = enc["cv"][:, labels] if self.visual_gate else None  # [m, b]
            same = labels[:, None] == labels[None] if self.drop_same_class_negatives else None
            cmmc = sum(symmetric_ce(class_aware_mil_logits(query, enc["vhat"][:, s], gate, self.tau).float(), same)
                       for s in range(self.n_scales))
            token = token_constraint_loss(self.heads.fc_cls, self.class_tokens)
            cls_a = F.binary_cross_entropy_with_logits(self.heads.fc_a(enc["ca"]).squeeze(-1).float(), y_a)
            cls_v = F.binary_cross_entropy_with_logits(self.heads.fc_v(enc["cv"]).squeeze(-1).float(), y_v)
            loss = loss + cmmc + token + cls_a + cls_v
            out.update(cmmc=cmmc.detach(), token=token.detach(), cls_a=cls_a.detach(), cls_v=cls_v.detach())
        out["loss"] = loss
        return out

    # ----------------------------------------------------------------------------------------- inference
    def _mmc_map(self, enc: dict[str, Any]) -> torch.Tensor:
        """Class-agnostic MMC map: mean over scales of ``cos(A, V^s)`` ``[B, rows, cols]``."""
        return torch.stack([torch.einsum("ndhw,nd->nhw", v, enc["aud"]) for v in enc["vs"]]).mean(0)

    def _class_maps(self, enc: dict[str, Any], cls: torch.Tensor | None) -> torch.Tensor:
        """Fused class maps ``[B, N, rows, cols]`` for ``cls [B, N]`` (None: all classes)."""
        rows, cols = enc["vs"][0].shape[-2:]
        ca, cv = enc["ca"], enc["cv"]
        if cls is not None:
            ca, cv = ca.gather(1, cls[..., None].expand(-1, -1, ca.shape[-1])), cv.gather(
                1, cls[..., None].expand(-1, -1, cv.shape[-1]))
        gate = cv if self.visual_gate else None
        maps = torch.stack([class_maps(ca, enc["vhat"][:, s], gate) for s in range(self.n_scales)]).mean(0)
        return maps.reshape(maps.shape[0], maps.shape[1], rows, cols)

    @torch.no_grad()
    def localize_class(self, images: torch.Tensor, specs: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
        """Fused class map of ``class_idx[b]`` ``[B, rows, cols]`` in [-1, 1]; MMC map without MMT."""
        enc = self.encode(images, specs)
        if not self.use_mmt:
            return self._mmc_map(enc).float()
        return self._class_maps(enc, class_idx.to(images.device).long()[:, None])[:, 0].float()

    @torch.no_grad()
    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        """Class-agnostic fused map ``[B, rows, cols]``: with MMT the max over the class maps of the classes the
        audio predicts (see ``agnostic_threshold``) [ours]; without MMT the MMC map."""
        enc = self.encode(images, specs)
        if not self.use_mmt:
            return self._mmc_map(enc).float()
        maps = self._class_maps(enc, None)
        prob = torch.sigmoid(self.heads.fc_a(enc["ca"]).squeeze(-1))
        keep = (prob >= self.agnostic_threshold) | F.one_hot(prob.argmax(1), prob.shape[1]).bool()
        return maps.masked_fill(~keep[..., None, None], float("-inf")).amax(dim=1).float()

    @torch.no_grad()
    def segment(self, images: torch.Tensor, specs: torch.Tensor, class_idx: torch.Tensor | None = None,
                threshold: float = 0.5) -> torch.Tensor:
        """Binary masks ``[B, H, W]`` at image resolution: the (class) map, bilinear upsampling, per-sample
        min-max, ``>= threshold`` [ours: weakly-supervised segmentation from the localization map]."""
        maps = self.localize(images, specs) if class_idx is None else self.localize_class(images, specs, class_idx)
        up = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        lo, hi = up.flatten(1).amin(1)[:, None, None], up.flatten(1).amax(1)[:, None, None]
        return (up - lo) / (hi - lo).clamp_min(1e-12) >= threshold

    @torch.no_grad()
    def embed(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global unit-norm ``(visual, audio) [B, D]``: visual = max over locations of the deepest scale map,
        re-normalised (EZ-VSL style), audio = ``A`` [ours: the paper defines no global embedding]."""
        vs, aud = self.visual_scales(images), self.audio(specs)
        return F.normalize(vs[-1].flatten(-2).amax(dim=-1), dim=1).float(), aud.float()

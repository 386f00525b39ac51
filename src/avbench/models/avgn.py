"""AVGN - Audio-Visual Grouping Network (Mo & Tian, CVPR 2023; stoneMo/AVGN) - PROTOCOLS 6.4.

Encoders as EZ-VSL (visual map ``f^v_p``, global audio ``f^a``, both unit-norm). Learnable class tokens
``c_1..c_C`` (one set shared by both modalities); self-attention ``phi^a`` over ``[f^a; c]`` and ``phi^v`` over
``[f^v_p; c]`` (depth 3, Eq. 2-5); soft grouping (Eq. 6-8) -> class-aware ``g^a_i``, ``g^v_i``.

Loss (Eq. 11) ``L = L_loc + L_group``:

* token constraint (Sec. 3.2) ``CE(h_i, softmax(FC(c_i)))``;
* group loss (Eq. 9) ``BCE(y^a_i, sigmoid(FC_a(g^a_i))) + BCE(y^v_i, sigmoid(FC_v(g^v_i)))`` (one FC to a scalar
  shared by all classes, as in the code), ``y^a`` multi-hot of the mixture, ``y^v`` the image's class;
* class-aware localization loss (Eq. 10) with ``sim(b, m) = max_p cos(g^a_{b,n}, f^v_{m,p} (.) g^v_{m,n})``,
  ``n`` = the image's (first source's) class; symmetric as EZ-VSL's loss (the code's ``max_xmil_loss``).

Training mixtures are built inside ``forward`` (PROTOCOLS 5.1): item b's audio + its partner's (first later item
in the batch with a different class), image = item b's frame, ``y^a`` = both classes, ``y^v`` = b's class.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avbench.losses import mil_contrastive_loss, symmetric_ce
from avbench.models.class_tokens import (
    ClassTokenTransformer,
    GroupingBlock,
    class_aware_mil_logits,
    class_maps,
    init_class_tokens,
    init_linear,
    mix_batch,
    multi_hot,
    token_constraint_loss,
)
from avbench.models.encoders import AudioEncoder, VisualEncoder
from avbench.models.registry import register

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's recipe (Sec. 4.1; PROTOCOLS 6.4/6.9): D 512, depth 3, tau 0.03 (code), 22,050 Hz 257x300.
    # num_classes 221 = VGGSound-Single (37 for VGGSound-Instruments): set it to the dataset's class count.
    "paper": {
        "model": {
            "num_classes": 221, "dim": 512, "width": 64, "audio_width": 64, "last_stride": 2, "tau": 0.03,
            "depth": 3, "heads": 8, "mlp_ratio": 4.0, "drop_path": 0.1, "mix_prob": 1.0,
            "frontend": "paper_22k_257x300",
        },
        "data": {"image_size": 224, "frontend": "paper_22k_257x300", "audio_duration_s": 3.0},
        "train": {"epochs": 100, "batch_size": 128, "lr": 1e-4},
    },
    # [ours] SynthAV demo recipe: EZ-VSL's cpu encoders (width 16, stride 16 -> 7x7 at 112 px), D 128,
    # 4 heads, MLP ratio 2; half of each batch is mixed so single-source clips are still seen as such.
    # ~1.5x EZ-VSL's (stride-16) cost per sample, so 10 epochs keep the demo run under 80 s.
    "cpu": {
        "model": {
            "num_classes": 8, "dim": 128, "width": 16, "audio_width": 16, "last_stride": 2, "tau": 0.03,
            "depth": 3, "heads": 4, "mlp_ratio": 2.0, "drop_path": 0.1, "mix_prob": 0.5,
            "frontend": "mel64_16k", "padding_mode": "replicate", "visual_stages": 3,  # see the EZ-VSL cpu preset
            # With ~4 same-class images per batch of 32 (8 classes), Eq. 10 pushed each class query away from
            # sounding images of its own class; dropping those pairs took duet class-aware cIoU@0.3 from 0.08 to
            # 0.40 (seed 0, same shards; EZ-VSL 0.21), class-map argmax inside the right box 62/96 vs 16/96.
            "drop_same_class_negatives": True,
        },
        "data": {"image_size": 112, "frontend": "mel64_16k", "audio_duration_s": 3.0},
        # batch 32 / lr 3e-3 (EZ-VSL's cpu recipe): at batch 64 / lr 1e-3 the class-aware MIL term had not moved
        # from chance after 10 epochs (demo: duet class-aware cIoU@0.3 0.0); with this it learns (0.19, seed 0).
        "train": {"epochs": 10, "batch_size": 32, "lr": 3e-3},
    },
}


@register("avgn", presets=PRESETS)
class AVGN(nn.Module):
    """AVGN. Constructor kwargs (ablation switches in the paper's Table 3):

    * ``use_avct`` (True): audio-visual class tokens - the self-attention transformers ``phi^a``, ``phi^v`` and
      the token-constraint loss. Off: the grouping sees the raw features and the raw tokens.
    * ``use_avg`` (True): audio-visual grouping (Eq. 7-8). Off: ``g_i`` = the (attended) class tokens.
    * Both off = the EZ-VSL baseline row: plain MIL contrastive loss, class-agnostic maps, no group loss.
    * ``mix_prob``: fraction of each training batch replaced by two-source mixtures (1.0 = AVGN's
      multi-source training; the first ``round(mix_prob * B)`` items of the shuffled batch are mixed).
    * ``agnostic_threshold`` (0.5): ``localize`` keeps classes with ``sigmoid(FC_a(g^a_i))`` >= this (always the
      argmax class) and takes the max over their class maps [ours; the paper only localizes given classes].
    * ``visual_gate`` (True): Eq. 10 / inference compare ``g^a_n`` with ``f^v_p (.) g^v_n`` as printed; False
      compares with ``f^v_p`` itself, as the released code's ``max_xmil_loss(img, xa[cls])`` does (the gate is a
      global, image-level vector, so it can carry the class evidence and leave the per-location term flat).
    * ``frontend``: the spectrogram front end of the data (used to recompute mixture spectrograms).
    * ``drop_same_class_negatives`` (False) [ours]: in Eq. 10 the other batch images whose class is the query's
      are left out of the softmax instead of counting as negatives (the class query of class n cannot tell two
      sounding class-n images apart, so pushing one away contradicts the class-level map).
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
        depth: int = 3,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.1,
        use_avct: bool = True,
        use_avg: bool = True,
        mix_prob: float = 1.0,
        agnostic_threshold: float = 0.5,
        visual_gate: bool = True,
        frontend: str = "paper_22k_257x300",
        pretrained_path: str | None = None,
        padding_mode: str = "zeros",
        visual_stages: int = 4,
        drop_same_class_negatives: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= mix_prob <= 1.0:
            raise ValueError(f"mix_prob must be in [0, 1], got {mix_prob}")
        self.num_classes = int(num_classes)
        self.tau = float(tau)
        self.use_avct, self.use_avg = bool(use_avct), bool(use_avg)
        self.class_aware = self.use_avct or self.use_avg
        self.mix_prob = float(mix_prob)
        self.agnostic_threshold = float(agnostic_threshold)
        self.visual_gate = bool(visual_gate)
        self.drop_same_class_negatives = bool(drop_same_class_negatives)
        self.frontend = frontend
        self.visual = VisualEncoder(dim=dim, width=width, last_stride=last_stride, pretrained_path=pretrained_path,
                                    padding_mode=padding_mode, n_stages=visual_stages)
        self.audio = AudioEncoder(dim=dim, width=audio_width or width, in_channels=1)
        if self.class_aware:
            heads_mod = nn.Module()  # container so init_linear touches only the new heads
            self.class_tokens = init_class_tokens(self.num_classes, dim)
            if self.use_avct:
                heads_mod.phi_a = ClassTokenTransformer(dim, depth, heads, mlp_ratio, drop_path)
                heads_mod.phi_v = ClassTokenTransformer(dim, depth, heads, mlp_ratio, drop_path)
                heads_mod.fc_cls = nn.Linear(dim, self.num_classes)  # token constraint e_i = softmax(FC(c_i))
            if self.use_avg:
                heads_mod.group_a = GroupingBlock(dim)
                heads_mod.group_v = GroupingBlock(dim)
            heads_mod.fc_a = nn.Linear(dim, 1)  # p^a_i = sigmoid(FC(g^a_i)), one FC shared by classes (code)
            heads_mod.fc_v = nn.Linear(dim, 1)
            init_linear(heads_mod)
            self.heads = heads_mod

    # ------------------------------------------------------------------------------------------ encoders
    def encode(self, images: torch.Tensor, specs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``vmap [B, D, h, w]``, ``aud [B, D]`` (unit-norm), ``fv [B, P, D]``; class-aware: ``ga``, ``gv``
        ``[B, C, D]``."""
        vmap, aud = self.visual(images), self.audio(specs)
        out = {"vmap": vmap, "aud": aud, "fv": vmap.flatten(2).transpose(1, 2)}
        if not self.class_aware:
            return out
        b = aud.shape[0]
        fv, fa = out["fv"], aud.unsqueeze(1)
        if self.use_avct:  # Eq. 2-3
            fv_hat, cv = self.heads.phi_v(fv, self.class_tokens)
            fa_hat, ca = self.heads.phi_a(fa, self.class_tokens)
        else:
            fv_hat, fa_hat = fv, fa
            cv = ca = self.class_tokens.unsqueeze(0).expand(b, -1, -1)
        if self.use_avg:  # Eq. 6-8
            out["gv"] = self.heads.group_v(fv_hat, cv)
            out["ga"] = self.heads.group_a(fa_hat, ca, values=fa)
        else:
            out["gv"], out["ga"] = cv, ca
        return out

    # ------------------------------------------------------------------------------------------ training
    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        labels = batch["label_idx"].to(batch["spec"].device)
        n_mixed = round(self.mix_prob * labels.shape[0]) if self.training else 0
        specs, partner = mix_batch({**batch, "label_idx": labels}, n_mixed, self.frontend)
        enc = self.encode(batch["image"], specs)
        if not self.class_aware:  # baseline row: EZ-VSL on the (mixture) audio
            loss, logits = mil_contrastive_loss(enc["vmap"], enc["aud"], self.tau)
            return {"loss": loss, "loc": loss.detach(), "logits": logits}
        y_a = multi_hot(labels, self.num_classes, partner, n_mixed)
        y_v = multi_hot(labels, self.num_classes)
        ar = torch.arange(labels.shape[0], device=labels.device)
        query = enc["ga"][ar, labels]  # g^a_{b, n_b}: the audio group of the image's class
        gate = enc["gv"][:, labels] if self.visual_gate else None  # [m, b]: image m's group of class n_b
        logits = class_aware_mil_logits(query, enc["fv"], gate, self.tau)  # [audio b, image m]
        same = labels[:, None] == labels[None] if self.drop_same_class_negatives else None
        loc = symmetric_ce(logits.float(), same)  # Eq. 10 (+ the code's image->audio direction)
        logit_a = self.heads.fc_a(enc["ga"]).squeeze(-1).float()
        logit_v = self.heads.fc_v(enc["gv"]).squeeze(-1).float()
        group_a = F.binary_cross_entropy_with_logits(logit_a, y_a)  # Eq. 9, mean over B x C (code)
        group_v = F.binary_cross_entropy_with_logits(logit_v, y_v)
        out = {"loc": loc.detach(), "group_a": group_a.detach(), "group_v": group_v.detach(), "logits": logits}
        loss = loc + group_a + group_v
        if self.use_avct:
            token = token_constraint_loss(self.heads.fc_cls, self.class_tokens)
            out["token"] = token.detach()
            loss = loss + token
        out["loss"] = loss
        return out

    # ----------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def localize_class(self, images: torch.Tensor, specs: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
        """Map of class ``class_idx[b]``: ``cos(g^a_n, f^v_p (.) g^v_n)`` ``[B, h, w]`` in [-1, 1] (Sec. 3.3).

        Call once per class for any number of sources (2, 3, ...)."""
        enc = self.encode(images, specs)
        h, w = enc["vmap"].shape[-2:]
        if not self.class_aware:
            return torch.einsum("ndhw,nd->nhw", enc["vmap"], enc["aud"]).float()
        ar = torch.arange(images.shape[0], device=images.device)
        cls = class_idx.to(images.device).long()
        gate = enc["gv"][ar, cls].unsqueeze(1) if self.visual_gate else None
        maps = class_maps(enc["ga"][ar, cls].unsqueeze(1), enc["fv"], gate)
        return maps[:, 0].reshape(-1, h, w).float()

    @torch.no_grad()
    def class_probs(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        """Audio class probabilities ``sigmoid(FC_a(g^a_i))`` ``[B, C]``."""
        enc = self.encode(images, specs)
        return torch.sigmoid(self.heads.fc_a(enc["ga"]).squeeze(-1)).float()

    @torch.no_grad()
    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        """Class-agnostic map ``[B, h, w]``: max over the class maps of the audio-predicted classes
        (probability >= ``agnostic_threshold``, always including the top class) [ours]."""
        enc = self.encode(images, specs)
        h, w = enc["vmap"].shape[-2:]
        if not self.class_aware:
            return torch.einsum("ndhw,nd->nhw", enc["vmap"], enc["aud"]).float()
        maps = class_maps(enc["ga"], enc["fv"], enc["gv"] if self.visual_gate else None)  # [B, C, P]
        prob = torch.sigmoid(self.heads.fc_a(enc["ga"]).squeeze(-1))
        keep = (prob >= self.agnostic_threshold) | F.one_hot(prob.argmax(1), prob.shape[1]).bool()
        maps = maps.masked_fill(~keep.unsqueeze(-1), float("-inf")).amax(dim=1)
        return maps.reshape(-1, h, w).float()

    @torch.no_grad()
    def embed(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global unit-norm ``(visual [B, D], audio [B, D])`` from the encoders (as EZ-VSL: visual = max over
        locations of ``f^v``, re-normalised; audio = ``f^a``) [ours: the paper defines no global embedding]."""
        vmap, aud = self.visual(images), self.audio(specs)
        return F.normalize(vmap.flatten(-2).amax(dim=-1), dim=1).float(), aud.float()

"""OneAVM (Mo & Morgado, ICML 2023; no public code) - PROTOCOLS 6.3, paper sections 3.2-3.4.

Shared two-stream encoders (ResNet-18 trunks: visual ImageNet-initialisable, audio from scratch on the log-(mel)
spectrogram) with one linear head per modality per objective:

* CL (Eq. 1-2): ``s_ij = cos(a_i^glb, v_j^glb) + max_xy cos(a_i^loc, v_j^loc(xy))``, symmetric InfoNCE over the
  batch; ``v^glb = g_v^glb(max_xy v^xy)`` (global max-pool).
* MAS (Eq. 3-4): ``a_m = a_i + a_j`` (partner = rolled batch, ``separation.partner_permutation``), a U-Net mask
  decoder ``g_sep(a_m, v_i)`` predicts the mask of source i on the mixture STFT; BCE on binary dominance targets.
* MVA (Eq. 5): ``v_m = alpha * v_i + (1 - alpha) * v_j`` (pixel-space mixup), separate heads ``g^mva``,
  ``alpha * L_CL(V_m, a_i) + (1 - alpha) * L_CL(V_m, a_j)``; L_CL there is the multiple-instance (max over
  locations of the mixed frame) form [ours reading, PROTOCOLS 6.3].
* Total (Eq. 6): ``L = mean_i(L_CL + L_MAS + L_MVA)``, no weights.

[ours] decisions where the paper is silent: tau 0.03 (EZ-VSL lineage); audio global max-pool (EZ-VSL); the MAS
decoder is ``separation.MaskUNet`` on the mixture STFT log-magnitude, FiLM-conditioned on the concatenation of the
base frame's max-pooled visual trunk feature and the max-pooled audio-trunk feature of the mixture spectrogram
(the paper: "the decoder receives the representations of the audio mixture and the visual embeddings of the base
sample"), so MAS gradients reach both shared encoders; the STFT recipe is a constructor kwarg (paper: the 8 kHz
50/25 ms front end; cpu: 16 kHz 512/256); the MAS mixture is built from the batch's centre-window waves (the data
section must set ``return_wave: true``); MVA's partner is the same rolled batch as MAS's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avbench.audio import spectrogram
from avbench.losses import mil_contrastive_loss, symmetric_ce
from avbench.models import separation as sep
from avbench.models.encoders import ResNet18Trunk, load_torchvision_weights
from avbench.models.registry import register

PRESETS: dict[str, dict[str, Any]] = {
    # Paper recipe (section 4 "Implementation"): 224 px, 3 s at 8 kHz -> 128x128, ResNet-18 x2, U-Net depth 8,
    # alpha 0.5, Adam 1e-4, batch 128, 20 epochs. D not stated: 512 (ResNet-18 width) [ours].
    "paper": {
        "model": {"dim": 512, "width": 64, "audio_width": 64, "last_stride": 2, "tau": 0.03,
                  "alpha": 0.5, "decoder_depth": 8, "decoder_levels": 6, "decoder_base": 32,
                  "frontend": "oneavm_8k_128x128", "stft": "oneavm_8k", "mas_weighting": "none"},
        "data": {"image_size": 224, "frontend": "oneavm_8k_128x128", "audio_duration_s": 3.0, "return_wave": True},
        "train": {"epochs": 20, "batch_size": 128, "lr": 1e-4},
    },
    # [ours] CPU recipe for the SynthAV demo: EZ-VSL's cpu trunk (width 16, 112 px, replicate padding, 3 visual
    # stages, stride 8 -> 14x14 maps) and its schedule (lr 3e-3, cosine, 12 epochs, batch 32); 64-mel audio; a
    # small U-Net (4 levels, 4 transposed convs, base 4) on a 16 kHz 512/256 STFT pooled 2 (freq) x 4 (time).
    # The decoder is conditioned on the localized visual feature (``sep_condition``): a probe of the earlier
    # max-pooled conditioning found it barely class-separable (nearest-centroid accuracy 0.22 over 8 classes vs
    # 0.53 localized). The decoder sees absolute frequency (``decoder_freq_coord``) and adds a condition-driven
    # spectral envelope to its logits (``decoder_freq_prior``): a conv U-Net is translation-equivariant in
    # frequency, while which bins a source dominates depends mostly on its class's band. Measured, seed 0
    # (session 4, /tmp/exp runs on the demo shards; mixture SDR 0.09 dB): without either, binarised-mask SDR
    # -1.33 dB (21 silent estimates); coordinate only -1.8 dB; envelope only +3.0 dB but duet class-aware
    # cIoU@0.3 0.21 (= EZ-VSL); both +4.6 dB, duet 0.33, localization cIoU@0.5 0.48. Frozen-encoder decoder
    # probes (400 steps) agree: weighted mask accuracy 0.65 plain, 0.68 with the coordinate, 0.64 already after
    # 100 steps with the envelope. Tried and worse earlier: decoder lr x3 (cIoU 0.21, -3.6 dB), MAS detached
    # from the encoders (0.34, -4.1 dB), 8 epochs (0.32, -3.7 dB), SoP's output head (a condition-weighted sum of
    # K decoder maps) in the probe.
    "cpu": {
        "model": {"dim": 128, "width": 16, "audio_width": 16, "last_stride": 1, "tau": 0.03,
                  "alpha": 0.5, "decoder_depth": 4, "decoder_levels": 4, "decoder_base": 4, "decoder_pool": [2, 4],
                  "frontend": "mel64_16k", "stft": "cpu_16k", "mas_weighting": "sop", "sep_lr_mult": 1.0,
                  "padding_mode": "replicate", "visual_stages": 3, "sep_condition": "localized",
                  "decoder_freq_coord": True, "decoder_freq_prior": 64},
        "data": {"image_size": 112, "frontend": "mel64_16k", "audio_duration_s": 3.0, "return_wave": True},
        "train": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "lr_schedule": "cosine"},
    },
}


@register("oneavm", presets=PRESETS)
class OneAVM(nn.Module):
    """OneAVM. Ablation switches (constructor kwargs):

    ``use_cl`` / ``use_mas`` / ``use_mva`` (bool, default True): include L_CL / L_MAS / L_MVA in Eq. (6).
    ``alpha`` (0.5): MVA mix-up coefficient. ``decoder_depth`` (8; paper ablation {4, 8, 12, 16}): transposed-conv
    layers of the MAS decoder. ``mas_target``: ``dominance`` (|X_i| > |X_j|, default) or ``as_printed``
    (|X_i| > |X_m|). ``mas_weighting``: ``none`` (Eq. 4: plain mean BCE) or ``sop`` (log1p|X_mix| bin weights).
    Other kwargs: ``dim``, ``width``/``audio_width``, ``last_stride``, ``padding_mode`` / ``visual_stages`` (visual
    ``ResNet18Trunk`` options, as in EZ-VSL), ``tau``, ``pretrained_path`` (ImageNet
    ResNet-18 state_dict file), ``frontend`` (spectrogram front end of the mixtures: must equal the data
    section's), ``sample_rate`` (rate of the batch waves), ``stft`` (``separation.STFT_PRESETS`` name),
    ``decoder_levels``, ``decoder_base``, ``decoder_pool``, ``decoder_freq_coord``, ``decoder_freq_prior``
    (``separation.MaskUNet``'s ``pool``, ``freq_coord``, ``freq_prior``), ``sep_lr_mult`` (decoder lr
    multiplier in ``param_groups``). ``sep_condition`` [ours]: the visual part of the decoder's condition, ``max``
    (max-pooled trunk map of the base frame, the paper's "visual embedding") or ``localized`` (the trunk map pooled
    with the frame's softmax localization map of the mixture, so silent objects in the frame do not condition the
    mask). ``sep_detach`` [ours]: MAS gradients stop at the decoder's condition. The condition is batch-normalised
    [ours]: unit-norm trunk features of all frames share one dominant direction, so un-centred inputs barely
    differ between the two sources of a mixture.
    """

    requires_training = True

    def __init__(
        self,
        dim: int = 512,
        width: int = 64,
        audio_width: int | None = None,
        last_stride: int = 2,
        tau: float = 0.03,
        alpha: float = 0.5,
        use_cl: bool = True,
        use_mas: bool = True,
        use_mva: bool = True,
        decoder_depth: int = 8,
        decoder_levels: int = 4,
        decoder_base: int = 16,
        decoder_pool: int | Sequence[int] = 1,
        decoder_freq_coord: bool = False,
        decoder_freq_prior: int = 0,
        mas_target: sep.MaskTarget = "dominance",
        mas_weighting: str = "none",
        frontend: str = "mel64_16k",
        sample_rate: int = 16000,
        stft: str = "cpu_16k",
        sep_lr_mult: float = 1.0,
        padding_mode: str = "zeros",
        visual_stages: int = 4,
        sep_condition: str = "max",
        sep_detach: bool = False,
        pretrained_path: str | None = None,
    ) -> None:
        super().__init__()
        if not (use_cl or use_mas or use_mva):
            raise ValueError("OneAVM needs at least one of use_cl, use_mas, use_mva")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if mas_target not in ("dominance", "as_printed"):
            raise ValueError(f"mas_target must be 'dominance' or 'as_printed', got {mas_target!r}")
        if mas_weighting not in ("none", "sop"):
            raise ValueError(f"mas_weighting must be 'none' or 'sop', got {mas_weighting!r}")
        if sep_condition not in ("max", "localized"):
            raise ValueError(f"sep_condition must be 'max' or 'localized', got {sep_condition!r}")
        self.sep_condition = sep_condition
        self.sep_detach = bool(sep_detach)
        audio_width = audio_width or width
        self.tau, self.alpha = float(tau), float(alpha)
        self.use_cl, self.use_mas, self.use_mva = bool(use_cl), bool(use_mas), bool(use_mva)
        self.mas_target, self.mas_weighting = mas_target, mas_weighting
        self.frontend, self.sample_rate = frontend, int(sample_rate)
        self.stft_cfg = sep.get_stft(stft)
        self.sep_lr_mult = float(sep_lr_mult)
        self.visual = ResNet18Trunk(width=width, in_channels=3, last_stride=last_stride, padding_mode=padding_mode,
                                    n_stages=visual_stages)
        if pretrained_path:
            load_torchvision_weights(self.visual, pretrained_path)
        self.audio = ResNet18Trunk(width=audio_width, in_channels=1)
        cv, ca = self.visual.out_channels, self.audio.out_channels
        # One linear projection head per modality per objective (paper section 4).
        self.g_v_glb, self.g_a_glb = nn.Linear(cv, dim), nn.Linear(ca, dim)
        self.g_v_loc, self.g_a_loc = nn.Conv2d(cv, dim, 1), nn.Linear(ca, dim)
        self.g_v_mva, self.g_a_mva = nn.Conv2d(cv, dim, 1), nn.Linear(ca, dim)
        # [ours] batch-centred conditioning: the unit-norm trunk features of all frames share one dominant
        # direction (pairwise cos ~0.9 on SynthAV), so un-centred FiLM inputs barely differ between sources
        self.cond_norm = nn.BatchNorm1d(cv + ca)
        self.g_sep = sep.MaskUNet(cond_dim=cv + ca, depth=decoder_depth, levels=decoder_levels, base=decoder_base,
                                   pool=decoder_pool if isinstance(decoder_pool, int) else tuple(decoder_pool),
                                   freq_coord=decoder_freq_coord, freq_prior=decoder_freq_prior)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """[ours] The MAS decoder may train at ``sep_lr_mult * lr`` (SoP: 10x the frame net's lr, PROTOCOLS 2.5)."""
        dec = [*self.g_sep.parameters(), *self.cond_norm.parameters()]
        ids = {id(p) for p in dec}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": rest, "lr": lr}, {"params": dec, "lr": lr * self.sep_lr_mult}]

    # ------------------------------------------------------------------------------------------ features
    def _audio_feat(self, specs: torch.Tensor) -> torch.Tensor:
        return torch.amax(self.audio(specs), dim=(-2, -1))  # global max-pool (EZ-VSL) [ours]

    def _heads(self, vmap: torch.Tensor, afeat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "v_glb": F.normalize(self.g_v_glb(vmap.amax(dim=(-2, -1))), dim=1),  # g_v^glb(max_xy v^xy)
            "v_loc": F.normalize(self.g_v_loc(vmap), dim=1),
            "a_glb": F.normalize(self.g_a_glb(afeat), dim=1),
            "a_loc": F.normalize(self.g_a_loc(afeat), dim=1),
        }

    def scores(self, h: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. (1): ``s[i, j] = cos(a_i^glb, v_j^glb) + max_xy cos(a_i^loc, v_j^loc(xy))``, rows = audio."""
        glb = h["a_glb"] @ h["v_glb"].t()
        loc = torch.einsum("jdhw,id->ijhw", h["v_loc"], h["a_loc"]).flatten(-2).amax(dim=-1)
        return glb + loc

    # ------------------------------------------------------------------------------------------ losses
    def cl_loss(self, h: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. (2) averaged over i: both directions of InfoNCE on ``s / tau`` (B - 1 in-batch negatives)."""
        return symmetric_ce(self.scores(h).float() / self.tau)

    def mva_loss(self, mixed_vmap: torch.Tensor, afeat: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
        """Eq. (5): ``alpha L_CL(V_m, a_i) + (1 - alpha) L_CL(V_m, a_j)`` with MIL (max over xy) similarities."""
        v = F.normalize(self.g_v_mva(mixed_vmap), dim=1)
        a = F.normalize(self.g_a_mva(afeat), dim=1)
        loss_i, _ = mil_contrastive_loss(v, a, self.tau)
        loss_j, _ = mil_contrastive_loss(v, a[partner], self.tau)
        return self.alpha * loss_i + (1.0 - self.alpha) * loss_j

    def _mixture(self, wave: torch.Tensor, partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mixture spectrogram [B,1,F,T], X_src [B,F',T'], X_mix)``; STFT is linear so X_mix = X_i + X_j."""
        with torch.no_grad():
            mix = wave + wave[partner]
            spec_m = spectrogram(mix, self.sample_rate, self.frontend).unsqueeze(1).float()
            x_src = sep.stft(wave, self.stft_cfg, self.sample_rate)
            x_mix = x_src + x_src[partner]
        return spec_m, x_src, x_mix

    def visual_condition(self, vmap: torch.Tensor, afeat: torch.Tensor) -> torch.Tensor:
        """The base frame's visual vector for the decoder ``[B, C]`` (``sep_condition``)."""
        if self.sep_condition == "max":
            return vmap.amax(dim=(-2, -1))
        # [ours] pooled with the frame's (detached) softmax localization map of the mixture: the object that
        # sounds in this frame, not every object in it (silent distractors included)
        with torch.no_grad():
            h = self._heads(vmap, afeat)
            attn = torch.einsum("ndhw,nd->nhw", h["v_loc"], h["a_loc"]).flatten(1).div(self.tau).softmax(1)
        return torch.einsum("nchw,nhw->nc", vmap, attn.view(-1, *vmap.shape[-2:]))

    def mask_logits(self, x_mix: torch.Tensor, vmap: torch.Tensor, spec_mix: torch.Tensor) -> torch.Tensor:
        """``g_sep(a_m, v_i)``: mask logits ``[B, F, T]`` on the mixture STFT grid."""
        # sep_detach [ours]: MAS trains the decoder only, so CL / MVA alone shape the shared encoders
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.sep_detach):
            afeat = self._audio_feat(spec_mix)
            # [ours] each part L2-normalised: scale-free conditioning, neither modality dominates the FiLM input
            parts = torch.cat([F.normalize(self.visual_condition(vmap, afeat), dim=1),
                               F.normalize(afeat, dim=1)], dim=1)
        cond = self.cond_norm(parts.detach() if self.sep_detach else parts)
        return self.g_sep(sep.log_magnitude(x_mix), cond)

    def mas_loss(self, wave: torch.Tensor, vmap: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
        """Eq. (3)-(4): BCE between the predicted mask of source i and its binary dominance target."""
        spec_m, x_src, x_mix = self._mixture(wave, partner)
        logits = self.mask_logits(x_mix, vmap, spec_m)
        mag_i, mag_j = x_src.abs(), x_src[partner].abs()
        target = sep.dominance_mask(mag_i, mag_j, x_mix.abs(), self.mas_target)
        weight = sep.bin_weights(x_mix.abs()) if self.mas_weighting == "sop" else None
        return sep.mask_bce(logits.float(), target, weight)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, specs = batch["image"], batch["spec"]
        partner = sep.partner_permutation(batch["label_idx"].to(images.device))
        vmap = self.visual(images)
        afeat = self._audio_feat(specs)
        out: dict[str, torch.Tensor] = {}
        if self.use_cl:
            out["loss_cl"] = self.cl_loss(self._heads(vmap, afeat))
        if self.use_mva:
            mixed = self.alpha * images + (1.0 - self.alpha) * images[partner]  # pixel-space mixup
            out["loss_mva"] = self.mva_loss(self.visual(mixed), afeat, partner)
        if self.use_mas:
            if "wave" not in batch:
                raise KeyError("OneAVM's MAS needs batch['wave']: load the data with return_wave=True "
                               "(preset data section) or set use_mas=False")
            out["loss_mas"] = self.mas_loss(batch["wave"].float(), vmap, partner)
        out["loss"] = sum(out.values())  # Eq. (6): unweighted sum, each term already a batch mean
        return out

    # ------------------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        """``cos(a^loc, v^loc(xy))`` per sample: ``[B, h, w]`` (the local term of Eq. 1)."""
        h = self._heads(self.visual(images), self._audio_feat(specs))
        return torch.einsum("ndhw,nd->nhw", h["v_loc"], h["a_loc"]).float()

    @torch.no_grad()
    def embed(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global unit-norm ``(g_v^glb(max_xy v), g_a^glb(a))``."""
        h = self._heads(self.visual(images), self._audio_feat(specs))
        return h["v_glb"].float(), h["a_glb"].float()

    @torch.no_grad()
    def separate(self, mixture_wave: torch.Tensor, images: torch.Tensor, sample_rate: int,
                 binarize: bool = True) -> torch.Tensor:
        """Source shown in each image from ``mixture_wave [B, n]``: mask x mixture STFT, iSTFT. ``binarize``:
        the mask thresholded at 0.5 (Sound-of-Pixels' convention for masks trained with BCE) or, False, the
        sigmoid mask itself (the expected dominance mask)."""
        mix = mixture_wave.float()
        spec_m = spectrogram(mix, sample_rate, self.frontend).unsqueeze(1).float()
        x_mix = sep.stft(mix, self.stft_cfg, sample_rate)
        logits = self.mask_logits(x_mix, self.visual(images), spec_m)
        est = sep.istft(sep.apply_mask(x_mix, logits, binarize=binarize), self.stft_cfg, sample_rate, mix.shape[-1])
        return est.clamp(-1.0, 1.0)

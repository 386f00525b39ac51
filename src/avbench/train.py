"""The training loop every method uses: seeding, AMP, channels_last, DDP, atomic per-epoch checkpoints, resume.

Resume contract: ``{out_dir}/last.pt`` is rewritten atomically after every epoch with the model, optimizer,
scaler, completed epoch count, RNG states and config. A run killed at any point restarts from the next epoch
and (on CPU) ends with exactly the weights of an uninterrupted run, because every source of randomness is
either restored from the checkpoint (global RNGs) or a pure function of ``(seed, epoch)`` (sampler order,
data augmentation).

Methods may define optional hooks: ``param_groups(lr) -> list[dict]`` (per-module learning rates),
``on_epoch_start(epoch)``, ``on_step_end(step)`` (e.g. momentum-encoder updates), and the class-level
``wrap_dataset(dataset, model_cfg) -> Dataset`` applied to the training dataset before the DataLoader is built.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from avbench.data import ClipDataset, collate
from avbench.io import atomic_path, write_csv
from avbench.models import registry

log = logging.getLogger(__name__)
DATA_KEYS = ("image_size", "frontend", "audio_duration_s", "sample_rate", "frame_choice", "return_wave")


# ---------------------------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # device count changed: keep fresh CUDA RNGs
            torch.cuda.set_rng_state_all(state["cuda"])


def _save_atomic(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and value.dim() == 4 and key == "image":
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


class EpochPermutation(Sampler[int]):
    """Single-process random order that is a pure function of ``(seed, epoch)`` (resume-safe)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 9_973 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _dist_info() -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _amp_settings(amp: bool | Literal["auto"], device: torch.device) -> tuple[bool, torch.dtype | None]:
    enabled = (device.type == "cuda") if amp == "auto" else bool(amp)
    if not enabled:
        return False, None
    if device.type != "cuda":
        return False, None  # CPU autocast gains nothing here and breaks bit-exact resume tests
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ------------------------------------------------------------------------------------------------ train


def train(
    model_name: str,
    model_cfg: Mapping[str, Any] | None,
    train_shards: str | os.PathLike | Dataset,
    out_dir: str | os.PathLike,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    num_workers: int = 0,
    device: str = "auto",
    amp: bool | Literal["auto"] = "auto",
    log_path: str | os.PathLike | None = None,
    resume: bool = True,
    max_steps_per_epoch: int | None = None,
    threads: int | None = None,
    data_cfg: Mapping[str, Any] | None = None,
    preset: str | None = None,
    lr_schedule: Literal["constant", "cosine"] = "constant",
) -> dict[str, Any]:
    """Train ``model_name`` and write ``{out_dir}/last.pt`` (every epoch) and ``{out_dir}/final.pt``.

    ``model_cfg`` overrides the constructor kwargs of ``preset`` (if given). ``train_shards`` is a shard
    directory (read with ``ClipDataset(split_kind='train')`` using ``data_cfg``, defaulting to the preset's
    ``data`` section) or a ready map-style Dataset whose items ``avbench.data.collate`` can batch.
    ``batch_size`` is global: under torchrun (``WORLD_SIZE > 1``) each rank gets ``batch_size // world``.
    AMP (bf16 where supported, else fp16 with GradScaler) and channels_last apply only on CUDA; ``amp`` is
    ignored on CPU. ``threads`` calls ``torch.set_num_threads`` (process-wide). ``lr_schedule``: ``constant``
    or ``cosine`` (per-step decay of every parameter group's lr to 0 over the run; a function of the global step,
    so a resumed run follows the same curve).
    Returns a summary dict (paths, epochs run, last loss, throughput).
    """
    out = Path(out_dir)
    world, rank, local_rank = _dist_info()
    distributed = world > 1
    if threads:
        torch.set_num_threads(int(threads))
    own_group = distributed and not dist.is_initialized()
    if own_group:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    dev = resolve_device(device)
    if distributed and dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    is_main = rank == 0
    seed_everything(seed + rank)

    model_kwargs = dict(registry.get_preset(model_name, preset).get("model", {})) if preset else {}
    model_kwargs.update(model_cfg or {})
    data_kwargs: dict[str, Any] = dict(registry.get_preset(model_name, preset).get("data", {})) if preset else {}
    data_kwargs.update(data_cfg or {})
    config = {
        "model_name": model_name, "model_cfg": model_kwargs, "data_cfg": data_kwargs, "preset": preset,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "world_size": world,
        "lr_schedule": lr_schedule,
    }
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")

    model = registry.create(model_name, **model_kwargs)
    if not getattr(model, "requires_training", True):
        raise ValueError(f"model {model_name!r} is training-free; nothing to train")

    if isinstance(train_shards, Dataset):
        dataset = train_shards
    else:
        kwargs = {k: v for k, v in data_kwargs.items() if k in DATA_KEYS}
        dataset = ClipDataset(train_shards, split_kind="train", seed=seed, **kwargs)
    wrap = getattr(type(model), "wrap_dataset", None)
    if wrap is not None:  # optional method hook: extra per-item inputs (e.g. Senocak's kNN conceptual positives)
        dataset = wrap(dataset, model_kwargs)

    per_rank_batch = max(1, batch_size // world)
    sampler: Sampler[int]
    if distributed:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    else:
        sampler = EpochPermutation(len(dataset), seed)
    # drop_last as in stoneMo (in-batch negatives want full batches) unless the data is smaller than a batch.
    drop_last = len(dataset) // world >= per_rank_batch
    loader = DataLoader(
        dataset, batch_size=per_rank_batch, sampler=sampler, num_workers=num_workers, collate_fn=collate,
        drop_last=drop_last, pin_memory=dev.type == "cuda",
        # Not persistent: workers are re-forked each epoch so they see the dataset's set_epoch().
        persistent_workers=False,
    )

    use_cuda = dev.type == "cuda"
    channels_last = use_cuda
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = model.param_groups(lr) if hasattr(model, "param_groups") else model.parameters()
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=0.0)
    base_lrs = [group["lr"] for group in optimizer.param_groups]  # per-group multipliers already applied
    amp_on, amp_dtype = _amp_settings(amp, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_on and amp_dtype == torch.float16)

    last_path, final_path = out / "last.pt", out / "final.pt"
    log_file = Path(log_path) if log_path else out / "train_log.csv"
    rows: list[dict[str, Any]] = []
    start_epoch = 0
    if resume and last_path.exists():
        ckpt = torch.load(last_path, map_location="cpu", weights_only=False)
        if ckpt["config"]["model_name"] != model_name:
            raise ValueError(f"{last_path} belongs to {ckpt['config']['model_name']!r}, not {model_name!r}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch = int(ckpt["epoch"])
        rows = list(ckpt.get("log", []))
        _set_rng_state(ckpt["rng"][rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
        log.info("resumed %s from %s at epoch %d", model_name, last_path, start_epoch)

    train_model: nn.Module = model
    if distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if use_cuda else None, find_unused_parameters=False
        )

    steps_per_epoch = len(loader) if max_steps_per_epoch is None else min(len(loader), max_steps_per_epoch)
    step = start_epoch * steps_per_epoch  # global optimizer step, for on_step_end hooks
    total_steps = max(1, epochs * steps_per_epoch)
    for epoch in range(start_epoch, epochs):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        if hasattr(model, "on_epoch_start"):
            model.on_epoch_start(epoch)
        train_model.train()
        t0 = time.perf_counter()
        total, n_samples = 0.0, 0
        for i, batch in enumerate(loader):
            if max_steps_per_epoch is not None and i >= max_steps_per_epoch:
                break
            batch = _to_device(batch, dev, channels_last)
            if lr_schedule == "cosine":
                factor = 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * factor
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_on):
                loss = train_model(batch)["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{model_name}: non-finite loss at epoch {epoch} step {i}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            if hasattr(model, "on_step_end"):
                model.on_step_end(step)
            bs = int(batch["image"].shape[0]) if "image" in batch else per_rank_batch
            total += float(loss.detach()) * bs
            n_samples += bs
        seconds = time.perf_counter() - t0
        stats = torch.tensor([total, n_samples], dtype=torch.float64, device=dev)
        if distributed:
            dist.all_reduce(stats)
        mean_loss = float(stats[0] / max(stats[1], 1))
        global_samples = int(stats[1])
        rows.append({
            "epoch": epoch + 1, "loss": mean_loss, "seconds": seconds,
            "samples_per_s": global_samples / seconds if seconds > 0 else math.nan,
            "lr": optimizer.param_groups[0]["lr"],
        })
        rngs: Any = _rng_state()
        if distributed:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rngs)
            rngs = gathered
        if is_main:
            _save_atomic({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch + 1, "rng": rngs, "config": config, "log": rows,
            }, last_path)
            write_csv(log_file, pd.DataFrame(rows, columns=["epoch", "loss", "seconds", "samples_per_s", "lr"]))
        log.info("%s epoch %d/%d loss %.4f (%.1f samples/s)", model_name, epoch + 1, epochs, mean_loss,
                 rows[-1]["samples_per_s"])
        if distributed:
            dist.barrier()

    if is_main:
        _save_atomic({"model": model.state_dict(), "config": config, "epoch": epochs, "log": rows}, final_path)
        if not rows:
            write_csv(log_file, pd.DataFrame(rows, columns=["epoch", "loss", "seconds", "samples_per_s", "lr"]))
    if distributed:
        dist.barrier()
        if own_group:
            dist.destroy_process_group()
    return {
        "final": str(final_path), "last": str(last_path), "log": str(log_file), "epochs": epochs,
        "resumed_from": start_epoch, "loss": rows[-1]["loss"] if rows else math.nan,
        "samples_per_s": rows[-1]["samples_per_s"] if rows else math.nan,
    }


def load_trained(path: str | os.PathLike, device: str = "cpu") -> nn.Module:
    """Rebuild a model from ``final.pt``/``last.pt`` (config + weights), in eval mode."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    # The checkpoint holds every weight; do not re-read (possibly absent) ImageNet initialisation files.
    kwargs = {k: v for k, v in cfg["model_cfg"].items() if k != "pretrained_path"}
    model = registry.create(cfg["model_name"], **kwargs)
    model.load_state_dict(ckpt["model"])
    return model.to(resolve_device(device)).eval()


def train_from_config(
    method: str,
    method_cfg: Mapping[str, Any],
    *,
    train_shards: str | os.PathLike,
    out_dir: str | os.PathLike,
    seed: int,
    threads: int,
    log_path: str | os.PathLike,
    knn_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train from a config entry ``methods.<method>``: ``preset`` supplies defaults that ``epochs``,
    ``batch_size``, ``lr``, ``model`` and ``data`` override. Methods that declare ``uses_knn`` receive the
    neighbour file of the knn stage as ``knn_path``. ``method`` names the config entry; its ``method`` key (if
    any) names the registered model, so ablations are entries such as ``oneavm_no_mas: {method: oneavm, ...}``."""
    name = method
    method = method_cfg.get("method", name)
    preset = method_cfg.get("preset")
    recipe = registry.get_preset(method, preset) if preset else {}
    train_defaults = recipe.get("train", {})
    data_cfg = {**recipe.get("data", {}), **method_cfg.get("data", {})}
    model_cfg = dict(method_cfg.get("model", {}))
    if getattr(registry.model_class(method), "uses_knn", False):
        model_cfg["knn_path"] = str(knn_path) if knn_path else None
    epochs = int(method_cfg.get("epochs", train_defaults.get("epochs", 0)))
    # Methods whose schedule depends on the run length (Qian's stage switch) follow the configured epochs.
    if "total_epochs" in inspect.signature(registry.model_class(method)).parameters and "total_epochs" not in model_cfg:
        model_cfg["total_epochs"] = epochs
    missing = [k for k in ("epochs", "batch_size", "lr") if k not in method_cfg and k not in train_defaults]
    if missing:
        raise ValueError(f"config key 'methods.{name}' lacks {missing} and preset {preset!r} gives no default")
    return train(
        method, model_cfg, train_shards, out_dir,
        epochs=epochs,
        batch_size=int(method_cfg.get("batch_size", train_defaults.get("batch_size"))),
        lr=float(method_cfg.get("lr", train_defaults.get("lr"))),
        seed=seed, threads=threads, log_path=log_path, preset=preset, data_cfg=data_cfg,
        lr_schedule=method_cfg.get("lr_schedule", train_defaults.get("lr_schedule", "constant")),
    )


__all__ = ["EpochPermutation", "load_trained", "resolve_device", "seed_everything", "train", "train_from_config"]

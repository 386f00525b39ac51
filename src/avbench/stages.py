"""One function per Snakemake rule. Rules pass named inputs, outputs and params as keyword arguments through
``workflow/scripts/run_stage.py``; each function is plain Python and callable without Snakemake."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from avbench import io

log = logging.getLogger("avbench.stages")


# --- SynthAV ---------------------------------------------------------------------------------------------
def synthav_spec(*, spec: str, vggsound_csv: str, dataset_cfg: dict, seed: int, **_: Any) -> None:
    from avbench.synthav import make_spec, save_spec, write_metadata

    corpus = make_spec(dataset_cfg.get("preset", "demo"), seed, dataset_cfg.get("overrides") or {})
    save_spec(corpus, spec)
    written = write_metadata(corpus, Path(vggsound_csv).parent)
    log.info("SynthAV spec: %d clips, %d classes; metadata %s", len(corpus.clips), len(corpus.classes),
             sorted(str(p) for p in written.values()))


def synthav_render(*, spec: str, status: str, video_dir: str, n_chunks: int, threads: int,
                   wildcards: dict, **_: Any) -> None:
    from avbench.synthav import load_spec, render_chunk

    rows = render_chunk(load_spec(spec), int(wildcards["chunk"]), n_chunks, Path(video_dir), workers=threads)
    io.write_parquet(status, rows)
    log.info("rendered chunk %s: %s", wildcards["chunk"], rows["status"].value_counts().to_dict())


# --- metadata --------------------------------------------------------------------------------------------
def manifest(*, manifest: str, dataset_cfg: dict, n_chunks: int, wildcards: dict, video_dir: str,
             metadata_dir: str | None = None, **inputs: Any) -> None:
    from avbench import manifest as manifest_mod

    dataset = wildcards["dataset"]
    if dataset_cfg["source"] == "synthav":
        frame = manifest_mod.synthav_manifest(
            vggsound_csv=inputs["vggsound_csv"], vggss_json=inputs["vggss_json"], duet_json=inputs["duet_json"],
            video_dir=video_dir, dataset=dataset, n_chunks=n_chunks,
        )
    else:
        from avbench.datasets import real_manifest

        frame = real_manifest(dataset, dataset_cfg, metadata_dir=metadata_dir, n_chunks=n_chunks,
                              files=inputs.get("metadata"), ingest=inputs.get("ingest"))
    io.write_parquet(manifest, frame)
    log.info("manifest %s: %d clips, split membership %s", dataset, len(frame), manifest_mod.split_counts(frame))


# --- real datasets (avbench.datasets) --------------------------------------------------------------------
def fetch_metadata(*, out: str, sidecar: str, name: str, urls: list[str], sha256: str | None,
                   **_: Any) -> None:
    from avbench.datasets import fetch_metadata_file

    record = fetch_metadata_file(name, urls, out, expected_sha256=sha256)
    if Path(sidecar).resolve() != Path(f"{out}.sha256.json").resolve():
        raise ValueError(f"sidecar path {sidecar} is not {out}.sha256.json")
    log.info("fetched %s from %s (%d bytes, sha256 %s)", name, record["url"], record["size"], record["sha256"])


def check_placed(*, summary: str, metadata: list[str], dataset_cfg: dict, wildcards: dict, **_: Any) -> None:
    from avbench.datasets import check_placed_tree, resolve_files

    files = resolve_files(dataset_cfg, None, metadata)
    result = check_placed_tree(wildcards["dataset"], dataset_cfg, files)
    io.write_json(summary, result)
    log.info("placed %s: %d items under %s", wildcards["dataset"], result["n_items"], result["root"])


def ingest_placed(*, ingest: str, metadata: list[str], dataset_cfg: dict, video_dir: str, duration_s: float,
                  threads: int, wildcards: dict, **_: Any) -> None:
    from avbench.datasets import ingest_placed as ingest_items
    from avbench.datasets import placed_items, resolve_files

    files = resolve_files(dataset_cfg, None, metadata)
    items = placed_items(wildcards["dataset"], dataset_cfg, files)
    rows = ingest_items(items, video_dir, duration_s=duration_s, workers=threads)
    io.write_parquet(ingest, rows)
    log.info("ingest %s: %s", wildcards["dataset"], rows["status"].value_counts().to_dict())


def official_pairs(*, manifest: str, metadata: list[str], pairs: str, dataset_cfg: dict, wildcards: dict,
                   **_: Any) -> None:
    from avbench.datasets import official_pairs as make_pairs
    from avbench.datasets import resolve_files
    from avbench.mixtures import layout_pairs

    frame = make_pairs(wildcards["dataset"], dataset_cfg, resolve_files(dataset_cfg, None, metadata),
                       pd.read_parquet(manifest))
    io.write_parquet(pairs, layout_pairs(frame, wildcards["layout"]))
    log.info("official pairs %s/%s: %d", wildcards["dataset"], wildcards["layout"], len(frame))


def leakage_report(*, metadata: list[str], csv: str, md: str, workdir: str, manifest_of: dict | None = None,
                   dataset_cfgs: dict | None = None, **_: Any) -> None:
    from avbench.datasets import leakage_report_from
    from avbench.leakage import write_leakage_report

    frame = leakage_report_from(metadata, workdir, manifests=manifest_of or {}, dataset_cfgs=dataset_cfgs or {})
    write_leakage_report(frame, csv, md)
    log.info("leakage report: %d rows", len(frame))


# --- media -----------------------------------------------------------------------------------------------
def download(*, manifest: str, status: str, store_dir: str, sections: bool, options: dict, wildcards: dict,
             legacy_dir: str | None = None, **_: Any) -> None:
    """``store_dir`` is the media store shared by every dataset (a clip listed by several is fetched once);
    ``legacy_dir`` the dataset's own cache from before the store, adopted instead of fetched again."""
    from avbench.media.download import DownloadOptions, download_chunk

    download_chunk(manifest, int(wildcards["chunk"]), Path(store_dir), status, sections=sections,
                   options=DownloadOptions.from_config(options), legacy_dir=legacy_dir)
    rows = pd.read_parquet(status)
    log.info("download chunk %s: %s, %d reused from the store", wildcards["chunk"],
             rows["status"].value_counts().to_dict(), int(rows["reused"].sum()))


def slice_clips(*, manifest: str, download: str, status: str, clips_dir: str, options: dict, threads: int,
          wildcards: dict, **_: Any) -> None:
    from avbench.media.slice import run_slice

    opts = {k: v for k, v in options.items() if k != "workers"}
    run_slice(download, manifest, int(wildcards["chunk"]), Path(clips_dir), status, workers=threads, **opts)
    rows = pd.read_parquet(status)
    log.info("slice chunk %s: %s", wildcards["chunk"], rows["status"].value_counts().to_dict())


def shards(*, manifest: str, slice_status: list[str], shard_dir: str, options: dict, wildcards: dict,
           **_: Any) -> None:
    from avbench.manifest import in_split
    from avbench.shards import write_shards

    clips = pd.read_parquet(manifest)
    clips = clips[in_split(clips, wildcards["split"])]  # membership: train_list_mode=original keeps leaked clips
    status = pd.concat([pd.read_parquet(p) for p in slice_status], ignore_index=True)
    index = write_shards(clips, status, Path(shard_dir), dataset=wildcards["dataset"], split=wildcards["split"],
                         max_samples_per_shard=options["max_samples_per_shard"],
                         include_frames=options["include_frames"])
    log.info("shards %s/%s: %s samples", wildcards["dataset"], wildcards["split"], index.get("n_samples"))


# --- derived sets ----------------------------------------------------------------------------------------
def knn(*, train: str, manifest: str, npz: str, info: str, options: dict, threads: int, **_: Any) -> None:
    import torch

    from avbench.knn import build_knn
    from avbench.manifest import in_split
    from avbench.shards import iter_samples

    torch.set_num_threads(threads)
    clips = pd.read_parquet(manifest)
    # neighbours come from the training split only (by membership: a test clip kept in an original training list
    # is a training clip there, as in the paper's own k-NN)
    test_ids = set(clips.loc[~in_split(clips, "train"), "clip_id"])
    build_knn(iter_samples(Path(train)), encoder=options["encoder"], encoder_config=options["encoder_config"],
              k=options["k"], out_npz=Path(npz), out_json=Path(info), exclude_ids=test_ids)


def mixtures(*, manifest: str, test: str, pairs: str, seed: int, n_pairs: int | None, wildcards: dict,
             **_: Any) -> None:
    from avbench.manifest import in_split
    from avbench.mixtures import layout_pairs, make_pairs
    from avbench.shards import read_index

    clips = pd.read_parquet(manifest)
    available = set(read_index(Path(test)).get("clip_ids", []))
    items = clips[in_split(clips, "test")]
    if available:
        items = items[items["clip_id"].isin(available)]
    frame = layout_pairs(make_pairs(items, seed=seed, n_pairs=n_pairs), wildcards["layout"])
    io.write_parquet(pairs, frame)
    log.info("mixtures %s/%s: %d pairs", wildcards["dataset"], wildcards["layout"], len(frame))


# --- models ----------------------------------------------------------------------------------------------
def train(*, train: str, knn: str, model: str, train_log: str, method_cfg: dict, seed: int, threads: int,
          wildcards: dict, **_: Any) -> None:
    from avbench.train import train_from_config

    train_from_config(wildcards["method"], method_cfg, train_shards=Path(train), out_dir=Path(model).parent,
                      knn_path=Path(knn), seed=seed, threads=threads, log_path=Path(train_log))
    # The rule declares final.pt: make sure the loop wrote it where Snakemake expects.
    if not Path(model).exists():
        raise FileNotFoundError(f"training finished without writing {model}")


def evaluate(*, summary: str, per_sample: str, eval_cfg: dict, method_cfg: dict, seed: int, threads: int,
             wildcards: dict, eval_options: dict | None = None, **inputs: Any) -> None:
    from avbench.evaluate import evaluate_method

    options = {"mask_gt": None, "train_dataset": None, "extended": "seeded", **(eval_options or {})}
    if options["mask_gt"] and not inputs.get("ingest"):
        raise ValueError(f"evaluate {wildcards['dataset']}: mask GT ({options['mask_gt']}) needs the placed "
                         "dataset's ingest table as input 'ingest'")
    if options["extended"] == "official" and not inputs.get("extended_list"):
        raise ValueError(f"evaluate {wildcards['dataset']}: the official extended set needs input 'extended_list'")
    if inputs.get("offscreen") and options["extended"] != "official":
        raise ValueError(f"evaluate {wildcards['dataset']}: input 'offscreen' (off-screen clip shards) is only "
                         f"scored with the official extended list, but extended is {options['extended']!r}")
    evaluate_method(
        wildcards["method"], method_cfg, test_shards=Path(inputs["test"]), model_path=inputs.get("model"),
        duet_shards=inputs.get("duet"), mixtures=inputs.get("mixtures") or [], eval_cfg=eval_cfg, seed=seed,
        threads=threads, summary_path=Path(summary), per_sample_path=Path(per_sample),
        dataset=wildcards["dataset"],
        # SynthAV's AVSBench-style tree: <root>/Single-source/s4_meta_data.csv
        avsbench_root=str(Path(inputs["s4_meta"]).parents[1]) if inputs.get("s4_meta") else None,
        ingest=inputs.get("ingest"), mask_gt=options["mask_gt"],
        train_manifest=inputs.get("train_manifest"), train_dataset=options["train_dataset"],
        extended=options["extended"], extended_list=inputs.get("extended_list"),
        offscreen_shards=Path(inputs["offscreen"]) if inputs.get("offscreen") else None,
    )


def table(*, summaries: list[str], parquet: str, csv: str, md: str, benchmark: str, **_: Any) -> None:
    from avbench.tables import benchmark_table, write_table

    frame = benchmark_table(benchmark, [json.loads(Path(p).read_text()) for p in summaries])
    write_table(frame, parquet=parquet, csv=csv, md=md, title=benchmark)


def paper_table(*, table_id: str, candidates: list[str], parquet: str, csv: str, md: str, tex: str,
                config_note: dict, **_: Any) -> None:
    """Our numbers beside the paper's; summaries that do not exist yet leave their cells marked missing."""
    from avbench.paper_tables import caveats_for, note_with_leakage, paper_beside_ours, write_paper_table

    found = [json.loads(Path(p).read_text()) for p in candidates if Path(p).exists()]
    frame = paper_beside_ours(table_id, found, config_note=note_with_leakage(config_note))
    write_paper_table(frame, parquet, csv, md, tex, title=table_id, caveats=caveats_for(table_id))
    log.info("paper table %s: %d of %d result summaries found", table_id, len(found), len(candidates))


def plots(*, test: str, per_sample: list[str], curves: str, overlays: str, separation: str, methods: list[str],
          method_cfgs: dict, model_paths: dict, eval_cfg: dict, seed: int, n_samples: int, threads: int,
          wildcards: dict, **_: Any) -> None:
    """Rule ``plot``: the figure set of one dataset (``per_sample`` is in ``methods`` order)."""
    import torch

    from avbench.plots import dataset_figures

    torch.set_num_threads(threads)
    drawn = dataset_figures(
        test_shards=test, methods={m: method_cfgs.get(m) or {} for m in methods}, model_paths=model_paths,
        per_sample=dict(zip(methods, per_sample, strict=True)), eval_cfg=eval_cfg, dataset=wildcards["dataset"],
        curves_png=curves, overlays_png=overlays, separation_png=separation, n_samples=n_samples, seed=seed,
    )
    log.info("figures of %s: clips %s, separation pair %s by %s", wildcards["dataset"], drawn["clip_ids"],
             drawn["pair"], drawn["separating"] or "no method")


STAGES: dict[str, Callable[..., None]] = {
    "synthav_spec": synthav_spec,
    "synthav_render": synthav_render,
    "manifest": manifest,
    "fetch_metadata": fetch_metadata,
    "check_placed": check_placed,
    "ingest_placed": ingest_placed,
    "official_pairs": official_pairs,
    "leakage_report": leakage_report,
    "download": download,
    "slice": slice_clips,
    "shards": shards,
    "knn": knn,
    "mixtures": mixtures,
    "train": train,
    "evaluate": evaluate,
    "table": table,
    "paper_table": paper_table,
    "plot": plots,  # rule `plot` (one job per dataset); `plots` is the named target of every figure
}


def _plain(value: Any) -> Any:
    """Snakemake Namedlists -> lists of str; keep scalars and dicts as they are."""
    if isinstance(value, (str, int, float, bool, dict)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return value


def run_from_snakemake(smk: Any) -> None:
    """Entry point of ``workflow/scripts/run_stage.py``: map the rule's named I/O onto the stage function."""
    log_file = smk.log[0] if len(smk.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kwargs: dict[str, Any] = {}
    for group in (smk.input, smk.output, smk.params):
        for name, value in group.items():
            if name in kwargs:
                raise KeyError(f"rule {smk.rule}: name {name!r} used twice among input/output/params")
            kwargs[name] = _plain(value)
    kwargs["threads"] = smk.threads
    kwargs["wildcards"] = dict(smk.wildcards.items())
    try:
        STAGES[smk.rule](**kwargs)
    except Exception:
        log.exception("rule %s failed", smk.rule)
        raise

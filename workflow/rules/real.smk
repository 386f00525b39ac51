# Real datasets: official metadata download, placed-media check + ingestion, official pair sets, leakage report.
# Logic lives in avbench.datasets (design of placed media: its module docstring).
import sys

from avbench.datasets import metadata_source

for _skipped in paths.skipped_benchmarks():
    print(f"avbench: skipping benchmark {_skipped}: its dataset needs placed media and `root` is unset",
          file=sys.stderr)


wildcard_constraints:
    rel=r"(?!.*\.sha256\.json$)[A-Za-z0-9_./-]+",


# Only files that are not under metadata_dir are requested from this rule (WorkflowPaths.metadata_path).
rule fetch_metadata:
    output:
        out=f"{R}/metadata/{{rel}}",
        sidecar=f"{R}/metadata/{{rel}}.sha256.json",
    params:
        name=lambda w: w.rel,
        urls=lambda w: list(metadata_source(w.rel, config.get("metadata_urls")).urls),
        sha256=lambda w: metadata_source(w.rel, config.get("metadata_urls")).sha256,
    resources:
        downloads=1,
    log:
        f"{R}/logs/fetch_metadata/{{rel}}.log",
    benchmark:
        f"{R}/benchmarks/fetch_metadata/{{rel}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER


rule check_placed:
    input:
        metadata=lambda w: paths.manifest_metadata(w.dataset),
    output:
        summary=f"{R}/placed/{{dataset}}/check.json",
    params:
        dataset_cfg=lambda w: config["datasets"][w.dataset],
    log:
        f"{R}/logs/check_placed/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/check_placed/{{dataset}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER


rule ingest_placed:
    input:
        check=rules.check_placed.output.summary,
        metadata=lambda w: paths.manifest_metadata(w.dataset),
    output:
        ingest=f"{R}/placed/{{dataset}}/ingest.parquet",
    params:
        dataset_cfg=lambda w: config["datasets"][w.dataset],
        video_dir=lambda w: paths.placed_video_dir(w.dataset),
        duration_s=config["slice"]["duration_s"],
    threads: config["slice"]["workers"]
    log:
        f"{R}/logs/ingest_placed/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/ingest_placed/{{dataset}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER


# The published pair set in one multi-source layout (separate frames / side-by-side canvas); evaluation reads it
# like the seeded mixtures (WorkflowPaths.eval_pairs).
rule official_pairs:
    input:
        manifest=lambda w: paths.manifest(w.dataset),
        metadata=lambda w: paths.manifest_metadata(w.dataset),
    output:
        pairs=f"{R}/pairs/{{dataset}}/{{layout}}.parquet",
    params:
        dataset_cfg=lambda w: config["datasets"][w.dataset],
    log:
        f"{R}/logs/official_pairs/{{dataset}}/{{layout}}.log",
    benchmark:
        f"{R}/benchmarks/official_pairs/{{dataset}}/{{layout}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER


# Published lists from the metadata, plus what the configured datasets use (their manifests' split membership).
rule leakage_report:
    input:
        metadata=paths.leakage_metadata(),
        manifests=list(paths.leakage_manifests().values()),
    output:
        csv=report(f"{R}/reports/leakage.csv", category="Reports"),
        md=f"{R}/reports/leakage.md",
    params:
        workdir=f"{R}/reports/.leakage_metadata",
        manifest_of=paths.leakage_manifests(),
        dataset_cfgs={d: config["datasets"][d] for d in paths.leakage_manifests()},
    log:
        f"{R}/logs/leakage_report.log",
    benchmark:
        f"{R}/benchmarks/leakage_report.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

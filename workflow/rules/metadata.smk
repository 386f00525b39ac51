# Metadata -> clip manifest (one Parquet row per clip, with its chunk number and source URL).


rule manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=f"{R}/manifests/{{dataset}}/clips.parquet",
    params:
        dataset_cfg=lambda w: config["datasets"][w.dataset],
        n_chunks=config["n_chunks"],
        metadata_dir=config.get("metadata_dir"),
        video_dir=lambda w: os.path.abspath(f"{R}/synthav/{w.dataset}/videos"),
    log:
        f"{R}/logs/manifest/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/manifest/{{dataset}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

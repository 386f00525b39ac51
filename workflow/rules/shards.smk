# WebDataset tar shards per (dataset, split).


rule shards:
    input:
        manifest=lambda w: paths.manifest(w.dataset),
        slice_status=lambda w: expand(rules.slice.output.status, dataset=w.dataset, chunk=paths.chunks()),
    output:
        shard_dir=directory(f"{R}/shards/{{dataset}}/{{split}}"),
    params:
        options=config["shards"],
    log:
        f"{R}/logs/shards/{{dataset}}/{{split}}.log",
    benchmark:
        f"{R}/benchmarks/shards/{{dataset}}/{{split}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

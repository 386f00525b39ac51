# Seeded class-distinct duet test sets in both multi-source layouts (separate frames / side-by-side).


rule mixtures:
    input:
        manifest=lambda w: paths.manifest(w.dataset),
        test=lambda w: paths.shard_dir(w.dataset, "test"),
    output:
        pairs=f"{R}/mixtures/{{dataset}}/{{layout}}.parquet",
    params:
        seed=config["seed"],
        n_pairs=config["mixtures"]["n_pairs"],
    log:
        f"{R}/logs/mixtures/{{dataset}}/{{layout}}.log",
    benchmark:
        f"{R}/benchmarks/mixtures/{{dataset}}/{{layout}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

# Top-k neighbours of every training clip in each modality (FAISS inner product on L2-normalised embeddings).


rule knn:
    input:
        train=lambda w: paths.shard_dir(w.dataset, "train"),
        manifest=lambda w: paths.manifest(w.dataset),
    output:
        npz=f"{R}/knn/{{dataset}}/neighbours.npz",
        info=f"{R}/knn/{{dataset}}/neighbours.json",
    params:
        options=config["knn"],
    threads: config["threads"]
    log:
        f"{R}/logs/knn/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/knn/{{dataset}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        ADAPTER

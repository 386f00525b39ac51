# Training: one job per (dataset, method); GPU requests live in the SLURM profile, not here.


rule train:
    input:
        train=lambda w: paths.train_shards(w.dataset),  # a `train_from` dataset has no train job: clear error
        knn=lambda w: paths.knn(w.dataset),
    output:
        model=f"{R}/models/{{dataset}}/{{method}}/final.pt",
        train_log=f"{R}/models/{{dataset}}/{{method}}/train_log.csv",
    params:
        method_cfg=lambda w: paths.method_cfg(w.method),
        seed=config["seed"],
    threads: config["threads"]
    priority: lambda w: paths.train_priority(w.method)
    log:
        f"{R}/logs/train/{{dataset}}/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{dataset}}/{{method}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        ADAPTER

# Evaluation of a trained method or a training-free baseline on every task the dataset supports.


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        summary=f"{R}/eval/{{dataset}}/{{method}}/summary.json",
        per_sample=f"{R}/eval/{{dataset}}/{{method}}/per_sample.parquet",
    params:
        eval_cfg=config["eval"],
        method_cfg=lambda w: paths.method_cfg(w.method),
        seed=config["seed"],
        eval_options=lambda w: paths.eval_options(w.dataset),
    threads: config["threads"]
    log:
        f"{R}/logs/eval/{{dataset}}/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/eval/{{dataset}}/{{method}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        ADAPTER

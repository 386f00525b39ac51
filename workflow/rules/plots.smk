# Figures: results/plots/<dataset>/{success_curves,overlays,separation}.png, one job per evaluated dataset.
# Cheap by design: the curves reuse the evaluation's per-sample cIoU; overlays and the separation example run
# the models on a handful of test clips only. All three appear in `snakemake --report report.html`.


rule plot:
    input:
        test=lambda w: paths.shard_dir(w.dataset, "test"),
        per_sample=lambda w: [paths.eval_per_sample(w.dataset, m) for m in paths.evaluated_methods()],
        models=lambda w: [paths.eval_model(w.dataset, m) for m in paths.trained_methods()],
    output:
        curves=report(
            paths.plot("{dataset}", "success_curves"),
            category="Figures",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "success rate vs cIoU threshold"},
        ),
        overlays=report(
            paths.plot("{dataset}", "overlays"),
            category="Figures",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "localization maps on test frames"},
        ),
        separation=report(
            paths.plot("{dataset}", "separation"),
            category="Figures",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "separation example"},
        ),
    params:
        methods=paths.evaluated_methods(),
        method_cfgs=lambda w: {m: paths.method_cfg(m) for m in paths.evaluated_methods()},
        model_paths=lambda w: {m: paths.eval_model(w.dataset, m) for m in paths.trained_methods()},
        eval_cfg=config["eval"],
        seed=config["seed"],
        n_samples=4,
    threads: 1
    log:
        f"{R}/logs/plots/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/plots/{{dataset}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        ADAPTER

# Result tables: results/tables/<benchmark>.{parquet,csv,md}.


rule table:
    input:
        summaries=lambda w: [
            paths.eval_summary(paths.benchmark_dataset(w.benchmark), m) for m in paths.evaluated_methods()
        ],
    output:
        parquet=f"{R}/tables/{{benchmark}}.parquet",
        csv=report(f"{R}/tables/{{benchmark}}.csv", category="Tables"),
        md=f"{R}/tables/{{benchmark}}.md",
    params:
        benchmark=lambda w: w.benchmark,
    log:
        f"{R}/logs/tables/{{benchmark}}.log",
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

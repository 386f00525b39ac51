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


rule paper_table:
    input:
        summaries=lambda w: paths.paper_table_inputs(),
    output:
        parquet=f"{R}/tables/paper/{{table_id}}.parquet",
        csv=report(f"{R}/tables/paper/{{table_id}}.csv", category="Paper tables"),
        md=f"{R}/tables/paper/{{table_id}}.md",
        tex=f"{R}/tables/paper/{{table_id}}.tex",
    params:
        table_id=lambda w: w.table_id,
        candidates=lambda w: paths.result_summaries(),
        config_note=lambda w: paths.paper_table_note(),
    log:
        f"{R}/logs/tables/paper_{{table_id}}.log",
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

# One ffmpeg pass per clip (wav + centre frame + frames), one job per chunk; failures are status rows.
# Sources are read from the shared media store through the `path` column of the dataset's download status;
# the sliced clips are per dataset (media/<dataset>/clips).


rule slice:
    input:
        manifest=lambda w: paths.manifest(w.dataset),
        download=rules.download.output.status,
    output:
        status=f"{R}/status/{{dataset}}/slice/chunk{{chunk}}.parquet",
    params:
        clips_dir=lambda w: f"{R}/media/{w.dataset}/clips",
        options=config["slice"],
    threads: config["slice"]["workers"]
    log:
        f"{R}/logs/slice/{{dataset}}/chunk{{chunk}}.log",
    benchmark:
        f"{R}/benchmarks/slice/{{dataset}}/chunk{{chunk}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

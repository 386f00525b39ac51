# Download with the yt-dlp Python API, one job per chunk of clips. Concurrency across jobs is bounded by the
# `downloads` resource (profiles set it); media files are a cache, so a rerun retries only what failed.


rule download:
    input:
        unpack(download_inputs),
    output:
        status=f"{R}/status/{{dataset}}/download/chunk{{chunk}}.parquet",
    params:
        media_dir=lambda w: f"{R}/media/{w.dataset}/raw",
        sections=lambda w: paths.source(w.dataset) != "synthav",
        options=config["download"],
    resources:
        downloads=1,
    log:
        f"{R}/logs/download/{{dataset}}/chunk{{chunk}}.log",
    benchmark:
        f"{R}/benchmarks/download/{{dataset}}/chunk{{chunk}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

# Download with the yt-dlp Python API, one job per chunk of clips. Concurrency across jobs is bounded by the
# `downloads` resource (profiles set it); media files are a cache, so a rerun retries only what failed.
# The cache is one store shared by every dataset (paths.media_store()), keyed by video + section, so a clip that
# several datasets list is fetched once; it is not a declared output (each dataset's jobs declare only their own
# status tables), and concurrent jobs coordinate through per-key locks and atomic links inside the store.


rule download:
    input:
        unpack(download_inputs),
    output:
        status=f"{R}/status/{{dataset}}/download/chunk{{chunk}}.parquet",
    params:
        store_dir=paths.media_store(),
        legacy_dir=lambda w: paths.legacy_media_dir(w.dataset),
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

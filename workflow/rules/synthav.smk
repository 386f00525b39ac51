# SynthAV: the embedded synthetic corpus (spec + official-format metadata, then chunked rendering).


rule synthav_spec:
    output:
        spec=f"{R}/synthav/{{dataset}}/spec.parquet",
        vggsound_csv=f"{R}/synthav/{{dataset}}/metadata/vggsound.csv",
        vggss_json=f"{R}/synthav/{{dataset}}/metadata/vggss.json",
        duet_json=f"{R}/synthav/{{dataset}}/metadata/music_duet.json",
        corpus_json=f"{R}/synthav/{{dataset}}/metadata/synthav.json",
        s4_meta=f"{R}/synthav/{{dataset}}/metadata/avsbench/Single-source/s4_meta_data.csv",
    params:
        dataset_cfg=lambda w: config["datasets"][w.dataset],
        seed=config["seed"],
    log:
        f"{R}/logs/synthav_spec/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/synthav_spec/{{dataset}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER


rule synthav_render:
    input:
        spec=rules.synthav_spec.output.spec,
    output:
        status=f"{R}/synthav/{{dataset}}/render/chunk{{chunk}}.parquet",
    params:
        video_dir=lambda w: f"{R}/synthav/{w.dataset}/videos",
        n_chunks=config["n_chunks"],
    threads: 1
    log:
        f"{R}/logs/synthav_render/{{dataset}}/chunk{{chunk}}.log",
    benchmark:
        f"{R}/benchmarks/synthav_render/{{dataset}}/chunk{{chunk}}.tsv"
    conda:
        "../../envs/media.yaml"
    script:
        ADAPTER

# avbench: one DAG from public audio-visual metadata to benchmark tables.
# Default config = the offline SynthAV demo; real data: `--configfile configs/<paper>.yaml`.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/synthav.smk"
include: "workflow/rules/metadata.smk"
include: "workflow/rules/real.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/slice.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/knn.smk"
include: "workflow/rules/mixtures.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/plots.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        paths.plot_targets(),


# Named targets: `snakemake <name>` builds one stage for every configured dataset.
rule manifests:
    input:
        [paths.manifest(d) for d in paths.datasets()],


rule downloads:
    input:
        [paths.download_status(d, c) for d in paths.datasets() for c in paths.chunks()],


rule slices:
    input:
        [paths.slice_status(d, c) for d in paths.datasets() for c in paths.chunks()],


rule all_shards:
    input:
        [paths.shard_dir(d, s) for d in paths.datasets() for s in paths.shard_splits(d)],


rule tables:
    input:
        all_targets(),


rule plots:
    input:
        paths.plot_targets(),

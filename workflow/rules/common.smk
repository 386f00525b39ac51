# Shared helpers for every stage file: paths, chunk lists, and what `rule all` builds.
from avbench.workflow_helpers import WorkflowPaths

R = config["results_dir"]
paths = WorkflowPaths(config)
CHUNKS = list(range(config["n_chunks"]))
ADAPTER = os.path.join(workflow.basedir, "workflow", "scripts", "run_stage.py")


wildcard_constraints:
    dataset=r"[a-z0-9_]+",
    split=r"[a-z0-9_]+",
    chunk=r"\d{3}",
    method=r"[a-z0-9_]+",
    layout=r"[a-z_]+",
    benchmark=r"[a-z0-9_]+",
    table_id=r"[a-z0-9_]+",


def all_targets():
    return paths.all_targets()


def manifest_inputs(wildcards):
    if paths.source(wildcards.dataset) == "synthav":
        return {
            "vggsound_csv": f"{paths.synthav_dir(wildcards.dataset)}/metadata/vggsound.csv",
            "vggss_json": f"{paths.synthav_dir(wildcards.dataset)}/metadata/vggss.json",
            "duet_json": f"{paths.synthav_dir(wildcards.dataset)}/metadata/music_duet.json",
        }
    # real sources: their metadata files (metadata_dir or fetch_metadata) and, for placed media, the ingest table
    inputs = {"metadata": paths.manifest_metadata(wildcards.dataset)}
    if paths.needs_placed(wildcards.dataset):
        inputs["ingest"] = paths.placed_ingest(wildcards.dataset)
    return inputs


def download_inputs(wildcards):
    inputs = {"manifest": paths.manifest(wildcards.dataset)}
    if paths.source(wildcards.dataset) == "synthav":
        # file:// sources must exist before yt-dlp reads them
        inputs["rendered"] = [
            f"{paths.synthav_dir(wildcards.dataset)}/render/chunk{c}.parquet" for c in paths.chunks()
        ]
    return inputs


def eval_inputs(wildcards):
    inputs = {
        "test": paths.shard_dir(wildcards.dataset, "test"),
    }
    if wildcards.method in paths.trained_methods():
        # a dataset with `train_from` is evaluated with the models trained on that other dataset
        inputs["model"] = paths.eval_model(wildcards.dataset, wildcards.method)
    duet = paths.eval_duet(wildcards.dataset)
    if duet:
        inputs["duet"] = duet
    pairs = paths.eval_pairs(wildcards.dataset)
    if pairs:
        inputs["mixtures"] = pairs
    if paths.source(wildcards.dataset) == "synthav":
        inputs["s4_meta"] = f"{paths.synthav_dir(wildcards.dataset)}/metadata/avsbench/Single-source/s4_meta_data.csv"
    # real datasets: placed mask GT (ingest table), train_from class vocabulary, official extended list
    inputs.update(paths.eval_extra_inputs(wildcards.dataset))
    return inputs

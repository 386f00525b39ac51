"""Paths and target lists of the Snakemake DAG, kept in the package so they are unit-testable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHARD_SPLITS_SYNTHAV = ("train", "test", "duet")
TASKS = ("localization", "extended", "multisource", "retrieval", "separation", "segmentation")
# Figures of the `plot` rule, one set per evaluated dataset (avbench.plots.dataset_figures).
PLOT_FIGURES = ("success_curves", "overlays", "separation")
# Keys of a `methods` entry that steer Snakemake, not the model: kept out of the jobs' params (rerun triggers).
SCHEDULING_KEYS = ("priority",)


@dataclass(frozen=True)
class WorkflowPaths:
    config: dict[str, Any]

    def __post_init__(self) -> None:
        from avbench.config import check_dataset_references

        check_dataset_references(self.config)

    @property
    def root(self) -> str:
        return self.config["results_dir"]

    # --- per method --------------------------------------------------------------------------------------
    def method_cfg(self, method: str) -> dict[str, Any]:
        """``methods.<method>`` without its scheduling keys, so changing a job's priority retrains nothing."""
        entry = self.config.get("methods", {}).get(method, {})
        return {k: v for k, v in entry.items() if k not in SCHEDULING_KEYS}

    def train_priority(self, method: str) -> int:
        return int(self.config.get("methods", {}).get(method, {}).get("priority", 0))

    # --- per dataset -------------------------------------------------------------------------------------
    def datasets(self) -> list[str]:
        return sorted(self.config["datasets"])

    def source(self, dataset: str) -> str:
        return self.config["datasets"][dataset]["source"]

    def chunks(self) -> list[str]:
        return [f"{c:03d}" for c in range(self.config["n_chunks"])]

    def synthav_dir(self, dataset: str) -> str:
        return f"{self.root}/synthav/{dataset}"

    def manifest(self, dataset: str) -> str:
        return f"{self.root}/manifests/{dataset}/clips.parquet"

    def download_status(self, dataset: str, chunk: str) -> str:
        return f"{self.root}/status/{dataset}/download/chunk{chunk}.parquet"

    def media_store(self) -> str:
        """The download cache shared by every dataset key (avbench.media.download): a clip that several datasets
        list is fetched once. Not a declared output, so no two rules write it as one."""
        return f"{self.root}/media_store"

    def legacy_media_dir(self, dataset: str) -> str:
        """The per-dataset download cache that preceded :meth:`media_store` (adopted, never written)."""
        return f"{self.root}/media/{dataset}/raw"

    def slice_status(self, dataset: str, chunk: str) -> str:
        return f"{self.root}/status/{dataset}/slice/chunk{chunk}.parquet"

    def shard_dir(self, dataset: str, split: str) -> str:
        return f"{self.root}/shards/{dataset}/{split}"

    def shard_splits(self, dataset: str) -> tuple[str, ...]:
        if self.source(dataset) == "synthav":
            return SHARD_SPLITS_SYNTHAV
        from avbench.datasets import manifest_splits

        return manifest_splits(self.dataset_cfg(dataset))

    def knn(self, dataset: str) -> str:
        return f"{self.root}/knn/{dataset}/neighbours.npz"

    def mixtures(self, dataset: str, layout: str) -> str:
        return f"{self.root}/mixtures/{dataset}/{layout}.parquet"

    def model(self, dataset: str, method: str) -> str:
        return f"{self.root}/models/{dataset}/{method}/final.pt"

    # --- cross-dataset evaluation (dataset key `train_from`) ---------------------------------------------------
    def train_source(self, dataset: str) -> str:
        """The dataset whose models evaluate ``dataset``: its ``train_from``, else itself."""
        return self.config["datasets"][dataset].get("train_from") or dataset

    def eval_model(self, dataset: str, method: str) -> str:
        return self.model(self.train_source(dataset), method)

    def train_shards(self, dataset: str) -> str:
        """Training shards of ``dataset``; a ``train_from`` dataset has none (its models are the other's)."""
        source = self.train_source(dataset)
        if source != dataset:
            raise ValueError(f"dataset {dataset!r} has train_from: {source!r}, so it has no train job of its own; "
                             f"its models are {self.root}/models/{source}/<method>/final.pt")
        return self.shard_dir(dataset, "train")

    # --- what an evaluation job reads beside the test shards ----------------------------------------------------
    def layouts(self) -> list[str]:
        return list((self.config.get("mixtures") or {}).get("layouts", ["separate", "concat_lr"]))

    def active_benchmarks(self) -> list[str]:
        skipped = set(self.skipped_benchmarks())
        return [b for b in self.benchmarks() if b not in skipped]

    def benchmark_tasks(self, dataset: str) -> set[str]:
        return {b.rsplit("_", 1)[-1] for b in self.active_benchmarks() if self.benchmark_dataset(b) == dataset}

    def official_pair_files(self, dataset: str) -> list[str]:
        """The published pair set of a real dataset in every layout, when one of its benchmarks is multi-source
        or separation (VGGSound-Duet, VGGSound-Instruments multi, VGGSound-Music eval_ss)."""
        from avbench.datasets import has_official_pairs

        if not self.is_real(dataset) or not has_official_pairs(self.dataset_cfg(dataset)):
            return []
        if not self.benchmark_tasks(dataset) & {"multisource", "separation"}:
            return []
        return [self.pairs(dataset, layout) for layout in self.layouts()]

    def eval_pairs(self, dataset: str) -> list[str]:
        """Pair sets the evaluation of ``dataset`` scores (multi-source localization, separation): SynthAV's seeded
        mixtures; a real dataset's official pairs; else, for a real separation benchmark (MUSIC), seeded
        pairs of its test clips (PROTOCOLS 5.4/5.5 [ours])."""
        if not self.is_real(dataset):
            return [self.mixtures(dataset, layout) for layout in self.layouts()]
        official = self.official_pair_files(dataset)
        if official:
            return official
        if "separation" in self.benchmark_tasks(dataset):
            return [self.mixtures(dataset, layout) for layout in self.layouts()]
        return []

    def eval_duet(self, dataset: str) -> str | None:
        """Shards of real two-source clips (SynthAV duets, AVGN MUSIC-Duet frames), when the dataset has them."""
        return self.shard_dir(dataset, "duet") if "duet" in self.shard_splits(dataset) else None

    # placed sources whose GT is a mask file per item, and what the mask is scored as (PROTOCOLS 3.4, 3.5)
    MASK_GT = {"avsbench": "segmentation", "vggsound_instruments": "localization"}
    # SLAVC's official extended lists (PROTOCOLS 1.9, 4.5) per source whose test clips they pair up
    EXTENDED_LISTS = {"vggss": "vggss_extended/vggss_test_plus_silent.csv",
                      "flickr": "flickr_extended/flickr_test_plus_silent.csv"}

    def eval_options(self, dataset: str) -> dict[str, Any]:
        """What an evaluation job of ``dataset`` does beyond the test shards (rule ``evaluate`` params):
        ``mask_gt`` (placed mask GT: ``segmentation`` for AVSBench, ``localization`` for VGGSound-Instruments),
        ``train_dataset`` (``train_from``: class indices are mapped by name), ``extended`` (``seeded``
        mismatched-audio negatives on SynthAV, the ``official`` SLAVC list where one exists, else ``positives``)."""
        source = self.source(dataset)
        if source == "synthav":
            return {"mask_gt": None, "train_dataset": None, "extended": "seeded"}
        train = self.train_source(dataset)
        return {"mask_gt": self.MASK_GT.get(source), "train_dataset": train if train != dataset else None,
                "extended": "official" if source in self.EXTENDED_LISTS else "positives"}

    def eval_offscreen(self, dataset: str) -> str | None:
        """Shards of Extended VGG-SS's off-screen-sound clips (``avbench.datasets.OFFSCREEN_SPLIT``), for a dataset
        whose manifest has that split; its evaluation scores them as negatives of the official extended list."""
        from avbench.datasets import OFFSCREEN_SPLIT

        if not self.is_real(dataset) or OFFSCREEN_SPLIT not in self.shard_splits(dataset):
            return None
        return self.shard_dir(dataset, OFFSCREEN_SPLIT)

    def eval_extra_inputs(self, dataset: str) -> dict[str, Any]:
        """Inputs of rule ``evaluate`` that :meth:`eval_options` needs: the placed dataset's ingest table (its mask
        files), the training dataset's manifest (its class vocabulary), the official extended list and, where the
        manifest has them, the shards of that list's off-screen clips (:meth:`eval_offscreen`)."""
        if not self.is_real(dataset):
            return {}
        options = self.eval_options(dataset)
        inputs: dict[str, Any] = {}
        if options["mask_gt"]:
            inputs["ingest"] = self.placed_ingest(dataset)
        if options["train_dataset"]:
            inputs["train_manifest"] = self.manifest(options["train_dataset"])
        if options["extended"] == "official":
            inputs["extended_list"] = self.metadata_path(self.EXTENDED_LISTS[self.source(dataset)])
            offscreen = self.eval_offscreen(dataset)
            if offscreen:
                inputs["offscreen"] = offscreen
        return inputs

    def eval_summary(self, dataset: str, method: str) -> str:
        return f"{self.root}/eval/{dataset}/{method}/summary.json"

    def eval_per_sample(self, dataset: str, method: str) -> str:
        return f"{self.root}/eval/{dataset}/{method}/per_sample.parquet"

    def table(self, benchmark: str, ext: str = "md") -> str:
        return f"{self.root}/tables/{benchmark}.{ext}"

    # --- figures ------------------------------------------------------------------------------------------
    def plot(self, dataset: str, figure: str) -> str:
        return f"{self.root}/plots/{dataset}/{figure}.png"

    def plot_targets(self) -> list[str]:
        """The figure set of every dataset a built benchmark evaluates (kept out of :meth:`all_targets`, which
        lists the tables; ``rule all`` asks for both)."""
        datasets = sorted({self.benchmark_dataset(b) for b in self.active_benchmarks()})
        return [self.plot(d, figure) for d in datasets for figure in PLOT_FIGURES]

    # --- methods -----------------------------------------------------------------------------------------
    def trained_methods(self) -> list[str]:
        """``use_methods`` (if set) selects entries of ``methods``: Snakemake merges ``--configfile`` files into
        config.yaml, so a paper preset would otherwise also train the demo's cpu entries on real data."""
        methods = self.config.get("methods", {})
        selected = self.config.get("use_methods")
        if selected is None:
            return sorted(methods)
        unknown = [m for m in selected if m not in methods]
        if unknown:
            raise ValueError(f"config key 'use_methods' names {unknown}, which are not entries of 'methods' "
                             f"(known: {sorted(methods)})")
        return sorted(dict.fromkeys(selected))

    def baselines(self) -> list[str]:
        return list(self.config.get("baselines", []))

    def evaluated_methods(self) -> list[str]:
        return self.trained_methods() + self.baselines()

    # --- benchmarks --------------------------------------------------------------------------------------
    def benchmarks(self) -> list[str]:
        configured = self.config.get("benchmarks")
        if configured:
            return list(configured)
        return [f"{d}_{task}" for d in self.datasets() if self.source(d) == "synthav" for task in TASKS]

    def benchmark_dataset(self, benchmark: str) -> str:
        for dataset in sorted(self.datasets(), key=len, reverse=True):
            if benchmark.startswith(dataset + "_"):
                return dataset
        raise KeyError(f"benchmark {benchmark!r} names no configured dataset (datasets: {self.datasets()})")

    # --- paper-beside-ours tables -------------------------------------------------------------------------
    def paper_tables(self) -> list[str]:
        return list(self.config.get("paper_tables", []))

    def paper_table(self, table_id: str, ext: str = "md") -> str:
        return f"{self.root}/tables/paper/{table_id}.{ext}"

    def result_summaries(self) -> list[str]:
        """Evaluation summaries of every built benchmark's dataset and every evaluated method."""
        skipped = set(self.skipped_benchmarks())
        datasets = sorted({self.benchmark_dataset(b) for b in self.benchmarks() if b not in skipped})
        return [self.eval_summary(d, m) for d in datasets for m in self.evaluated_methods()]

    def paper_table_inputs(self) -> list[str]:
        """With ``paper_tables_require_results`` (default) the tables wait for every result (and the leakage report
        whose configured rows they quote); without it they are written from whatever exists, the rest missing."""
        required = str(self.config.get("paper_tables_require_results", True)).lower() == "true"
        if not required:
            return []
        leakage = self.leakage_report("csv")
        return self.result_summaries() + ([leakage] if leakage in self.real_targets() else [])

    def paper_table_note(self) -> dict[str, Any]:
        """What the paper tables print as our setting per dataset: train list mode, list names, cross-dataset
        training (``train_from``) and the leakage report whose ``configured`` rows give the overlap used."""
        from avbench.datasets import list_settings

        real = [d for d in self.datasets() if self.is_real(d)]
        lists = {d: list_settings(self.dataset_cfg(d)) for d in real}
        leakage = self.leakage_report("csv")
        return {
            "train_list_mode": {d: lists[self.train_source(d)]["train_list_mode"] for d in real
                                if lists[self.train_source(d)]["train_list_mode"]},
            "train_from": {d: self.train_source(d) for d in real if self.train_source(d) != d},
            "train_lists": {d: lists[d]["train_list"] for d in real if lists[d]["train_list"]},
            "leakage_report": leakage if leakage in self.real_targets() else None,
        }

    def all_targets(self) -> list[str]:
        targets = [self.paper_table(t, ext) for t in self.paper_tables() for ext in ("parquet", "csv", "md", "tex")]
        skipped = set(self.skipped_benchmarks())
        for benchmark in self.benchmarks():
            if benchmark in skipped:
                continue
            targets += [self.table(benchmark, ext) for ext in ("parquet", "csv", "md")]
        return targets + self.real_targets()

    # --- real datasets (additive: the SynthAV default config has none, so its targets are unchanged) ---------
    def is_real(self, dataset: str) -> bool:
        return self.source(dataset) != "synthav"

    def dataset_cfg(self, dataset: str) -> dict[str, Any]:
        return self.config["datasets"][dataset]

    def metadata_dir(self) -> str | None:
        return self.config.get("metadata_dir") or None

    def metadata_path(self, rel: str) -> str:
        """Where a metadata file is read from: ``metadata_dir`` if it holds it, else the fetch_metadata output."""
        from avbench.datasets import resolve_metadata

        return str(resolve_metadata(rel, self.metadata_dir(), self.root))

    def manifest_metadata(self, dataset: str) -> list[str]:
        from avbench.datasets import required_metadata

        return [self.metadata_path(rel) for rel in required_metadata(self.dataset_cfg(dataset))]

    def needs_placed(self, dataset: str) -> bool:
        from avbench.datasets import needs_placed

        return self.is_real(dataset) and needs_placed(self.dataset_cfg(dataset))

    def placed_check(self, dataset: str) -> str:
        return f"{self.root}/placed/{dataset}/check.json"

    def placed_ingest(self, dataset: str) -> str:
        return f"{self.root}/placed/{dataset}/ingest.parquet"

    def placed_video_dir(self, dataset: str) -> str:
        return f"{self.root}/placed/{dataset}/videos"

    def pairs(self, dataset: str, layout: str) -> str:
        return f"{self.root}/pairs/{dataset}/{layout}.parquet"

    def leakage_report(self, ext: str) -> str:
        return f"{self.root}/reports/leakage.{ext}"

    def leakage_metadata(self) -> list[str]:
        from avbench.datasets import leakage_files

        return [self.metadata_path(rel) for rel in leakage_files()]

    def skipped_benchmarks(self) -> list[str]:
        """Benchmarks on placed datasets whose ``root`` is unset: skipped (PROTOCOLS 1.8: run without them)."""
        out = []
        for benchmark in self.benchmarks():
            dataset = self.benchmark_dataset(benchmark)
            if self.needs_placed(dataset) and not self.dataset_cfg(dataset).get("root"):
                out.append(benchmark)
        return out

    def leakage_manifests(self) -> dict[str, str]:
        """Manifests behind the ``configured`` rows of the leakage report: every real dataset of a built benchmark
        and the dataset it is trained on."""
        evaluated = {self.benchmark_dataset(b) for b in self.active_benchmarks()}
        wanted = {d for d in evaluated if self.is_real(d)} | {self.train_source(d) for d in evaluated
                                                               if self.is_real(d)}
        return {d: self.manifest(d) for d in sorted(wanted)}

    def real_targets(self) -> list[str]:
        """Leakage report (when metadata_dir is set or a benchmark uses a real dataset) and the official pair
        sets of the multi-source / separation benchmarks."""
        real = [b for b in self.active_benchmarks() if self.is_real(self.benchmark_dataset(b))]
        targets = []
        if self.metadata_dir() or real:
            targets += [self.leakage_report("csv"), self.leakage_report("md")]
        for benchmark in real:
            targets += self.official_pair_files(self.benchmark_dataset(benchmark))
        return list(dict.fromkeys(targets))

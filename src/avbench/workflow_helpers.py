"""Paths and target lists of the Snakemake DAG, kept in the package so they are unit-testable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHARD_SPLITS_SYNTHAV = ("train", "test", "duet")
TASKS = ("localization", "multisource", "retrieval", "separation", "segmentation")


@dataclass(frozen=True)
class WorkflowPaths:
    config: dict[str, Any]

    @property
    def root(self) -> str:
        return self.config["results_dir"]

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

    def slice_status(self, dataset: str, chunk: str) -> str:
        return f"{self.root}/status/{dataset}/slice/chunk{chunk}.parquet"

    def shard_dir(self, dataset: str, split: str) -> str:
        return f"{self.root}/shards/{dataset}/{split}"

    def shard_splits(self, dataset: str) -> tuple[str, ...]:
        return SHARD_SPLITS_SYNTHAV if self.source(dataset) == "synthav" else ("train", "test")

    def knn(self, dataset: str) -> str:
        return f"{self.root}/knn/{dataset}/neighbours.npz"

    def mixtures(self, dataset: str, layout: str) -> str:
        return f"{self.root}/mixtures/{dataset}/{layout}.parquet"

    def model(self, dataset: str, method: str) -> str:
        return f"{self.root}/models/{dataset}/{method}/final.pt"

    def eval_summary(self, dataset: str, method: str) -> str:
        return f"{self.root}/eval/{dataset}/{method}/summary.json"

    def table(self, benchmark: str, ext: str = "md") -> str:
        return f"{self.root}/tables/{benchmark}.{ext}"

    # --- methods -----------------------------------------------------------------------------------------
    def trained_methods(self) -> list[str]:
        return sorted(self.config.get("methods", {}))

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
        """With ``paper_tables_require_results`` (default) the tables wait for every result; without it they are
        written from whatever summaries exist, the rest marked missing."""
        required = str(self.config.get("paper_tables_require_results", True)).lower() == "true"
        return self.result_summaries() if required else []

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

    def pairs(self, dataset: str) -> str:
        return f"{self.root}/pairs/{dataset}/official.parquet"

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

    def real_targets(self) -> list[str]:
        """Leakage report (when metadata_dir is set or a benchmark uses a real dataset) and the official pair
        sets of the multi-source / separation benchmarks."""
        from avbench.datasets import has_official_pairs

        skipped = set(self.skipped_benchmarks())
        active = [b for b in self.benchmarks() if b not in skipped]
        real = [b for b in active if self.is_real(self.benchmark_dataset(b))]
        targets = []
        if self.metadata_dir() or real:
            targets += [self.leakage_report("csv"), self.leakage_report("md")]
        for benchmark in real:
            dataset = self.benchmark_dataset(benchmark)
            if benchmark.rsplit("_", 1)[-1] in ("multisource", "separation") and has_official_pairs(
                    self.dataset_cfg(dataset)):
                targets.append(self.pairs(dataset))
        return list(dict.fromkeys(targets))

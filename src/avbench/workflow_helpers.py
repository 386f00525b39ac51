"""Paths and target lists of the Snakemake DAG, kept in the package so they are unit-testable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHARD_SPLITS_SYNTHAV = ("train", "test", "duet")
TASKS = ("localization",)


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

    def all_targets(self) -> list[str]:
        targets = []
        for benchmark in self.benchmarks():
            targets += [self.table(benchmark, ext) for ext in ("parquet", "csv", "md")]
        return targets

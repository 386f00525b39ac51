# Thin adapter: every rule runs this script; the work happens in avbench.stages.
from avbench.stages import run_from_snakemake

run_from_snakemake(snakemake)  # noqa: F821 (injected by Snakemake's script directive)

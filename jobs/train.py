"""Train the dense head and baselines on a Ray cluster, then write the report to OUT/report/.

`ray submit cluster.yaml jobs/train.py -- --out s3://...`; the same options as
`cifar-ray train`, with `--report` on (`--no-report` to skip it).
"""

from cifar_ray.cli import run_job

if __name__ == "__main__":
    run_job("train", "--report")

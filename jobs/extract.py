"""Embed CIFAR-10 on a Ray cluster: `ray submit cluster.yaml jobs/extract.py -- --out s3://...`.

Takes the same options as `cifar-ray extract`.
"""

from cifar_ray.cli import run_job

if __name__ == "__main__":
    run_job("extract")

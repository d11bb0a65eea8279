"""Train the dense head and baselines on a Ray cluster, then write the report.

`ray submit cluster.yaml jobs/train.py -- --out s3://...`; the same options as `cifar-ray train`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _job import run

if __name__ == "__main__":
    run("train")

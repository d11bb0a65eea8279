"""Embed CIFAR-10 on a Ray cluster: `ray submit cluster.yaml jobs/extract.py -- --out s3://...`.

Takes the same options as `cifar-ray extract`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _job import run

if __name__ == "__main__":
    run("extract")

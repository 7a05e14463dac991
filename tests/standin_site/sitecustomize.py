"""Tests only: with ALEXCOST_CUDA_STANDIN set (a log file), every Python process started with this folder
on PYTHONPATH runs alexcost's CUDA code paths on the CPU, under tests/cuda_standin.py."""

import os
import sys

if os.environ.get("ALEXCOST_CUDA_STANDIN"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import cuda_standin

    cuda_standin.install_for_process(os.environ["ALEXCOST_CUDA_STANDIN"])

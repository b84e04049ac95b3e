"""asv benchmarks of fastbp (see README.md in this folder). benchmarks_gpu.py: the CUDA suites."""

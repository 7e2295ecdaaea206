"""Running measurements: job processes, the zygote, the benchmark runner, the matrix and its
executors."""

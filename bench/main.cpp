// bench/main.cpp: Google Benchmark's main for spindle_bench.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();

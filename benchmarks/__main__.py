"""Run every benchmark in turn and print its figures."""

from __future__ import annotations

from benchmarks import bench_extract, bench_import, bench_sync

for module in (bench_extract, bench_sync, bench_import):
    module.run()
    print()

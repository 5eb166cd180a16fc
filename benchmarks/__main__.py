"""Run every benchmark in turn and print its figures."""

from __future__ import annotations

from benchmarks import bench_extract, bench_http, bench_import, bench_scoring, bench_sync

# Numbered as issue 7 lists them: extraction, scoring, HTTP, sync, bulk import.
for module in (bench_extract, bench_scoring, bench_http, bench_sync, bench_import):
    module.run()
    print()

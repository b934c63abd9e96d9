"""Benchmark and accuracy harnesses, run from the project root as ``python -m bench.NAME``.

- ``bench.report``: runs the benchmarks below and writes ``bench/report.md`` with its plots;
- ``bench.kernels``: one forward + BPTT pass of a layer against the machine's GEMM speed;
- ``bench.spark``: the Spark trainer against the one-process trainer;
- ``bench.engine``: what Spark costs over one process (classic and Connect);
- ``bench.memory``: data larger than memory on a small driver (``bench/memory.md``);
- ``bench.reduction``: the tree reduction of the workers' results;
- ``bench.large_model``: a model whose parameters travel as session files;
- ``bench.accuracy``: accuracy on public datasets from the configs in ``bench/configs``;
- ``bench.convergence``: convergence against the averaging frequency.

The results they write (``*.md``, ``*.json``, ``*.png``, ``results/``, ``accuracy/``) live next
to them. They use the library's public API and are not part of the installed package.
"""

"""daskbench's benchmark suite: daskbench side by side with the tools users would otherwise pick.

Run ``python -m benchmarks`` (quick set), ``--full`` or ``--smoke``; see BENCHMARKS.md.
Not part of the installed package.
"""

"""The workbench's test suite (a regular package: an installed package named ``tests``, such as ``nfn``'s, must not
hide it from the torchrun ranks and subprocesses that import ``tests.*``)."""

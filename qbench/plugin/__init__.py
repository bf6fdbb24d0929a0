"""The plugin machinery: hook specs, the pluggy manager, typed registries and the catalog.

Layer 2 of 4. It knows the contracts (:mod:`qbench.contract`) and nothing above them: the
runner and the reports ask it for registered parts by name.
"""

"""The plugin machinery: hook specs, the pluggy manager, typed registries and the catalog.

Above the contracts (layers: docs/architecture.md). It knows the contracts (:mod:`qbench.contract`) and nothing above them: the
runner and the reports ask it for registered parts by name.
"""

"""Plugins: the one pluggy manager, and the registries its hooks fill (connectors, steps, notifiers).

Built-in connectors, steps and notifiers register through the same hooks as installed packages of the
`headwater` entry-point group. The hook specifications are the public headwater.hookspecs.

Imports: common, processing.
"""

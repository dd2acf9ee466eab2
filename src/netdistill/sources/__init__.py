"""Asynchronous devices (the seeds' AISMs): sources push usage data by themselves.

Each device is a module or folder named after the protocol it speaks (``netflow/``).
A source instance is named in the scheme (``sources: [{name: edge, type: netflow}]``);
``registry.SOURCES`` maps the type to its config model and runtime class (built in, or
from a package's ``netdistill.sources`` entry point); ``base.py`` states the contract.
"""

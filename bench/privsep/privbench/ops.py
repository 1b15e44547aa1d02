"""Entrypoints the benchmark calls in the privsep daemon."""

from oslo_concurrency import processutils

import privbench


@privbench.default.entrypoint
def run_true():
    """What os-brick's execute_root() does: fork/exec a tool from the daemon."""
    processutils.execute('/bin/true')


@privbench.default.entrypoint
def noop():
    """The round trip alone."""
    return None

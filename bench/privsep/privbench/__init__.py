"""A tiny oslo.privsep context for bench/moord.sh: the os-brick capability set
(CAP_SYS_ADMIN + CAP_DAC_READ_SEARCH), started through `sudo privsep-helper`."""

from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

default = priv_context.PrivContext(
    __name__,
    cfg_section='privbench',
    pypath=__name__ + '.default',
    capabilities=[caps.CAP_SYS_ADMIN, caps.CAP_DAC_READ_SEARCH],
)

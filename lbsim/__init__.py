"""lbsim: a discrete-event model of Linux loopback (TCP/UDP over lo) against UNIX domain sockets."""

from lbsim.config import ConfigError, SimConfig, make_config
from lbsim.costs import CostModel, load_costs
from lbsim.results import load_results
from lbsim.runner import run_experiment
from lbsim.simulate import Result, simulate

__version__ = "0.1.0"

__all__ = ["simulate", "Result", "SimConfig", "make_config", "ConfigError", "CostModel", "load_costs",
           "run_experiment", "load_results", "__version__"]

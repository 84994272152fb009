"""``python -m worker``: the worker a local cluster (worker/local.py) starts for one device."""

import argparse
import warnings

from celery.exceptions import SecurityWarning

from producer.settings import Settings
from worker.main import run_worker

parser = argparse.ArgumentParser(prog="python -m worker", description="one aclq worker bound to one device")
parser.add_argument("--device", type=int, required=True)
parser.add_argument("--loglevel", default="INFO")
parser.add_argument("--quiet", action="store_true", help="no start-up banner")
args = parser.parse_args()
# Started by the user's own command (`aclq batch`, `aclq up`, the demo), as that user: Celery's
# warning that a worker runs as root (8 lines a worker, whatever the command's --quiet) tells
# them nothing their command's user did not choose; aclq's workers accept no pickle, the case
# where Celery refuses root outright. `aclq worker` keeps the warning.
warnings.filterwarnings("ignore", category=SecurityWarning)
run_worker(Settings.from_env(device=args.device), args.loglevel, args.quiet)

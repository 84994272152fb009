import argparse

from producer.settings import Settings
from worker.main import run_worker

parser = argparse.ArgumentParser(prog="python -m worker", description="one aclq worker bound to one device")
parser.add_argument("--device", type=int, required=True)
parser.add_argument("--loglevel", default="INFO")
parser.add_argument("--quiet", action="store_true", help="no start-up banner")
args = parser.parse_args()
run_worker(Settings.from_env(device=args.device), args.loglevel, args.quiet)

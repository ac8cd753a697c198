"""`python -m dnet`."""
from dnet.cli.main import main

main()

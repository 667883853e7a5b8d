"""Fan-out benchmark across processes (in-process broker vs Redis): ``python -m tools.fanout``."""

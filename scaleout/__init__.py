"""Scale-out helpers: the room-commands app the Redis tests run in several
processes (:mod:`scaleout.app`, started with ``python -m scaleout.serve``) and
the fan-out benchmark (``python -m scaleout.bench_fanout``)."""

"""The L1 side of a Nitro rollup: what the sequencer posts to its parent chain, and where.

``batch.py`` is the sequencer batch codec (the ``data`` of ``addSequencerL2BatchFromOrigin``);
``contracts.py`` deploys the real Bridge and SequencerInbox (and a rollup stand-in) on an L1 anvil;
``poster.py`` posts L2 blocks to them; ``monitor.py`` watches what lands there and maps every L2 block
to its batch (``observation.py``: what it saw, as plain data). This package sits beside ``feed``
in the layers and imports only ``chain``, ``results``, ``errors`` and ``vocabulary``; its modules are
imported where they are used, so importing the package costs nothing.
"""

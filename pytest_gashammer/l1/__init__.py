"""The L1 side of a Nitro rollup: what the sequencer posts to its parent chain.

``batch.py`` is the sequencer batch codec (the ``data`` of ``addSequencerL2BatchFromOrigin``). This
package sits beside ``feed`` in the layers and imports only ``chain``, ``results``, ``errors`` and
``vocabulary``; its modules are imported where they are used, so importing the package costs nothing.
"""

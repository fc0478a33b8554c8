"""The rollup's L1 side: the Nitro contracts a devnet deploys on its L1, the batch poster that feeds
them, and (later) the batch codec and the L1 monitor. Imports only ``chain`` and below."""
